"""Callbacks: promised, routed when due to the agent who promised them, kept or cancelled (docs/PROTOCOLS.md).

Nothing promised is forgotten: a callback is a row and an event stream from
the moment it is promised. The beat task `followups.tasks.callbacks_due`
turns each due callback into an outbound interaction in the same case,
waiting in its queue with the promising agent preferred. Wrapping that
interaction up completes the callback.
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from events import store
from events.store import Actor, Metadata
from followups.events import (
    CallbackCancelled,
    CallbackCompleted,
    CallbackScheduled,
    CallbackStarted,
    Escalated,
    EscalationAccepted,
    EscalationBreached,
    FollowUpCancelled,
    FollowUpCreated,
    FollowUpDone,
    FollowUpOverdue,
)
from followups.models import Callback, Escalation, FollowUp
from interactions import domain as idomain
from interactions import events as iev

SYSTEM = Metadata(actor=Actor("system", name="followups"))
DEFAULT_QUEUE = "default"  # routing's


def callback_schedule(*, customer_id: uuid.UUID, reason: str, due_at: dt.datetime, meta: Metadata,
                      agent_id: str | None = None, origin_interaction_id: uuid.UUID | None = None,
                      channel: str | None = None, queue: str | None = None, note: str = "") -> Callback:
    """Promise a callback. Emits followups.CallbackScheduled. Without a channel: the customer's preferred one,
    else the origin interaction's; without a queue: the origin's, else routing's default queue."""
    from customers.models import CustomerProfile
    from interactions.models import Interaction

    if reason not in Callback.REASONS:
        raise idomain.InvalidValue("reason", f"unknown reason {reason!r}; known: {', '.join(Callback.REASONS)}")
    if channel is not None and channel not in idomain.CHANNELS:
        raise idomain.InvalidValue("channel", f"unknown channel {channel!r}")
    origin = None
    if origin_interaction_id is not None:
        origin = Interaction.objects.filter(id=origin_interaction_id).first()
        if origin is None or origin.customer_id != customer_id:
            raise idomain.InvalidValue("origin_interaction_id", "no such interaction of this customer")
    preferred = CustomerProfile.objects.filter(customer_id=customer_id).values_list("preferred_channel",
                                                                                   flat=True).first()
    channel = channel or (preferred if preferred in idomain.CHANNELS else None) or (origin.channel if origin
                                                                                    else "voice")
    queue = queue or (origin.queue if origin and origin.queue else DEFAULT_QUEUE)
    with transaction.atomic():
        callback = Callback(id=store.uuid7(), customer_id=customer_id, reason=reason, due_at=due_at,
                            channel=channel, queue=queue, agent_id=agent_id,
                            origin_interaction_id=origin_interaction_id, case_id=origin.case_id if origin else None)
        scheduled = CallbackScheduled(reason=reason, due_at=due_at.isoformat(), channel=channel, queue=queue, agent_id=agent_id,
                                      origin_interaction_id=origin_interaction_id, note=idomain.masked(note))
        store.append(stream_type="callback", stream_id=callback.id, customer_id=customer_id, events=[scheduled],
                     expected_version=0, meta=meta)
        callback.version = 1
        callback.save(force_insert=True)
    return callback


def callback_cancel(*, callback_id: uuid.UUID, reason: str, meta: Metadata) -> Callback:
    """Withdraw an open promise. Emits followups.CallbackCancelled; an interaction it started stays as it is."""
    with transaction.atomic():
        callback = Callback.objects.select_for_update().filter(id=callback_id).first()
        if callback is None:
            raise idomain.InvalidValue("callback_id", "no such callback")
        if callback.status not in Callback.OPEN:
            raise idomain.TransitionRefused(f"the callback is {callback.status}: nothing to cancel")
        _append(callback, CallbackCancelled(reason=idomain.masked(reason)), meta)
        callback.status = Callback.CANCELLED
        callback.save(update_fields=["status", "version"])
    return callback


