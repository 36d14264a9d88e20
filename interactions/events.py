"""Events of the interaction stream (stream_type "interaction", stream_id = interaction id).

An interaction is one conversation on one channel; its events carry the
customer id, so they land on the customer's timeline and keep their order
with everything else of that customer on Kafka.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from events.registry import event, pii


@event("interactions.InteractionCreated", version=1, emitted_by="interactions.services (intake)")
@dataclass(frozen=True)
class InteractionCreated:
    """A conversation began: inbound from the customer or outbound from the center."""

    channel: str
    direction: str
    case_id: uuid.UUID
    subject: str | None = pii(default=None)


@event("interactions.InteractionQueued", version=1, emitted_by="interactions.services")
@dataclass(frozen=True)
class InteractionQueued:
    """Waiting in a queue for an agent."""

    queue: str


@event("interactions.InteractionOffered", version=1, emitted_by="routing (offers)")
@dataclass(frozen=True)
class InteractionOffered:
    """Offered to one agent (for a call: ringing at the agent)."""

    agent_id: str


@event("interactions.OfferDeclined", version=1, emitted_by="routing (offers)")
@dataclass(frozen=True)
class OfferDeclined:
    """The agent rejected the offer or let it time out; the interaction waits again."""

    agent_id: str
    reason: str


@event("interactions.InteractionAccepted", version=1, emitted_by="interactions.services")
@dataclass(frozen=True)
class InteractionAccepted:
    """The agent took it (for a call: answered)."""

    agent_id: str


@event("interactions.InteractionHeld", version=1, emitted_by="interactions.services")
@dataclass(frozen=True)
class InteractionHeld:
    """Put on hold by the agent."""


@event("interactions.InteractionResumed", version=1, emitted_by="interactions.services")
@dataclass(frozen=True)
class InteractionResumed:
    """Taken off hold."""


@event("interactions.InteractionTransferred", version=1, emitted_by="interactions.services")
@dataclass(frozen=True)
class InteractionTransferred:
    """Handed to another agent or queue; the note travels with it (free text about the customer: personal, and
    masked like every stored text)."""

    from_agent_id: str
    to_agent_id: str | None
    to_queue: str | None
    note: str = pii()


@event("interactions.MessageRecorded", version=2, emitted_by="interactions.services (channels, webhooks)")
@dataclass(frozen=True)
class MessageRecorded:
    """A message in the conversation, either way (chat, email, SMS, social).

    v2 adds what a channel provider tells about it: `provider` (the
    integration that delivered it), `kind` (social: "dm" or "mention"),
    and for email the `subject`, `sender` and `recipients`.
    """

    direction: str
    body: str = pii()
    provider_message_id: str | None = None
    provider: str | None = None
    kind: str | None = None
    subject: str | None = pii(default=None)
    sender: str | None = pii(default=None)
    recipients: list[str] = pii(default_factory=list)

    @staticmethod
    def upcast_v1_v2(data: dict) -> dict:
        return {"provider": None, "kind": None, "subject": None, "sender": None, "recipients": [], **data}


@event("interactions.TranscriptSegmentRecorded", version=1, emitted_by="interactions.services (voice webhooks)")
@dataclass(frozen=True)
class TranscriptSegmentRecorded:
    """A stretch of a call's transcript from the provider's speech-to-text: who spoke (`speaker`: customer or
    agent), what was said (masked like every stored text) and where in the call (`offset_seconds`)."""

    speaker: str
    text: str = pii()
    offset_seconds: float | None = None


@event("interactions.WarningGiven", version=1, emitted_by="interactions.services.interaction_warn")
@dataclass(frozen=True)
class WarningGiven:
    """The agent warned the customer that the conversation will end if their behaviour goes on (the abuse
    protocol: docs/PROTOCOLS.md). `reason`: abuse, threat, harassment or other; `text`: the words used
    (masked like every stored text)."""

    reason: str
    text: str = pii(default="")


@event("interactions.InteractionEnded", version=1, emitted_by="interactions.services")
@dataclass(frozen=True)
class InteractionEnded:
    """The conversation itself ended; wrap-up follows."""

    reason: str
    duration_seconds: int | None = None


@event("interactions.InteractionWrappedUp", version=1, emitted_by="interactions.services")
@dataclass(frozen=True)
class InteractionWrappedUp:
    """After-contact work done: disposition code and notes. The interaction is resolved."""

    disposition: str
    notes: str = pii(default="")


@event("interactions.InteractionAbandoned", version=1, emitted_by="interactions.services")
@dataclass(frozen=True)
class InteractionAbandoned:
    """The customer left before an agent took the conversation."""

    waited_seconds: int | None = None


@event("interactions.InteractionReopened", version=1, emitted_by="interactions.services")
@dataclass(frozen=True)
class InteractionReopened:
    """A resolved or abandoned conversation came back (e.g. the customer replied)."""

    reason: str


@event("interactions.RecordingAttached", version=1, emitted_by="interactions.services (voice webhooks)")
@dataclass(frozen=True)
class RecordingAttached:
    """A call recording exists at `recording_ref` (the provider's reference, not the audio).

    `consent` is what the provider reported about the caller's consent to
    recording: "given", "refused" or "unknown". The reference is personal
    data: erasing the customer erases the pointer to their voice.
    """

    recording_ref: str = pii()
    consent: str = "unknown"
