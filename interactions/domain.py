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
from interactions.redact import mask

CHANNELS = ("voice", "chat", "email", "social", "sms")
DIRECTIONS = ("inbound", "outbound")
END_REASONS = ("resolved", "customer_request", "customer_hung_up", "technical_drop", "agent_ended_abuse",
               "customer_left")
ABUSE_END = "agent_ended_abuse"  # only after the required warnings are on record (decide_end)
WARNING_REASONS = ("abuse", "threat", "harassment", "other")

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


class ProtocolRefused(TransitionRefused):
    """The protocol forbids it now (ending for abuse before the warnings are on record)."""

    code = "protocol_refused"


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
    return [ev.InteractionCreated(channel=channel, direction=direction, case_id=case_id, subject=masked(subject))]


def decide_queue(state: InteractionState, *, queue: str) -> list:
    _require(state, (CREATED,), "queue")
    return [ev.InteractionQueued(queue=queue)]


def decide_requeue(state: InteractionState, *, queue: str) -> list:
    """Move a waiting interaction to another queue (routing's overflow)."""
    _require(state, (QUEUED,), "move to another queue")
    if queue == state.queue:
        raise InvalidValue("queue", f"the interaction is already in {queue!r}")
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


def masked(text: str | None) -> str | None:
    """Free text as it may be stored: personal data masked (interactions.redact)."""
    return mask(text)[0] if text else text


def decide_transfer(state: InteractionState, *, to_agent_id: str | None = None, to_queue: str | None = None,
                    note: str) -> list:
    _require(state, CONNECTED, "transfer")
    if (to_agent_id is None) == (to_queue is None):
        raise InvalidValue("to_agent_id", "transfer to exactly one of an agent (to_agent_id) or a queue (to_queue)")
    if to_agent_id is not None and to_agent_id == state.agent_id:
        raise InvalidValue("to_agent_id", "cannot transfer to the agent who already has it")
    return [ev.InteractionTransferred(from_agent_id=state.agent_id, to_agent_id=to_agent_id, to_queue=to_queue,
                                      note=masked(note))]


def decide_message(state: InteractionState, *, direction: str, body: str,
                   provider_message_id: str | None = None, **details) -> list:
    """Messages flow while the conversation is open; a customer may write while waiting. Card numbers, security
    codes and national ids in the text are masked before it is recorded (interactions.redact).

    `details` are what a channel provider adds (provider, kind, subject,
    sender, recipients: see MessageRecorded).
    """
    _require(state, WAITING + CONNECTED, "record a message on")
    if direction not in DIRECTIONS:
        raise InvalidValue("direction", f"direction must be one of {', '.join(DIRECTIONS)}")
    if state.channel == "voice":
        raise InvalidValue("channel", "a voice interaction has no messages")
    if details.get("subject"):
        details["subject"] = masked(details["subject"])
    return [ev.MessageRecorded(direction=direction, body=masked(body), provider_message_id=provider_message_id,
                               **details)]


def decide_warn(state: InteractionState, *, reason: str, text: str = "") -> list:
    """A warning to an abusive customer, on record before the conversation may be ended for abuse."""
    _require(state, CONNECTED, "warn the customer on")
    if reason not in WARNING_REASONS:
        raise InvalidValue("reason", f"unknown warning reason {reason!r}; known: {', '.join(WARNING_REASONS)}")
    return [ev.WarningGiven(reason=reason, text=masked(text))]


def decide_end(state: InteractionState, *, reason: str, duration_seconds: int | None = None,
               warnings: tuple[int, int] | None = None) -> list:
    """`warnings`: (given, required) when an agent ends it: ending for abuse needs the required warnings on record
    first. A provider reporting how a call ended passes none (what happened on the line is a fact)."""
    _require(state, CONNECTED, "end")
    if reason not in END_REASONS:
        raise InvalidValue("reason", f"unknown end reason {reason!r}; known: {', '.join(END_REASONS)}")
    if reason == ABUSE_END and warnings is not None and warnings[0] < warnings[1]:
        given, required = warnings
        raise ProtocolRefused(f"ending for abuse needs {required} warning(s) on record first ({given} given): "
                              "warn the customer (POST .../warn/), or escalate to a supervisor")
    return [ev.InteractionEnded(reason=reason, duration_seconds=duration_seconds)]


