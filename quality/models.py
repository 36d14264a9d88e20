"""Quality read models: one fact row per interaction, projected from its events (see docs/KPIS.md).

Every KPI is an aggregate over these rows, so a report is one query, and a
changed definition (the FCR window, the short-abandon threshold) is applied
to all history by `python manage.py replay quality.interaction_facts`.
"""

from __future__ import annotations

from django.db import models


class InteractionFact(models.Model):
    """What the KPIs need to know about one interaction, with each clock's start and stop."""

    interaction_id = models.UUIDField(primary_key=True)
    customer_id = models.UUIDField()
    case_id = models.UUIDField(null=True)
    channel = models.CharField(max_length=10)
    direction = models.CharField(max_length=10)
    queue = models.CharField(max_length=100, null=True, help_text="the queue it last waited in")
    created_at = models.DateTimeField()
    queued_at = models.DateTimeField(null=True, help_text="first entry into a queue: the customer's wait starts")
    sl_seconds = models.PositiveIntegerField(null=True, help_text="the queue's service-level threshold")
    answered_at = models.DateTimeField(null=True, help_text="first acceptance by an agent")
    answered_by = models.CharField(max_length=150, null=True, help_text="the agent who accepted it first")
    agent_id = models.CharField(max_length=150, null=True, help_text="the agent who handled it last")
    talk_seconds = models.FloatField(default=0)
    hold_seconds = models.FloatField(default=0)
    acw_seconds = models.FloatField(default=0)
    active_since = models.DateTimeField(null=True, help_text="internal: the talk clock runs since then")
    held_since = models.DateTimeField(null=True, help_text="internal: the hold clock runs since then")
    transfers = models.PositiveIntegerField(default=0)
    ended_at = models.DateTimeField(null=True)
    resolved_at = models.DateTimeField(null=True, help_text="the (last) wrap-up")
    disposition = models.CharField(max_length=100, blank=True)
    reopened = models.PositiveIntegerField(default=0)
    abandoned_at = models.DateTimeField(null=True)
    abandon_wait_seconds = models.FloatField(null=True)
    repeat_of = models.UUIDField(null=True, help_text="an earlier interaction about the same matter, resolved "
                                                      "within the FCR window before this one began")
    repeat_contact_at = models.DateTimeField(null=True, help_text="the first later contact about the same matter "
                                                                  "within the FCR window after resolution")
    surveyed_at = models.DateTimeField(null=True, help_text="when the customer answered the survey")
    csat = models.PositiveSmallIntegerField(null=True)
    nps = models.PositiveSmallIntegerField(null=True)

    class Meta:
        indexes = [
            models.Index(fields=["customer_id", "created_at"], name="fact_customer_created"),
            models.Index(fields=["resolved_at"], name="fact_resolved"),
            models.Index(fields=["answered_at"], name="fact_answered"),
            models.Index(fields=["abandoned_at"], name="fact_abandoned"),
            models.Index(fields=["created_at"], name="fact_created"),
            models.Index(fields=["surveyed_at"], name="fact_surveyed"),
        ]


class PresenceInterval(models.Model):
    """One stretch of an agent in one presence (projection `quality.presence_intervals`); `ended_at` null: now."""

    agent_id = models.CharField(max_length=150)
    presence = models.CharField(max_length=20)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True)

    class Meta:
        indexes = [models.Index(fields=["agent_id", "started_at"], name="presence_agent_started")]


class Survey(models.Model):
    """A satisfaction survey of one resolved interaction: write-side state (its events: quality.events)."""

    KINDS = ("csat", "nps", "both")

    id = models.UUIDField(primary_key=True)
    interaction_id = models.UUIDField(unique=True)
    customer_id = models.UUIDField()
    agent_id = models.CharField(max_length=150)
    queue = models.CharField(max_length=100, null=True, blank=True)
    channel = models.CharField(max_length=10)
    kind = models.CharField(max_length=4, choices=[(k, k) for k in KINDS])
    outbound_interaction_id = models.UUIDField()
    sent_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    csat = models.PositiveSmallIntegerField(null=True, blank=True)
    nps = models.PositiveSmallIntegerField(null=True, blank=True)
    version = models.PositiveIntegerField(default=0, help_text="of the survey's event stream")

    class Meta:
        permissions = [("answer_survey", "Can record a customer's survey answer (a survey integration)")]
        indexes = [models.Index(fields=["customer_id", "answered_at"], name="survey_customer_answered")]


class Scorecard(models.Model):
    """A versioned evaluation form (quality.scoring explains the form). A version used by an evaluation is
    never changed: editing it in the admin saves the next version."""

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField(default=1)
    form = models.JSONField(help_text="sections with weights and criteria (yes_no or scale, weight, auto_fail)")
    active = models.BooleanField(default=True, help_text="offered to reviewers")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="scorecard_version_uniq")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class Evaluation(models.Model):
    """A reviewer's evaluation of one interaction against one scorecard version (write-side state; its events:
    quality.events). Several reviewers may score the same interaction: calibration."""

    SUBMITTED, ACKNOWLEDGED, DISPUTED, RESOLVED = "submitted", "acknowledged", "disputed", "resolved"

    id = models.UUIDField(primary_key=True)
    scorecard = models.ForeignKey(Scorecard, on_delete=models.PROTECT, related_name="evaluations")
    interaction_id = models.UUIDField(db_index=True)
    customer_id = models.UUIDField()
    agent_id = models.CharField(max_length=150, db_index=True, help_text="the agent evaluated")
    reviewer = models.CharField(max_length=150)
    answers = models.JSONField()
    score = models.FloatField()
    sections = models.JSONField(default=dict)
    auto_failed = models.JSONField(default=list)
    status = models.CharField(max_length=12, default=SUBMITTED)
    dispute_reason = models.TextField(blank=True)
    resolution = models.TextField(blank=True)
    created_at = models.DateTimeField()
    version = models.PositiveIntegerField(default=0, help_text="of the evaluation's event stream")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["interaction_id", "scorecard", "reviewer"],
                                               name="evaluation_per_reviewer")]


class ReviewSample(models.Model):
    """An interaction picked for review (the evaluation queue), by the weekly sampling (quality.services)."""

    interaction_id = models.UUIDField(unique=True)
    agent_id = models.CharField(max_length=150, db_index=True)
    week = models.DateField(help_text="the Monday of the week sampled")
    weight = models.FloatField()
    reasons = models.JSONField(default=list, help_text="why it weighed more: low CSAT, long handle time, ...")
    picked_at = models.DateTimeField(auto_now_add=True)
