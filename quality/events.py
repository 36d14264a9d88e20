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
