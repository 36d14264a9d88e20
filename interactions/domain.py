"""The interaction lifecycle: pure Python, no framework, no database.

    created ─queue─▶ queued ─offer─▶ offered ─accept─▶ active ◀─resume─ held
                       ▲  ◀─decline─┘                  │  └──hold──▶──┘
                       └──────────── transfer (to a queue) ◀─┘
    active/held ─end─▶ wrap_up ─wrap_up─▶ resolved
    created/queued/offered ─abandon─▶ abandoned
    resolved/abandoned ─reopen─▶ created

`evolve(state, event)` folds events into state; each `decide_*` checks the
rules and returns the events to append, or raises a TransitionRefused that
the API answers with 409 (or 400 for bad values). Nothing is half-done: a
refused command decides no events.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass

from interactions import events as ev

CHANNELS = ("voice", "chat", "email", "social", "sms")
DIRECTIONS = ("inbound", "outbound")
END_REASONS = ("resolved", "customer_hung_up", "technical_drop", "agent_ended_abuse", "customer_left")

CREATED, QUEUED, OFFERED, ACTIVE, HELD, WRAP_UP, RESOLVED, ABANDONED = (
    "created", "queued", "offered", "active", "held", "wrap_up", "resolved", "abandoned",
)
WAITING = (CREATED, QUEUED, OFFERED)
CONNECTED = (ACTIVE, HELD)
CLOSED = (RESOLVED, ABANDONED)


class TransitionRefused(Exception):
    """The command does not apply in the interaction's current state (HTTP 409)."""

    status = 409
    code = "invalid_transition"


class InvalidValue(Exception):
    """A value the domain does not know (HTTP 400); `field` names it."""

    status = 400
    code = "invalid_value"

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class InteractionState:
    status: str = ""
    channel: str = ""
    case_id: uuid.UUID | None = None
    queue: str | None = None
    agent_id: str | None = None
    version: int = 0


def evolve(state: InteractionState, event) -> InteractionState:
    """The state after one event (events are facts: no checks here)."""
    s = dataclasses.replace(state, version=state.version + 1)
    match event:
        case ev.InteractionCreated():
            return dataclasses.replace(s, status=CREATED, channel=event.channel, case_id=event.case_id)
        case ev.InteractionQueued():
            return dataclasses.replace(s, status=QUEUED, queue=event.queue, agent_id=None)
        case ev.InteractionOffered():
            return dataclasses.replace(s, status=OFFERED, agent_id=event.agent_id)
        case ev.OfferDeclined():
            return dataclasses.replace(s, status=QUEUED, agent_id=None)
        case ev.InteractionAccepted():
            return dataclasses.replace(s, status=ACTIVE, agent_id=event.agent_id)
        case ev.InteractionHeld():
            return dataclasses.replace(s, status=HELD)
        case ev.InteractionResumed():
            return dataclasses.replace(s, status=ACTIVE)
        case ev.InteractionTransferred(to_agent_id=str() as agent):
            return dataclasses.replace(s, status=OFFERED, agent_id=agent)
        case ev.InteractionTransferred():
            return dataclasses.replace(s, status=QUEUED, queue=event.to_queue, agent_id=None)
        case ev.InteractionEnded():
            return dataclasses.replace(s, status=WRAP_UP)
        case ev.InteractionWrappedUp():
            return dataclasses.replace(s, status=RESOLVED)
        case ev.InteractionAbandoned():
            return dataclasses.replace(s, status=ABANDONED, agent_id=None)
        case ev.InteractionReopened():
            return dataclasses.replace(s, status=CREATED, agent_id=None)
    return s  # messages and other facts leave the lifecycle as it was


def fold(events) -> InteractionState:
    state = InteractionState()
    for event in events:
        state = evolve(state, event)
    return state


def _require(state: InteractionState, allowed: tuple[str, ...], action: str) -> None:
    if state.status not in allowed:
        raise TransitionRefused(f"cannot {action} an interaction that is {state.status or 'not created'}"
                                f" (allowed when {', '.join(allowed)})")