def callbacks_due(*, now: dt.datetime | None = None, limit: int = 100) -> int:
    """Start every callback that is due: an outbound interaction in the same case, queued, the promising agent
    preferred. Each in its own transaction; callbacks locked by another worker are skipped. Returns how many."""
    from interactions import services as interaction_services
    from routing.services import work_prefer

    now = now or timezone.now()
    started = 0
    for callback_id in Callback.objects.filter(status=Callback.SCHEDULED, due_at__lte=now).order_by(
            "due_at").values_list("id", flat=True)[:limit]:
        with transaction.atomic():
            callback = Callback.objects.select_for_update(skip_locked=True).filter(
                id=callback_id, status=Callback.SCHEDULED).first()
            if callback is None:
                continue
            result = interaction_services.interaction_create(
                channel=callback.channel, direction="outbound", meta=SYSTEM, customer_id=callback.customer_id,
                case_id=callback.case_id, queue=callback.queue)
            if callback.agent_id:
                work_prefer(interaction_id=result.interaction.id, agent_id=callback.agent_id)
            _append(callback, CallbackStarted(interaction_id=result.interaction.id), SYSTEM)
            callback.status, callback.interaction_id = Callback.STARTED, result.interaction.id
            callback.save(update_fields=["status", "interaction_id", "version"])
            started += 1
    return started


def on_interaction_changed(row, new_events: list) -> None:
    """interactions.hooks listener, in the interaction's transaction: a dropped call (end reason technical_drop)
    schedules a callback to its agent; a callback's interaction wrapped up completes the callback."""
    for event in new_events:
        if isinstance(event, iev.InteractionEnded) and event.reason == "technical_drop":
            callback_schedule(customer_id=row.customer_id, reason="technical_drop", agent_id=row.agent_id,
                              due_at=timezone.now() + dt.timedelta(seconds=settings.CALLBACK_AFTER_DROP_SECONDS),
                              origin_interaction_id=row.id, queue=row.queue, meta=SYSTEM,
                              note="the contact dropped (technical): call the customer back")
        elif isinstance(event, iev.InteractionAccepted):
            # The specialist who accepts an escalated contact takes the escalation up.
            for escalation in Escalation.objects.select_for_update().filter(
                    interaction_id=row.id, target="queue", status=Escalation.OPEN):
                _accept(escalation, by=event.agent_id, meta=SYSTEM)
        elif isinstance(event, iev.InteractionWrappedUp):
            callback = Callback.objects.select_for_update().filter(interaction_id=row.id,
                                                                   status=Callback.STARTED).first()
            if callback is not None:
                _append(callback, CallbackCompleted(interaction_id=row.id, agent_id=row.agent_id), SYSTEM)
                callback.status = Callback.COMPLETED
                callback.save(update_fields=["status", "version"])


def escalate(*, interaction_id: uuid.UUID, agent_id: str, target: str, reason: str, respond_within_minutes: int,
             meta: Metadata, queue: str | None = None) -> Escalation:
    """Escalate a contact the agent is handling: to a specialist queue (transferred there with the reason as its
    note, and routed like any other work) or to the supervisors (alerted on the wallboard; one takes it up with
    escalation_accept). Emits followups.Escalated; the clock runs until someone takes it up."""
    from interactions import services as interaction_services
    from interactions.models import Interaction
    from routing.models import Queue

    if target not in Escalation.TARGETS:
        raise idomain.InvalidValue("target", f"escalate to one of {', '.join(Escalation.TARGETS)}")
    if not reason.strip():
        raise idomain.InvalidValue("reason", "say why it is escalated")
    if target == "queue" and not Queue.objects.filter(name=queue or "").exists():
        raise idomain.InvalidValue("queue", f"no such queue {queue!r}")
    now = timezone.now()
    with transaction.atomic():
        row = Interaction.objects.select_for_update().filter(id=interaction_id).first()
        if row is None:
            raise idomain.InvalidValue("interaction_id", "no such interaction")
        if row.agent_id != agent_id or row.status not in idomain.CONNECTED:
            raise idomain.TransitionRefused("escalate a contact you are handling")
        escalation = Escalation(id=store.uuid7(), interaction_id=row.id, customer_id=row.customer_id,
                                agent_id=agent_id, target=target, queue=queue if target == "queue" else None,
                                reason=idomain.masked(reason),
                                respond_by=now + dt.timedelta(minutes=respond_within_minutes))
        event = Escalated(interaction_id=row.id, agent_id=agent_id, target=target, queue=escalation.queue,
                          respond_by=escalation.respond_by.isoformat(), reason=escalation.reason)
        store.append(stream_type="escalation", stream_id=escalation.id, customer_id=row.customer_id, events=[event],
                     expected_version=0, meta=meta)
        escalation.version = 1
        escalation.save(force_insert=True)
        if target == "queue":
            interaction_services.interaction_transfer(interaction_id=row.id, to_queue=queue, meta=meta,
                                                      note=f"escalated: {reason}")
        message = {"type": "followups.escalation", "escalation_id": str(escalation.id),
                   "interaction_id": str(row.id), "agent_id": agent_id, "target": target, "queue": escalation.queue,
                   "respond_by": escalation.respond_by.isoformat()}
        transaction.on_commit(lambda: _wallboard(message))
    return escalation


