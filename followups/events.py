"""Events of callbacks (stream_type "callback", stream_id = the callback's id): promises to call a customer back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from events.registry import event, pii


@event("followups.CallbackScheduled", version=1, emitted_by="followups.services.callback_schedule")
@dataclass(frozen=True)
class CallbackScheduled:
    """A callback is promised: at `due_at`, on `channel`, routed in `queue`, to `agent_id` when they are free.
    `reason`: customer_requested, technical_drop (scheduled by itself when a call drops) or promised (the
    agent promised to come back)."""

    reason: str
    due_at: str  # ISO 8601, with its offset
    channel: str
    queue: str
    agent_id: str | None = None
    origin_interaction_id: uuid.UUID | None = None
    note: str = pii(default="")


@event("followups.CallbackStarted", version=1, emitted_by="followups.services.callbacks_due")
@dataclass(frozen=True)
class CallbackStarted:
    """The callback fell due: `interaction_id`, an outbound interaction in the same case, waits in the queue,
    its promised agent preferred."""

    interaction_id: uuid.UUID


@event("followups.CallbackCompleted", version=1, emitted_by="followups.services.on_interaction_changed")
@dataclass(frozen=True)
class CallbackCompleted:
    """The callback's interaction was wrapped up (by `agent_id`): the promise is kept."""

    interaction_id: uuid.UUID
    agent_id: str | None = None


@event("followups.CallbackCancelled", version=1, emitted_by="followups.services.callback_cancel")
@dataclass(frozen=True)
class CallbackCancelled:
    """No longer wanted (the customer called back first, or asked not to be called), with who said so."""

    reason: str = pii(default="")


@event("followups.Escalated", version=1, emitted_by="followups.services.escalate")
@dataclass(frozen=True)
class Escalated:
    """The agent escalated the contact (stream_type "escalation"): to a specialist `queue` (the contact is
    transferred there and routed like other work) or to the supervisors. The customer was told to expect a
    response by `respond_by`."""

    interaction_id: uuid.UUID
    agent_id: str
    target: str  # "queue" or "supervisor"
    respond_by: str  # ISO 8601
    queue: str | None = None
    reason: str = pii(default="")


@event("followups.EscalationAccepted", version=1, emitted_by="followups.services")
@dataclass(frozen=True)
class EscalationAccepted:
    """Someone took the escalation up (a supervisor, or the specialist agent who accepted the contact): the
    response clock stops."""

    by: str
    within_seconds: int


@event("followups.EscalationBreached", version=1, emitted_by="followups.services.escalations_breached")
@dataclass(frozen=True)
class EscalationBreached:
    """Nobody took it up by the time the customer was told: the supervisors are alerted."""

    overdue_seconds: int


@event("followups.FollowUpCreated", version=1, emitted_by="followups.services.followup_create")
@dataclass(frozen=True)
class FollowUpCreated:
    """A task promised to a customer, owned by `agent_id`, due by `due_at` (ISO 8601): send the replacement,
    check the refund landed, answer the question once the engineer has. `note` says what (masked)."""

    agent_id: str
    due_at: str
    note: str = pii()
    interaction_id: uuid.UUID | None = None


@event("followups.FollowUpDone", version=1, emitted_by="followups.services.followup_close")
@dataclass(frozen=True)
class FollowUpDone:
    """The task was done (by `by`); `outcome` says how (masked)."""

    by: str
    outcome: str = pii(default="")


@event("followups.FollowUpCancelled", version=1, emitted_by="followups.services.followup_close")
@dataclass(frozen=True)
class FollowUpCancelled:
    """The task will not be done (by `by`), with the reason."""

    by: str
    reason: str = pii(default="")


@event("followups.FollowUpOverdue", version=1, emitted_by="followups.services.followups_overdue")
@dataclass(frozen=True)
class FollowUpOverdue:
    """Still open past its due time: the supervisors and its agent were alerted (once)."""

    overdue_seconds: int
