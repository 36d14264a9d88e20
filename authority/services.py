"""Agent empowerment within limits: an action within the agent's authority is done at once; above it, it waits
for a supervisor, who is alerted on the wallboard and answers over the API (docs/PROTOCOLS.md)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q, Sum
from django.utils import timezone

from authority.events import ActionTaken, ApprovalDecided, ApprovalRequested
from authority.models import KINDS, Action, AuthorityLimit
from events import store
from events.store import Metadata
from interactions import domain as idomain


def limits_for(user, kind: str) -> tuple[Decimal, Decimal] | None:
    """(per action, per day) for this user and kind: the highest of the limits that apply, None if none."""
    found = AuthorityLimit.objects.filter(Q(group=None) | Q(group__in=user.groups.all()), kind=kind).aggregate(
        per_action=Max("per_action"), per_day=Max("per_day"))
    return None if found["per_action"] is None else (found["per_action"], found["per_day"])


def action_request(*, interaction_id: uuid.UUID, user, kind: str, amount: Decimal, reason: str,
                   meta: Metadata) -> Action:
    """Do `kind` of `amount` for the customer of an interaction the agent is handling. Within the limits:
    authority.ActionTaken, done. Above either (or with no limit set): authority.ApprovalRequested, pending.
    Refused (409 protocol_refused) while a step of the contact's script that gates account changes (identity
    verification) is not done (frameworks)."""
    from frameworks.services import closed_gate
    from interactions.models import Interaction

    if kind not in KINDS:
        raise idomain.InvalidValue("kind", f"unknown action {kind!r}; known: {', '.join(KINDS)}")
    if amount <= 0:
        raise idomain.InvalidValue("amount", "the amount is above 0")
    agent_id = user.get_username()
    now = timezone.now()
    with transaction.atomic():
        interaction = Interaction.objects.select_for_update().filter(id=interaction_id).first()
        if interaction is None:
            raise idomain.InvalidValue("interaction_id", "no such interaction")
        if interaction.agent_id != agent_id or interaction.status not in idomain.CONNECTED + (idomain.WRAP_UP,):
            raise idomain.TransitionRefused("act for a customer on a contact you are handling")
        refused = closed_gate(interaction.id, "account_changes")  # e.g. identity not verified yet
        if refused:
            raise idomain.ProtocolRefused(refused)
        limits = limits_for(user, kind)
        day_start = now.astimezone(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        today = Action.objects.filter(agent_id=agent_id, kind=kind, status=Action.DONE,
                                      done_at__gte=day_start).aggregate(total=Sum("amount"))["total"] or 0
        over = ("no limit set" if limits is None else
                f"per action {limits[0]}" if amount > limits[0] else
                f"per day {limits[1]} ({today} done today)" if today + amount > limits[1] else None)
        action = Action(id=store.uuid7(), interaction_id=interaction.id, customer_id=interaction.customer_id,
                        agent_id=agent_id, kind=kind, amount=amount, reason=idomain.masked(reason))
        if over is None:
            event = ActionTaken(interaction_id=interaction.id, kind=kind, amount=str(amount), agent_id=agent_id,
                                reason=action.reason)
            action.status, action.done_at = Action.DONE, now
        else:
            action.expected_by = now + dt.timedelta(seconds=settings.APPROVAL_RESPONSE_SECONDS)
            event = ApprovalRequested(interaction_id=interaction.id, kind=kind, amount=str(amount), agent_id=agent_id,
                                      limit=over, expected_by=action.expected_by.isoformat(), reason=action.reason)
            action.status = Action.PENDING
        store.append(stream_type="action", stream_id=action.id, customer_id=action.customer_id, events=[event],
                     expected_version=0, meta=meta)
        action.version = 1
        action.save(force_insert=True)
        if action.status == Action.PENDING:
            message = {"type": "authority.approval", "action_id": str(action.id), "kind": kind,
                       "amount": str(amount), "agent_id": agent_id, "interaction_id": str(interaction.id),
                       "limit": over, "expected_by": action.expected_by.isoformat()}
            transaction.on_commit(lambda: _push([("routing.wallboard", message)]))
    return action


def approval_decide(*, action_id: uuid.UUID, approved: bool, by: str, note: str, meta: Metadata) -> Action:
    """A supervisor approves (the action is taken) or rejects a pending action; the agent hears it on their
    socket."""
    with transaction.atomic():
        action = Action.objects.select_for_update().filter(id=action_id).first()
        if action is None:
            raise idomain.InvalidValue("action_id", "no such action")
        if action.status != Action.PENDING:
            raise idomain.TransitionRefused(f"the action is {action.status}, not waiting for approval")
        events = [ApprovalDecided(approved=approved, by=by, note=idomain.masked(note))]
        if approved:
            events.append(ActionTaken(interaction_id=action.interaction_id, kind=action.kind,
                                      amount=str(action.amount), agent_id=action.agent_id, approved_by=by,
                                      reason=action.reason))
        store.append(stream_type="action", stream_id=action.id, customer_id=action.customer_id, events=events,
                     expected_version=action.version, meta=meta)
        action.version += len(events)
        action.status, action.decided_by = (Action.DONE if approved else Action.REJECTED), by
        action.done_at = timezone.now() if approved else None
        action.save(update_fields=["status", "decided_by", "done_at", "version"])
        message = {"type": "authority.decided", "action_id": str(action.id), "approved": approved, "by": by,
                   "kind": action.kind, "amount": str(action.amount), "interaction_id": str(action.interaction_id)}
        transaction.on_commit(lambda: _push_agent(action.agent_id, message))
    return action


def _push(messages) -> None:
    from contactcenter import realtime

    realtime.notify(messages)


def _push_agent(agent_id: str, message: dict) -> None:
    from routing.realtime import to_agent

    _push(to_agent(agent_id, [message]))
