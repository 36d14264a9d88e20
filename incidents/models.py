"""Incident reports: write-side state (events: incidents.events). The narrative fields are kept here as filed
and amended, for the people allowed to read them (incidents.selectors.may_read)."""

from __future__ import annotations

from django.db import models


class IncidentReport(models.Model):
    KINDS = ("abuse", "threat", "harassment", "ended_early", "other")
    ACTIONS = ("warned", "ended_contact", "escalated", "transferred", "other")

    id = models.UUIDField(primary_key=True)
    interaction_id = models.UUIDField(db_index=True)
    customer_id = models.UUIDField(db_index=True)
    agent_id = models.CharField(max_length=150, db_index=True, help_text="who filed it (the agent on the contact)")
    kind = models.CharField(max_length=20, choices=[(k, k) for k in KINDS])
    contact_started_at = models.DateTimeField()
    duration_seconds = models.PositiveIntegerField(null=True, blank=True)
    channel = models.CharField(max_length=10)
    contact_details = models.TextField(blank=True)
    description = models.TextField()
    agent_responses = models.TextField()
    deescalation_steps = models.TextField()
    warnings = models.JSONField(default=list)
    action_taken = models.CharField(max_length=20, choices=[(a, a) for a in ACTIONS])
    supervisor = models.CharField(max_length=150, help_text="the supervisor involved")
    follow_up_actions = models.TextField(blank=True)
    amendments = models.JSONField(default=list, help_text="[{field, value, reason, by, at}], in order")
    created_at = models.DateTimeField(auto_now_add=True)
    version = models.PositiveIntegerField(default=0)

    class Meta:
        permissions = [("read_incident_reports", "Can read every incident report (compliance)")]
        ordering = ["-created_at"]
