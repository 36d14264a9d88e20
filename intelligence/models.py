"""Conversation intelligence: the admin's word lists and flag effects, and each interaction's running mood.

`FlagTerm` and `FlagPolicy` are configuration (admin). `Mood` is write-side
state kept in step with the interaction's stream, in the same transaction as
the messages it scores (intelligence.services).
"""

from __future__ import annotations

from django.db import models

KINDS = ("abuse", "threat", "competitor", "churn", "negative_sentiment", "repeat_contact", "declining_engagement")
TERM_KINDS = ("abuse", "threat", "competitor", "churn")


class FlagTerm(models.Model):
    """A word or phrase that raises a red flag when a customer writes it (matched whole words, any case)."""

    term = models.CharField(max_length=100, help_text="a word or phrase, matched as whole words in any case")
    kind = models.CharField(max_length=20, choices=[(k, k) for k in TERM_KINDS])
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["term", "kind"], name="flag_term_uniq")]
        ordering = ["kind", "term"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.term}"


class FlagPolicy(models.Model):
    """What a red flag of one kind changes. A kind with no policy raises the flag and changes nothing."""

    kind = models.CharField(max_length=20, primary_key=True, choices=[(k, k) for k in KINDS])
    priority_boost = models.IntegerField(default=0, help_text="added to the interaction's routing priority while "
                                                              "it waits (higher goes first)")
    alert_supervisors = models.BooleanField(default=True, help_text="push an alert to the wallboard")
    prefer_skill = models.CharField(max_length=50, blank=True, default="",
                                    help_text="a skill (e.g. deescalation): while it waits, agents who have it are "
                                              "preferred, the more proficient the more")

    class Meta:
        verbose_name_plural = "flag policies"

    def __str__(self) -> str:
        return self.kind


class Mood(models.Model):
    """One interaction's sentiment so far, and the flags raised on it."""

    interaction_id = models.UUIDField(primary_key=True)
    customer_id = models.UUIDField(db_index=True)
    texts = models.PositiveIntegerField(default=0)
    running = models.FloatField(default=0.0, help_text="moving average of the compound scores, -1 to 1")
    last = models.FloatField(default=0.0)
    lowest = models.FloatField(default=0.0)
    flags = models.JSONField(default=list, help_text="kinds raised, in order")
    updated_at = models.DateTimeField(auto_now=True)


class EngagementAlert(models.Model):
    """A customer who used to contact us often and went silent, flagged once per silence (the stream of its
    intelligence.EngagementDeclined event has this id)."""

    id = models.UUIDField(primary_key=True)
    customer_id = models.UUIDField()
    last_contact_at = models.DateTimeField(help_text="the silence began after this contact")
    contacts = models.PositiveIntegerField()
    usual_gap_days = models.FloatField()
    raised_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer_id", "last_contact_at"],
                                               name="engagement_alert_once")]
        ordering = ["-raised_at"]
