from django.db import models

from interactions import domain


class Case(models.Model):
    """A matter the customer contacted us about; interactions on any channel can share it."""

    id = models.UUIDField(primary_key=True)
    customer_id = models.UUIDField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return str(self.id)


class Interaction(models.Model):
    """Write-side state row of one interaction, kept in step with its event stream."""

    id = models.UUIDField(primary_key=True)
    customer_id = models.UUIDField(db_index=True)
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="interactions")
    channel = models.CharField(max_length=10, choices=[(c, c) for c in domain.CHANNELS])
    direction = models.CharField(max_length=10, choices=[(d, d) for d in domain.DIRECTIONS])
    status = models.CharField(max_length=10, db_index=True)
    queue = models.CharField(max_length=100, blank=True, null=True)
    agent_id = models.CharField(max_length=64, blank=True, null=True)
    version = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["channel", "status"], name="interaction_channel_status")]

    def __str__(self) -> str:
        return f"{self.channel} {self.status} {self.id}"

    def state(self) -> domain.InteractionState:
        return domain.InteractionState(status=self.status, channel=self.channel, case_id=self.case_id,
                                       queue=self.queue, agent_id=self.agent_id, version=self.version)

    def take(self, state: domain.InteractionState) -> None:
        self.status, self.queue, self.agent_id, self.version = state.status, state.queue, state.agent_id, state.version
