"""Events of quality: satisfaction surveys (stream_type "survey", stream_id = survey id)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from events.registry import event, pii


@event("quality.SurveySent", version=1, emitted_by="quality.services.survey_send")
@dataclass(frozen=True)
class SurveySent:
    """A satisfaction survey went to the customer after an interaction was resolved.

    It goes as an outbound message on `outbound_interaction_id` (a new
    outbound interaction on the customer's preferred channel, in the same case).
    `kind`: "csat" (1-5), "nps" (0-10) or "both".
    """

    interaction_id: uuid.UUID
    agent_id: str
    queue: str | None
    channel: str
    kind: str
    outbound_interaction_id: uuid.UUID


@event("quality.SurveyAnswered", version=1, emitted_by="quality.services.survey_answer")
@dataclass(frozen=True)
class SurveyAnswered:
    """The customer answered (once: a second answer is refused). `via`: "api" or "webhook/<provider>"."""

    interaction_id: uuid.UUID
    csat: int | None = None
    nps: int | None = None
    comment: str = pii(default="")
    via: str = "api"


@event("quality.EvaluationSubmitted", version=1, emitted_by="quality.services.evaluation_submit")
@dataclass(frozen=True)
class EvaluationSubmitted:
    """A reviewer scored an interaction against a scorecard version (stream_type "evaluation")."""

    interaction_id: uuid.UUID
    agent_id: str
    reviewer: str
    scorecard: str
    scorecard_version: int
    answers: dict
    score: float
    auto_failed: list[str]


@event("quality.EvaluationAcknowledged", version=1, emitted_by="quality.services.evaluation_acknowledge")
@dataclass(frozen=True)
class EvaluationAcknowledged:
    """The agent evaluated has read it and accepts it."""

    agent_id: str


@event("quality.EvaluationDisputed", version=1, emitted_by="quality.services.evaluation_dispute")
@dataclass(frozen=True)
class EvaluationDisputed:
    """The agent evaluated disputes it, saying why."""

    agent_id: str
    reason: str


@event("quality.EvaluationDisputeResolved", version=1, emitted_by="quality.services.evaluation_resolve")
@dataclass(frozen=True)
class EvaluationDisputeResolved:
    """A supervisor decided the dispute: "upheld" (the score stands) or "rescored" (new answers, new score)."""

    resolved_by: str
    outcome: str
    note: str
    answers: dict | None = None
    score: float | None = None
    auto_failed: list[str] | None = None
