"""Interaction commands: load the state row, decide, append, keep the row in step; one transaction each.

Every command is a `domain.decide_*` function run through `_command`: a
refused transition raises before anything is written, and a concurrent
command on the same interaction waits for the row lock, then decides on the
new state.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

from customers import services as customer_services
from customers.identity import Identity
from customers.models import Customer
from events import store
from events.store import Metadata
from interactions import domain
from interactions.models import Case, Interaction


@dataclass(frozen=True)
class InteractionResult:
    interaction: Interaction
    positions: list[int]
    customer_created: bool = False


class CaseOfAnotherCustomer(domain.InvalidValue):
    def __init__(self) -> None:
        super().__init__("case_id", "this case belongs to another customer")


def interaction_create(
    *, channel: str, direction: str, meta: Metadata, customer_id: uuid.UUID | None = None,
    ident: Identity | None = None, case_id: uuid.UUID | None = None, subject: str | None = None,
    queue: str | None = None, display_name: str | None = None,
) -> InteractionResult:
    """Start an interaction for a known customer, or for whoever owns `ident` (registered if new).

    Emits interactions.InteractionCreated (and InteractionQueued when a queue
    is given). Without `case_id` it opens a new case; with one, the case must
    be the same customer's, so a chat continued as a call keeps its context.
    """
    created = False
    with transaction.atomic():
        if customer_id is None:
            customer_id, created = customer_services.customer_resolve(ident=ident, meta=meta,
                                                                      display_name=display_name)
        elif not Customer.objects.filter(id=customer_id, erased_at__isnull=True).exists():
            raise domain.InvalidValue("customer_id", "no such customer")
        if case_id is None:
            case = Case.objects.create(id=store.uuid7(), customer_id=customer_id)
        else:
            case = Case.objects.filter(id=case_id).first()
            if case is None:
                raise domain.InvalidValue("case_id", "no such case")
            if case.customer_id != customer_id:
                raise CaseOfAnotherCustomer()
        new_events = domain.decide_create(channel=channel, direction=direction, case_id=case.id, subject=subject)
        state = domain.fold(new_events)
        if queue:
            new_events += domain.decide_queue(state, queue=queue)
        state = domain.fold(new_events)
        interaction_id = store.uuid7()
        positions = store.append(stream_type="interaction", stream_id=interaction_id, customer_id=customer_id,
                                 events=new_events, expected_version=0, meta=_on(meta, channel))
        row = Interaction(id=interaction_id, customer_id=customer_id, case=case, channel=channel,
                          direction=direction, status="", version=0)
        row.take(state)
        row.save(force_insert=True)
    return InteractionResult(row, positions, created)


def _on(meta: Metadata, channel: str) -> Metadata:
    return Metadata(actor=meta.actor, correlation_id=meta.correlation_id, causation_id=meta.causation_id,
                    channel=channel)


def _command(interaction_id: uuid.UUID, decide: Callable, *, meta: Metadata, **kwargs) -> InteractionResult:
    with transaction.atomic():
        row = Interaction.objects.select_for_update().get(id=interaction_id)  # DoesNotExist -> 404
        state = row.state()
        new_events = decide(state, **kwargs)
        positions = store.append(stream_type="interaction", stream_id=row.id, customer_id=row.customer_id,
                                 events=new_events, expected_version=row.version, meta=_on(meta, row.channel))
        for event in new_events:
            state = domain.evolve(state, event)
        row.take(state)
        row.save(update_fields=["status", "queue", "agent_id", "version", "updated_at"])
    return InteractionResult(row, positions)


def interaction_queue(*, interaction_id, queue: str, meta) -> InteractionResult:
    """Put a new interaction in a queue. Emits interactions.InteractionQueued."""
    return _command(interaction_id, domain.decide_queue, meta=meta, queue=queue)


def interaction_offer(*, interaction_id, agent_id: str, meta) -> InteractionResult:
    """Offer a queued interaction to one agent (a call rings). Emits interactions.InteractionOffered."""
    return _command(interaction_id, domain.decide_offer, meta=meta, agent_id=agent_id)


def interaction_decline(*, interaction_id, agent_id: str, reason: str, meta) -> InteractionResult:
    """The offered agent rejects (or lets time out); back to the queue. Emits interactions.OfferDeclined."""
    return _command(interaction_id, domain.decide_decline, meta=meta, agent_id=agent_id, reason=reason)


def interaction_accept(*, interaction_id, agent_id: str, meta) -> InteractionResult:
    """The offered agent takes it (a call is answered). Emits interactions.InteractionAccepted."""
    return _command(interaction_id, domain.decide_accept, meta=meta, agent_id=agent_id)


def interaction_hold(*, interaction_id, meta) -> InteractionResult:
    """Emits interactions.InteractionHeld."""
    return _command(interaction_id, domain.decide_hold, meta=meta)


def interaction_resume(*, interaction_id, meta) -> InteractionResult:
    """Emits interactions.InteractionResumed."""
    return _command(interaction_id, domain.decide_resume, meta=meta)


def interaction_transfer(*, interaction_id, note: str, meta, to_agent_id: str | None = None,
                         to_queue: str | None = None) -> InteractionResult:
    """Hand over to an agent or a queue; the note travels with it. Emits interactions.InteractionTransferred."""
    return _command(interaction_id, domain.decide_transfer, meta=meta, to_agent_id=to_agent_id, to_queue=to_queue,
                    note=note)


def message_record(*, interaction_id, direction: str, body: str, meta,
                   provider_message_id: str | None = None) -> InteractionResult:
    """A message either way on an open conversation. Emits interactions.MessageRecorded."""
    return _command(interaction_id, domain.decide_message, meta=meta, direction=direction, body=body,
                    provider_message_id=provider_message_id)


def interaction_end(*, interaction_id, reason: str, meta, duration_seconds: int | None = None) -> InteractionResult:
    """The conversation ended; wrap-up follows. Emits interactions.InteractionEnded."""
    return _command(interaction_id, domain.decide_end, meta=meta, reason=reason, duration_seconds=duration_seconds)


def interaction_wrap_up(*, interaction_id, disposition: str, meta, notes: str = "") -> InteractionResult:
    """Disposition code and notes; the interaction is resolved. Emits interactions.InteractionWrappedUp."""
    return _command(interaction_id, domain.decide_wrap_up, meta=meta, disposition=disposition, notes=notes)


def interaction_abandon(*, interaction_id, meta, waited_seconds: int | None = None) -> InteractionResult:
    """The customer left while waiting. Emits interactions.InteractionAbandoned."""
    return _command(interaction_id, domain.decide_abandon, meta=meta, waited_seconds=waited_seconds)


def interaction_reopen(*, interaction_id, reason: str, meta) -> InteractionResult:
    """A resolved or abandoned interaction comes back. Emits interactions.InteractionReopened."""
    return _command(interaction_id, domain.decide_reopen, meta=meta, reason=reason)
