"""Authority limits (configuration, in the admin) and the actions taken or waiting (write-side state)."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db import models

KINDS = ("refund", "credit", "discount", "expedited_shipping", "fee_waiver")


class AuthorityLimit(models.Model):
    """How much an agent may do of one kind without asking: per action and per day (the center's day). A limit
    for a group applies to its members; one without a group to every agent. An agent's limit is the highest
    that applies to them; with none, every such action needs approval."""

    kind = models.CharField(max_length=20, choices=[(k, k) for k in KINDS])
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE,
                              help_text="empty: every agent")
    per_action = models.DecimalField(max_digits=12, decimal_places=2)
    per_day = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "group"], name="authority_limit_uniq"),
                       models.UniqueConstraint(fields=["kind"], condition=models.Q(group=None),
                                               name="authority_limit_default_uniq")]

    def __str__(self) -> str:
        return f"{self.kind} ({self.group or 'every agent'}): {self.per_action} / {self.per_day} a day"


class Action(models.Model):
    DONE, PENDING, REJECTED = "done", "pending", "rejected"

    id = models.UUIDField(primary_key=True)
    interaction_id = models.UUIDField(db_index=True)
    customer_id = models.UUIDField()
    agent_id = models.CharField(max_length=150, db_index=True)
    kind = models.CharField(max_length=20, choices=[(k, k) for k in KINDS])
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    reason = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=[(s, s) for s in (DONE, PENDING, REJECTED)])
    decided_by = models.CharField(max_length=150, blank=True)
    expected_by = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True, db_index=True)
    version = models.PositiveIntegerField(default=0)