def decide_wrap_up(state: InteractionState, *, disposition: str, notes: str = "") -> list:
    _require(state, (WRAP_UP,), "wrap up")
    if not disposition.strip():
        raise InvalidValue("disposition", "a disposition code is required")
    # The disposition is a code, but typed: masked like the notes, so a number pasted into it is not kept.
    return [ev.InteractionWrappedUp(disposition=masked(disposition), notes=masked(notes))]


def decide_abandon(state: InteractionState, *, waited_seconds: int | None = None) -> list:
    _require(state, WAITING, "abandon")
    return [ev.InteractionAbandoned(waited_seconds=waited_seconds)]


def decide_reopen(state: InteractionState, *, reason: str) -> list:
    _require(state, CLOSED, "reopen")
    return [ev.InteractionReopened(reason=masked(reason))]


# --- channel intake (provider webhooks) ------------------------------------

CALL_EVENTS = ("ringing", "answered", "held", "resumed", "transferred", "transcript", "ended")
SPEAKERS = ("customer", "agent")
CHAT_EVENTS = ("start", "message", "end")
SOCIAL_KINDS = ("dm", "mention")
CONSENTS = {True: "given", False: "refused", None: "unknown"}
OPEN = WAITING + CONNECTED


class UnknownConversation(TransitionRefused):
    """A provider event for a call or session we never saw start (HTTP 409): out of order."""

    code = "unknown_conversation"


def run(state: InteractionState, *commands: tuple) -> list:
    """Decide `(decide_fn, kwargs)` commands in order, each on the state the previous ones left.

    All or nothing: a refused step raises and no events of the earlier steps
    are kept either.
    """
    decided = []
    for decide, kwargs in commands:
        new_events = decide(state, **kwargs)
        for event in new_events:
            state = evolve(state, event)
        decided += new_events
    return decided


def decide_transcript(state: InteractionState, *, speaker: str, text: str,
                      offset_seconds: float | None = None) -> list:
    """A segment of the call's transcript, while the call is connected. Card numbers, security codes and national
    ids said aloud are masked before it is recorded (interactions.redact)."""
    _require(state, CONNECTED, "record a transcript on")
    if state.channel != "voice":
        raise InvalidValue("event", "only calls have transcripts")
    if speaker not in SPEAKERS:
        raise InvalidValue("speaker", f"speaker must be one of {', '.join(SPEAKERS)}")
    if not text.strip():
        raise InvalidValue("body", "a transcript segment needs its text in body")
    return [ev.TranscriptSegmentRecorded(speaker=speaker, text=masked(text), offset_seconds=offset_seconds)]


def decide_attach_recording(state: InteractionState, *, recording_ref: str, consent: bool | None) -> list:
    _require(state, CONNECTED + (WRAP_UP,), "attach a recording to")
    if state.channel != "voice":
        raise InvalidValue("recording_ref", "only calls have recordings")
    return [ev.RecordingAttached(recording_ref=recording_ref, consent=CONSENTS[consent])]


