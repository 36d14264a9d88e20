"""Customer commands: load, decide, append, in one transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from customers import domain
from customers.models import Customer
from events import store
from events.crypto import destroy_key
from events.store import Metadata


@dataclass(frozen=True)
class CommandResult:
    customer_id: uuid.UUID
    version: int
    positions: list[int]


def _load_for_update(customer_id: uuid.UUID) -> tuple[Customer, domain.CustomerState]:
    customer = Customer.objects.select_for_update().get(id=customer_id)  # DoesNotExist -> 404
    return customer, domain.CustomerState(version=customer.version, erased=customer.erased_at is not None)


def customer_register(
    *, display_name: str, email: str | None = None, phone: str | None = None, preferred_channel: str = "",
    meta: Metadata,
) -> CommandResult:
    """Register a new customer. Emits customers.CustomerRegistered. Not idempotent: each call is a new customer."""
    customer_id = store.uuid7()
    new_events = domain.decide_register(
        display_name=display_name, email=email, phone=phone, preferred_channel=preferred_channel
    )
    with transaction.atomic():
        positions = store.append(
            stream_type="customer", stream_id=customer_id, customer_id=customer_id, events=new_events,
            expected_version=0, meta=meta,
        )
        Customer.objects.create(id=customer_id, version=len(new_events))
    return CommandResult(customer_id, len(new_events), positions)


def customer_change_details(*, customer_id: uuid.UUID, expected_version: int, meta: Metadata, **changes) -> CommandResult:
    """Change contact details. Emits customers.CustomerDetailsChanged.

    `expected_version` is the version the caller last read: a stale one is a
    ConcurrencyConflict (409), never a lost update. Refused for an erased customer.
    """
    with transaction.atomic():
        customer, state = _load_for_update(customer_id)
        new_events = domain.decide_change_details(state, **changes)
        positions = store.append(
            stream_type="customer", stream_id=customer_id, customer_id=customer_id, events=new_events,
            expected_version=expected_version, meta=meta,
        )
        customer.version = expected_version + len(new_events)
        customer.save(update_fields=["version"])
    return CommandResult(customer_id, customer.version, positions)


def customer_erase(*, customer_id: uuid.UUID, reason: str, meta: Metadata) -> CommandResult:
    """Erase a customer (crypto-shredding). Emits customers.CustomerErased. Idempotent.

    Destroys the customer's data key: every personal field in every event of
    theirs reads back as "[erased]" from now on, in the API, on Kafka
    consumers and in projections rebuilt later. Nothing else of the history
    changes. The projections scrub what they had copied when they apply the
    CustomerErased event.
    """
    with transaction.atomic():
        customer, state = _load_for_update(customer_id)
        new_events = domain.decide_erase(state, reason=reason)
        if not new_events:
            return CommandResult(customer_id, customer.version, [])
        destroy_key(customer_id)
        positions = store.append(
            stream_type="customer", stream_id=customer_id, customer_id=customer_id, events=new_events,
            expected_version=state.version, meta=meta,
        )
        customer.version = state.version + len(new_events)
        customer.erased_at = timezone.now()
        customer.save(update_fields=["version", "erased_at"])
    return CommandResult(customer_id, customer.version, positions)
