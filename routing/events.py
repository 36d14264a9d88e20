"""Events of routing: an agent's presence (stream_type "agent") and routing decisions (on the interaction)."""

from __future__ import annotations

from dataclasses import dataclass, field

from events.registry import event


@event("routing.AgentPresenceChanged", version=1, emitted_by="routing.services.agent_presence_set")
@dataclass(frozen=True)
class AgentPresenceChanged:
    """The agent became available, busy, went into after-call work, on a break, or offline."""

    agent_id: str
    presence: str
    reason: str = ""


@event("routing.InteractionRouted", version=1, emitted_by="routing.services.work_route")
@dataclass(frozen=True)
class InteractionRouted:
    """Routing chose this agent for the interaction (the offer follows in the same transaction).

    `explanation` says why: the expansion step in force, how long it had
    waited, and the candidates considered with their scores and reasons.
    """

    agent_id: str
    queue: str
    score: float
    priority: int
    side: str  # "interaction" (a new waiting interaction) or "agent" (an agent became free)
    explanation: dict = field(default_factory=dict)


@event("routing.OfferExpired", version=1, emitted_by="routing.services.offer_expire")
@dataclass(frozen=True)
class OfferExpired:
    """The agent let the offer time out; the interaction waits again (an OfferDeclined follows)."""

    agent_id: str
    timeout_seconds: int