def decide_call_event(state: InteractionState, *, event: str, case_id: uuid.UUID | None = None,
                      direction: str = "inbound", queue: str = "default", agent_id: str | None = None,
                      to_agent_id: str | None = None, to_queue: str | None = None, note: str = "",
                      reason: str | None = None, duration_seconds: int | None = None,
                      recording_ref: str | None = None, recording_consent: bool | None = None,
                      speaker: str | None = None, body: str = "", offset_seconds: float | None = None) -> list:
    """Map one telephony provider event onto the lifecycle.

    - ringing (a new call): created, queued, and offered when the provider
      says which agent's phone rings (`agent_id`);
    - answered: accepted by the offered agent; a call the provider routed
      itself (queued, never offered here) is offered to and accepted by
      `agent_id` in one go;
    - transcript: a segment of what was said (`speaker`, `body`), scored for
      sentiment when the customer spoke (intelligence);
    - ended while still waiting is an abandoned call, otherwise it ends the
      call (and attaches the recording, if any).
    Any event but ringing for a call we do not know is out of order (409).
    """
    if event not in CALL_EVENTS:
        raise InvalidValue("event", f"unknown call event {event!r}; known: {', '.join(CALL_EVENTS)}")
    if event == "ringing":
        if state.status:
            raise TransitionRefused(f"this call is already known (it is {state.status}); ringing must come first")
        steps = [(_create, dict(channel="voice", direction=direction, case_id=case_id)),
                 (decide_queue, dict(queue=queue))]
        if agent_id:
            steps.append((decide_offer, dict(agent_id=agent_id)))
        return run(state, *steps)
    if not state.status:
        raise UnknownConversation(f"{event} for a call that never rang here: send ringing first")
    if event == "answered":
        if state.status == QUEUED:
            if not agent_id:
                raise InvalidValue("agent_id", "an answered call that was never offered needs agent_id")
            return run(state, (decide_offer, dict(agent_id=agent_id)), (decide_accept, dict(agent_id=agent_id)))
        return decide_accept(state, agent_id=agent_id or state.agent_id or "")
    if event == "held":
        return decide_hold(state)
    if event == "resumed":
        return decide_resume(state)
    if event == "transferred":
        return decide_transfer(state, to_agent_id=to_agent_id, to_queue=to_queue, note=note)
    if event == "transcript":
        if speaker is None:
            raise InvalidValue("speaker", f"a transcript segment needs a speaker: one of {', '.join(SPEAKERS)}")
        return decide_transcript(state, speaker=speaker, text=body, offset_seconds=offset_seconds)
    # ended
    if state.status in WAITING:
        return decide_abandon(state, waited_seconds=duration_seconds)
    if reason is None:
        raise InvalidValue("reason", f"an ended call needs a reason: one of {', '.join(END_REASONS)}")
    steps = [(decide_end, dict(reason=reason, duration_seconds=duration_seconds))]
    if recording_ref:
        steps.append((decide_attach_recording, dict(recording_ref=recording_ref, consent=recording_consent)))
    return run(state, *steps)


def decide_inbound(state: InteractionState, *, channel: str, direction: str, case_id: uuid.UUID | None,
                   queue: str, subject: str | None = None, message: dict | None = None) -> list:
    """A message (or a chat start, `message` None) arriving on a conversation whose interaction is in `state`.

    The caller has already chosen the interaction: a new one (empty state)
    starts created, and queued when it is inbound; a closed email
    conversation is reopened and queued again (a reply to a resolved email
    is the same matter). Then the message is recorded.
    """
    steps: list = []
    if not state.status:
        steps.append((_create, dict(channel=channel, direction=direction, case_id=case_id, subject=subject)))
        if direction == "inbound":
            steps.append((decide_queue, dict(queue=queue)))
    elif state.status in CLOSED:
        steps += [(decide_reopen, dict(reason="customer replied")), (decide_queue, dict(queue=queue))]
    if message is not None:
        steps.append((decide_message, dict(direction=direction, **message)))
    return run(state, *steps)


def _create(_state: InteractionState, **kwargs) -> list:
    """decide_create as a step of `run` (a new interaction has no state to decide on)."""
    return decide_create(**kwargs)


def decide_chat_end(state: InteractionState, *, reason: str = "customer_left") -> list:
    """The chat session closed: an answered chat ends, a waiting one is abandoned."""
    if not state.status:
        raise UnknownConversation("end for a chat session that never started here")
    if state.status in WAITING:
        return decide_abandon(state)
    return decide_end(state, reason=reason)