def escalation_accept(*, escalation_id: uuid.UUID, by: str, meta: Metadata) -> Escalation:
    """A supervisor takes an escalation up: the clock stops. Emits followups.EscalationAccepted."""
    with transaction.atomic():
        escalation = Escalation.objects.select_for_update().filter(id=escalation_id).first()
        if escalation is None:
            raise idomain.InvalidValue("escalation_id", "no such escalation")
        if escalation.status != Escalation.OPEN:
            raise idomain.TransitionRefused(f"already taken up by {escalation.accepted_by}")
        _accept(escalation, by=by, meta=meta)
    return escalation


def escalations_breached(*, now: dt.datetime | None = None) -> int:
    """Open escalations past the time the customer was told: each marked once (followups.EscalationBreached) and
    pushed to the supervisors. Returns how many."""
    def message(e: Escalation, overdue: int) -> dict:
        return {"type": "followups.escalation_breached", "escalation_id": str(e.id),
                "interaction_id": str(e.interaction_id), "agent_id": e.agent_id, "target": e.target,
                "queue": e.queue, "overdue_seconds": overdue}

    return _mark_late(Escalation.objects.filter(status=Escalation.OPEN), due="respond_by", flag="breached",
                      stream_type="escalation", event=EscalationBreached, message=message, desk=False, now=now)


def followup_create(*, agent_id: str, due_at: dt.datetime, note: str, meta: Metadata,
                    customer_id: uuid.UUID | None = None, interaction_id: uuid.UUID | None = None) -> FollowUp:
    """A task promised to a customer, owned by `agent_id`, due by `due_at`: for the customer of
    `interaction_id` (the contact it was promised on) or `customer_id`. Emits followups.FollowUpCreated."""
    from customers.models import Customer
    from interactions.models import Interaction

    if not note.strip():
        raise idomain.InvalidValue("note", "say what was promised")
    if interaction_id is not None:
        found = Interaction.objects.filter(id=interaction_id).values_list("customer_id", flat=True).first()
        if found is None or (customer_id is not None and found != customer_id):
            raise idomain.InvalidValue("interaction_id", "no such interaction (of this customer)")
        customer_id = found
    if customer_id is None:
        raise idomain.InvalidValue("customer_id", "name the customer, or the interaction it was promised on")
    if not Customer.objects.filter(id=customer_id, erased_at__isnull=True).exists():
        raise idomain.InvalidValue("customer_id", "no such customer")
    with transaction.atomic():
        task = FollowUp(id=store.uuid7(), customer_id=customer_id, interaction_id=interaction_id, agent_id=agent_id,
                        note=idomain.masked(note), due_at=due_at)
        event = FollowUpCreated(agent_id=agent_id, due_at=due_at.isoformat(), note=task.note,
                                interaction_id=interaction_id)
        store.append(stream_type="followup", stream_id=task.id, customer_id=customer_id, events=[event],
                     expected_version=0, meta=meta)
        task.version = 1
        task.save(force_insert=True)
    return task


