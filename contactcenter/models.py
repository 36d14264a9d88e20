"""Platform-wide records: the audit log, the stored answers to retried commands, and the roles' permissions.

Both tables are written by the platform's plumbing (contactcenter.access and
contactcenter.idempotency), never by a domain service.
"""

from __future__ import annotations

from django.db import models


class AuditEntry(models.Model):
    """One line of the append-only audit log: a denied attempt, or a read of something sensitive.

    Append-only is enforced by the database (a trigger refuses UPDATE and
    DELETE, see migration 0001), so not even the admin or a bug can rewrite
    who read an incident report. Rows are written in their own connection's
    autocommit, outside the request's transaction, so a denied attempt is on
    record even when the request then fails.
    """

    DENIED = "denied"
    READ = "read"
    OUTCOMES = [(DENIED, "denied"), (READ, "read")]

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    outcome = models.CharField(max_length=10, choices=OUTCOMES)
    user_id = models.CharField(max_length=64, blank=True, help_text="the user's id; empty for an anonymous caller")
    username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=100, help_text="what was attempted, e.g. incidents.read or GET /api/v1/…")
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=100, blank=True)
    reason = models.CharField(max_length=200, blank=True, help_text="why it was denied")
    ip = models.GenericIPAddressField(null=True, blank=True)
    correlation_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["object_type", "object_id"]), models.Index(fields=["username", "at"])]
        permissions = [
            ("read_audit_log", "Can read the audit log (compliance)"),
            ("supervise", "Supervises: sees the interactions, customers and reports of their teams"),
            ("export_personal_data", "Can export a customer's personal data (subject access request)"),
            ("read_metrics", "Can scrape /metrics (the monitoring system's user)"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.outcome} {self.username or '(anonymous)'} {self.action}"


class IdempotentRequest(models.Model):
    """A command sent with an `Idempotency-Key` header, and the answer it got, kept for 24 hours.

    A retry with the same key by the same user gets the stored answer instead
    of running the command again. The key is unique per user, so two users
    cannot collide or read each other's answers.
    """

    user_id = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    body_sha256 = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField(null=True, blank=True, help_text="empty while the first try runs")
    response_body = models.BinaryField(null=True, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user_id", "key"], name="idempotent_request_user_key")]


class Served(models.Model):
    """An agent served this customer: accepted one of their interactions, started one, or registered them.

    What an agent may read later, after a transfer or wrap-up has moved the
    interaction on (contactcenter.access). Written by the command that serves,
    in its transaction; never removed. `interaction_id` is empty for a
    registration.
    """

    agent_id = models.CharField(max_length=150)
    customer_id = models.UUIDField()
    interaction_id = models.UUIDField(null=True, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "served"
        constraints = [
            models.UniqueConstraint(fields=["agent_id", "interaction_id"], name="served_agent_interaction"),
            models.UniqueConstraint(fields=["agent_id", "customer_id"], condition=models.Q(interaction_id=None),
                                    name="served_agent_customer_registered"),
        ]
        indexes = [models.Index(fields=["agent_id", "customer_id"], name="served_agent_customer"),
                   models.Index(fields=["interaction_id"], name="served_interaction")]
