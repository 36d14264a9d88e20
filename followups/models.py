"""Promises to customers, write-side state: callbacks, escalations and follow-up tasks (their events:
followups.events)."""

from __future__ import annotations

from django.db import models


class Callback(models.Model):
    SCHEDULED, STARTED, COMPLETED, CANCELLED = "scheduled", "started", "completed", "cancelled"
    OPEN = (SCHEDULED, STARTED)
    REASONS = ("customer_requested", "technical_drop", "promised")

    id = models.UUIDField(primary_key=True)
    customer_id = models.UUIDField(db_index=True)
    reason = models.CharField(max_length=20, choices=[(r, r) for r in REASONS])
    due_at = models.DateTimeField()
    channel = models.CharField(max_length=10)
    queue = models.CharField(max_length=100)
    agent_id = models.CharField(max_length=150, null=True, blank=True, db_index=True,
                                help_text="the agent who promised it (preferred when it is routed)")
    origin_interaction_id = models.UUIDField(null=True, blank=True)
    case_id = models.UUIDField(null=True, blank=True)
    status = models.CharField(max_length=10, default=SCHEDULED,
                              choices=[(s, s) for s in (SCHEDULED, STARTED, COMPLETED, CANCELLED)])
    interaction_id = models.UUIDField(null=True, blank=True, unique=True, help_text="the callback's own interaction")
    created_at = models.DateTimeField(auto_now_add=True)
    version = models.PositiveIntegerField(default=0, help_text="of the callback's event stream")

    class Meta:
        indexes = [models.Index(fields=["status", "due_at"], name="callback_due")]
        ordering = ["due_at"]


class Escalation(models.Model):
    OPEN, ACCEPTED = "open", "accepted"
    TARGETS = ("queue", "supervisor")

    id = models.UUIDField(primary_key=True)
    interaction_id = models.UUIDField(db_index=True)
    customer_id = models.UUIDField(db_index=True)
    agent_id = models.CharField(max_length=150, db_index=True, help_text="who escalated")
    target = models.CharField(max_length=10, choices=[(t, t) for t in TARGETS])
    queue = models.CharField(max_length=100, null=True, blank=True)
    reason = models.TextField()
    respond_by = models.DateTimeField()
    status = models.CharField(max_length=10, default=OPEN, choices=[(s, s) for s in (OPEN, ACCEPTED)])
    breached = models.BooleanField(default=False)
    accepted_by = models.CharField(max_length=150, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    version = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["status", "respond_by"], name="escalation_due")]
        ordering = ["respond_by"]


class FollowUp(models.Model):
    """A task promised to a customer with a due time (its events: followups.events, stream "followup")."""

    OPEN, DONE, CANCELLED = "open", "done", "cancelled"

    id = models.UUIDField(primary_key=True)
    customer_id = models.UUIDField(db_index=True)
    interaction_id = models.UUIDField(null=True, blank=True, help_text="the contact it was promised on")
    agent_id = models.CharField(max_length=150, db_index=True, help_text="who owns it")
    note = models.TextField(help_text="what was promised (masked)")
    due_at = models.DateTimeField()
    status = models.CharField(max_length=10, default=OPEN, choices=[(s, s) for s in (OPEN, DONE, CANCELLED)])
    overdue = models.BooleanField(default=False, help_text="alerted as overdue")
    closed_by = models.CharField(max_length=150, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    version = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["status", "due_at"], name="followup_due")]
        ordering = ["due_at"]