def decide_create(*, channel: str, direction: str, case_id: uuid.UUID, subject: str | None = None) -> list:
    if channel not in CHANNELS:
        raise InvalidValue("channel", f"unknown channel {channel!r}; known: {', '.join(CHANNELS)}")
    if direction not in DIRECTIONS:
        raise InvalidValue("direction", f"direction must be one of {', '.join(DIRECTIONS)}")
    return [ev.InteractionCreated(channel=channel, direction=direction, case_id=case_id, subject=subject)]


def decide_queue(state: InteractionState, *, queue: str) -> list:
    _require(state, (CREATED,), "queue")
    return [ev.InteractionQueued(queue=queue)]


def decide_offer(state: InteractionState, *, agent_id: str) -> list:
    _require(state, (QUEUED,), "offer")
    return [ev.InteractionOffered(agent_id=agent_id)]


def decide_decline(state: InteractionState, *, agent_id: str, reason: str) -> list:
    _require(state, (OFFERED,), "decline")
    if agent_id != state.agent_id:
        raise TransitionRefused("this interaction is offered to another agent")
    return [ev.OfferDeclined(agent_id=agent_id, reason=reason)]


def decide_accept(state: InteractionState, *, agent_id: str) -> list:
    _require(state, (OFFERED,), "accept")
    if agent_id != state.agent_id:
        raise TransitionRefused("this interaction is offered to another agent")
    return [ev.InteractionAccepted(agent_id=agent_id)]


def decide_hold(state: InteractionState) -> list:
    _require(state, (ACTIVE,), "hold")
    return [ev.InteractionHeld()]


def decide_resume(state: InteractionState) -> list:
    _require(state, (HELD,), "resume")
    return [ev.InteractionResumed()]


def decide_transfer(state: InteractionState, *, to_agent_id: str | None = None, to_queue: str | None = None,
                    note: str) -> list:
    _require(state, CONNECTED, "transfer")
    if (to_agent_id is None) == (to_queue is None):
        raise InvalidValue("to_agent_id", "transfer to exactly one of an agent (to_agent_id) or a queue (to_queue)")
    if to_agent_id is not None and to_agent_id == state.agent_id:
        raise InvalidValue("to_agent_id", "cannot transfer to the agent who already has it")
    return [ev.InteractionTransferred(from_agent_id=state.agent_id, to_agent_id=to_agent_id, to_queue=to_queue,
                                      note=note)]


def decide_message(state: InteractionState, *, direction: str, body: str,
                   provider_message_id: str | None = None) -> list:
    """Messages flow while the conversation is open; a customer may write while waiting."""
    _require(state, WAITING + CONNECTED, "record a message on")
    if direction not in DIRECTIONS:
        raise InvalidValue("direction", f"direction must be one of {', '.join(DIRECTIONS)}")
    if state.channel == "voice":
        raise InvalidValue("channel", "a voice interaction has no messages")
    return [ev.MessageRecorded(direction=direction, body=body, provider_message_id=provider_message_id)]


def decide_end(state: InteractionState, *, reason: str, duration_seconds: int | None = None) -> list:
    _require(state, CONNECTED, "end")
    if reason not in END_REASONS:
        raise InvalidValue("reason", f"unknown end reason {reason!r}; known: {', '.join(END_REASONS)}")
    return [ev.InteractionEnded(reason=reason, duration_seconds=duration_seconds)]


def decide_wrap_up(state: InteractionState, *, disposition: str, notes: str = "") -> list:
    _require(state, (WRAP_UP,), "wrap up")
    if not disposition.strip():
        raise InvalidValue("disposition", "a disposition code is required")
    return [ev.InteractionWrappedUp(disposition=disposition, notes=notes)]


def decide_abandon(state: InteractionState, *, waited_seconds: int | None = None) -> list:
    _require(state, WAITING, "abandon")
    return [ev.InteractionAbandoned(waited_seconds=waited_seconds)]


def decide_reopen(state: InteractionState, *, reason: str) -> list:
    _require(state, CLOSED, "reopen")
    return [ev.InteractionReopened(reason=reason)]
