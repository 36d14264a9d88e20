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


@event("routing.InteractionRouted", version=1, emitted_by="routing.services.dispatch")
@dataclass(frozen=True)
class InteractionRouted:
    """Routing chose this agent for the interaction (the offer follows in the same transaction).

    `explanation` says why: the expansion step in force, how long it had
    waited, the candidates scored (the best-ranked free agents who qualify,
    ties and the preferred agent included) with their scores and reasons,
    how many `qualified` and how many agents were `available`.
    """

    agent_id: str
    queue: str
    score: float
    priority: int
    side: str  # "agent": a pass for agents who became free (agent_route); "interaction": any other pass
    explanation: dict = field(default_factory=dict)


@event("routing.InteractionOverflowed", version=1, emitted_by="routing.services.work_overflow")
@dataclass(frozen=True)
class InteractionOverflowed:
    """Moved to the queue's overflow queue: it waited too long, or the queue is closed (business hours).

    The interactions.InteractionQueued for the new queue follows in the same
    transaction; the customer's wait keeps counting from when they first queued.
    """

    from_queue: str
    to_queue: str
    waited_seconds: float
    reason: str  # "waited" or "closed"
