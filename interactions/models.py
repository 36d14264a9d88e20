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


class ProviderMessage(models.Model):
    """One delivery from a channel provider, claimed once: the idempotency key of the webhooks.

    Inserted in the same transaction as the events it caused, so a repeated
    (or racing) delivery of the same provider message id finds it and
    answers with the original result instead of acting twice.
    """

    provider = models.CharField(max_length=50)
    message_id = models.CharField(max_length=200)
    channel = models.CharField(max_length=10)
    interaction = models.ForeignKey(Interaction, on_delete=models.PROTECT, null=True, related_name="+")
    position = models.BigIntegerField(null=True, help_text="global position of the last event it caused")
    positions = models.JSONField(default=list)
    customer_created = models.BooleanField(default=False)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "message_id"], name="provider_message_uniq")]

    def __str__(self) -> str:
        return f"{self.provider}:{self.message_id}"


class Conversation(models.Model):
    """A provider's thread, call or session id -> the interaction currently carrying it."""

    channel = models.CharField(max_length=10)
    provider = models.CharField(max_length=50)
    conversation_id = models.CharField(max_length=200)
    interaction = models.ForeignKey(Interaction, on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "provider", "conversation_id"],
                                               name="conversation_uniq")]

    def __str__(self) -> str:
        return f"{self.channel}/{self.provider}:{self.conversation_id}"


class EmailMessage(models.Model):
    """An email's Message-ID -> its interaction, for threading replies (In-Reply-To, References)."""

    message_id = models.CharField(max_length=500, unique=True)
    interaction = models.ForeignKey(Interaction, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.message_id