def followup_close(*, followup_id: uuid.UUID, by: str, done: bool, text: str, meta: Metadata) -> FollowUp:
    """Done (followups.FollowUpDone, `text` the outcome) or cancelled (followups.FollowUpCancelled, `text` the
    reason). Only an open task closes."""
    with transaction.atomic():
        task = FollowUp.objects.select_for_update().filter(id=followup_id).first()
        if task is None:
            raise idomain.InvalidValue("followup_id", "no such follow-up")
        if task.status != FollowUp.OPEN:
            raise idomain.TransitionRefused(f"the follow-up is {task.status} already")
        if not done and not text.strip():
            raise idomain.InvalidValue("reason", "say why it will not be done")
        event = (FollowUpDone(by=by, outcome=idomain.masked(text)) if done
                 else FollowUpCancelled(by=by, reason=idomain.masked(text)))
        _append(task, event, meta, stream_type="followup")
        task.status = FollowUp.DONE if done else FollowUp.CANCELLED
        task.closed_by, task.closed_at = by, timezone.now()
        task.save(update_fields=["status", "closed_by", "closed_at", "version"])
    return task


def followups_overdue(*, now: dt.datetime | None = None) -> int:
    """Open follow-ups past their due time: each marked once (followups.FollowUpOverdue) and pushed to the
    wallboard and to its agent's desk. Returns how many."""
    def message(f: FollowUp, overdue: int) -> dict:
        return {"type": "followups.overdue", "followup_id": str(f.id), "customer_id": str(f.customer_id),
                "agent_id": f.agent_id, "due_at": f.due_at.isoformat(), "overdue_seconds": overdue}

    return _mark_late(FollowUp.objects.filter(status=FollowUp.OPEN), due="due_at", flag="overdue",
                      stream_type="followup", event=FollowUpOverdue, message=message, desk=True, now=now)


def _mark_late(open_records, *, due: str, flag: str, stream_type: str, event, message, desk: bool,
               now: dt.datetime | None) -> int:
    """Each open record past its `due` time and not yet `flag`ged: `event(overdue_seconds)` appended to its
    stream, flagged, and `message(record, overdue)` pushed to the wallboard (and the owner's desk), once even
    with sweeps racing (SKIP LOCKED). Returns how many."""
    now = now or timezone.now()
    pending = {flag: False, f"{due}__lt": now}
    marked = 0
    for record_id in open_records.filter(**pending).values_list("id", flat=True)[:200]:
        with transaction.atomic():
            record = open_records.select_for_update(skip_locked=True).filter(id=record_id, **pending).first()
            if record is None:
                continue
            overdue = int((now - getattr(record, due)).total_seconds())
            _append(record, event(overdue_seconds=overdue), SYSTEM, stream_type=stream_type)
            setattr(record, flag, True)
            record.save(update_fields=[flag, "version"])
            pushed = message(record, overdue)
            transaction.on_commit(lambda m=pushed: (_wallboard(m), desk and _desk(m["agent_id"], m)))
            marked += 1
    return marked


def _accept(escalation: Escalation, *, by: str, meta: Metadata) -> None:
    now = timezone.now()
    within = int((now - escalation.created_at).total_seconds())
    _append(escalation, EscalationAccepted(by=by, within_seconds=within), meta, stream_type="escalation")
    escalation.status, escalation.accepted_by, escalation.accepted_at = Escalation.ACCEPTED, by, now
    escalation.save(update_fields=["status", "accepted_by", "accepted_at", "version"])


def _wallboard(message: dict) -> None:
    from contactcenter import realtime
    from routing.realtime import WALLBOARD

    realtime.notify([(WALLBOARD, message)])


def _desk(agent_id: str | None, message: dict) -> None:
    from contactcenter import realtime
    from routing.realtime import to_agent

    realtime.notify(to_agent(agent_id, [message]))


def _append(record, event, meta: Metadata, *, stream_type: str = "callback") -> None:
    store.append(stream_type=stream_type, stream_id=record.id, customer_id=record.customer_id, events=[event],
                 expected_version=record.version, meta=meta)
    record.version += 1
