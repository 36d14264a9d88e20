"""Events of conversation intelligence, recorded on the interaction's stream in the same append as the text
they are about (a customer's message), so the timeline shows them in place."""

from __future__ import annotations

from dataclasses import dataclass, field

from events.registry import event, pii


@event("intelligence.SentimentScored", version=1, emitted_by="intelligence.services.annotate")
@dataclass(frozen=True)
class SentimentScored:
    """The sentiment of one inbound text (VADER's compound score, -1 very negative to +1 very positive), and the
    interaction's running sentiment after it (a moving average weighted towards the latest texts)."""

    source: str  # "message" or "transcript" (a call's transcript segment the customer spoke)
    compound: float
    running: float
    texts: int  # texts scored on this interaction so far


@event("intelligence.RedFlagRaised", version=1, emitted_by="intelligence.services.annotate")
@dataclass(frozen=True)
class RedFlagRaised:
    """Something a supervisor should know about this contact. `kind`: abuse, threat, competitor, churn (a
    word or phrase of the admin's list), negative_sentiment (a text scored at or below the threshold),
    repeat_contact (the customer came back while an earlier contact is unresolved) or declining_engagement
    (a frequent customer who went silent, or whose CSAT fell). `evidence` is the text's words that raised
    it (masked like every stored text) or what was found; `priority_boost` is added to its routing
    priority while it waits; `prefer_skill` is a skill routing prefers for it; `effects` says in words
    what the flag changed."""

    kind: str
    evidence: str = pii()
    term: str = ""
    compound: float | None = None
    priority_boost: int = 0
    effects: list[str] = field(default_factory=list)
    prefer_skill: str = ""


@event("intelligence.EngagementDeclined", version=1, emitted_by="intelligence.services.engagement_sweep")
@dataclass(frozen=True)
class EngagementDeclined:
    """A customer who contacted us often has gone silent: `contacts` inbound contacts, usually `usual_gap_days`
    apart, and none for `silent_days` since `last_contact_at` (ISO 8601). A churn risk worth a proactive call;
    raised once per silence by the daily sweep, on the customer's timeline."""

    contacts: int
    usual_gap_days: float
    silent_days: float
    last_contact_at: str
