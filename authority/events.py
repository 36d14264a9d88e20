"""Events of actions an agent takes for a customer (stream_type "action", stream_id = the action's id):
within the agent's authority at once, above it after a supervisor's approval (docs/PROTOCOLS.md)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from events.registry import event, pii


@event("authority.ActionTaken", version=1, emitted_by="authority.services")
@dataclass(frozen=True)
class ActionTaken:
    """Done for the customer: a refund, credit, discount, expedited shipping or fee waiver of `amount`.
    `approved_by` names the supervisor when it was above the agent's limits."""

    interaction_id: uuid.UUID
    kind: str
    amount: str  # decimal, as text
    agent_id: str
    approved_by: str | None = None
    reason: str = pii(default="")


@event("authority.ApprovalRequested", version=1, emitted_by="authority.services.action_request")
@dataclass(frozen=True)
class ApprovalRequested:
    """Above the agent's limit (`limit` says which): waits for a supervisor; the customer was told to expect an
    answer by `expected_by`."""

    interaction_id: uuid.UUID
    kind: str
    amount: str
    agent_id: str
    limit: str
    expected_by: str
    reason: str = pii(default="")


@event("authority.ApprovalDecided", version=1, emitted_by="authority.services.approval_decide")
@dataclass(frozen=True)
class ApprovalDecided:
    """A supervisor's answer. Approved, the action is taken (ActionTaken follows in the same append)."""

    approved: bool
    by: str
    note: str = pii(default="")
