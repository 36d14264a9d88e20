"""Customer commands: load, decide, append, in one transaction."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from customers import domain, erasure, identity
from customers.identity import Identity
from customers.models import Customer, CustomerIdentity
from contactcenter import access
from events import store
from events.crypto import destroy_key
from events.store import Metadata


@dataclass(frozen=True)
class CommandResult:
    customer_id: uuid.UUID
    version: int
    positions: list[int]


def _state(customer: Customer) -> domain.CustomerState:
    return domain.CustomerState(version=customer.version, erased=customer.erased_at is not None,
                                merged_into=customer.merged_into)


def _load_for_update(customer_id: uuid.UUID) -> tuple[Customer, domain.CustomerState]:
    customer = Customer.objects.select_for_update().get(id=customer_id)  # DoesNotExist -> 404
    return customer, _state(customer)


def identity_hash(ident: Identity) -> str:
    """A keyed hash of a normalised identity: lookups without storing the identity in clear."""
    secret = (settings.EVENT_KEK or settings.SECRET_KEY).encode()
    return hmac.new(secret, ident.key.encode(), hashlib.sha256).hexdigest()


def _identities(email: str | None, phone: str | None) -> list[Identity]:
    found = []
    if email:
        found.append(identity.identity(identity.EMAIL, email))
    if phone:
        found.append(identity.identity(identity.PHONE, phone, default_region=settings.DEFAULT_PHONE_REGION))
    return found


def customer_register(
    *, display_name: str, email: str | None = None, phone: str | None = None, preferred_channel: str = "",
    meta: Metadata, identities: list[Identity] | None = None,
) -> CommandResult:
    """Register a new customer. Emits customers.CustomerRegistered and one customers.IdentityLinked per identity.

    The email and phone given are normalised (E.164 for phones) and become
    identities of the customer, as do `identities`; one that already leads
    to another customer is refused (IdentityTaken, 409) and nothing is
    written. Not idempotent: each call is a new customer.
    """
    found = _identities(email, phone) + list(identities or [])
    email = next((i.value for i in found if i.kind == identity.EMAIL), email)
    phone = next((i.value for i in found if i.kind == identity.PHONE), phone)
    customer_id = store.uuid7()
    new_events = domain.decide_register(
        display_name=display_name, email=email, phone=phone, preferred_channel=preferred_channel,
        identities=list({i.key: i for i in found}.values()),
    )
    with transaction.atomic():
        customer = Customer.objects.create(id=customer_id, version=len(new_events))
        _link(customer, found)
        if meta.actor.type == "user":  # who registered them serves them (contactcenter.access)
            access.record_served(meta.actor.name, customer_id)
        positions = store.append(
            stream_type="customer", stream_id=customer_id, customer_id=customer_id, events=new_events,
            expected_version=0, meta=meta,
        )
    return CommandResult(customer_id, len(new_events), positions)


def _unlinked(customer: Customer, found: list[Identity]) -> list[Identity]:
    """The identities in `found` that do not lead to `customer` yet (one per key)."""
    unique = {identity_hash(i): i for i in found}
    mine = set(CustomerIdentity.objects.filter(customer=customer, key_hash__in=unique).values_list("key_hash", flat=True))
    return [i for h, i in unique.items() if h not in mine]


def _link(customer: Customer, found: list[Identity]) -> None:
    for ident in {i.key: i for i in found}.values():
        try:
            # A savepoint: a taken identity must not poison the caller's transaction.
            with transaction.atomic():
                CustomerIdentity.objects.create(customer=customer, key_hash=identity_hash(ident), kind=ident.kind,
                                                provider=ident.provider)
        except IntegrityError:
            owner = CustomerIdentity.objects.filter(key_hash=identity_hash(ident)).values_list("customer_id", flat=True)
            raise domain.IdentityTaken(ident.kind if ident.kind != identity.SOCIAL else "handle", owner.first()) from None


def customer_resolve(*, ident: Identity, meta: Metadata, display_name: str | None = None) -> tuple[uuid.UUID, bool]:
    """The customer an identity leads to, registering a new one if none does. Returns (id, created).

    Idempotent and safe under races: two first touches from the same new
    number at once end with one customer (the loser's insert fails on the
    unique identity and it resolves to the winner).
    """
    key_hash = identity_hash(ident)
    for _ in range(3):
        owner = CustomerIdentity.objects.filter(key_hash=key_hash).values_list("customer_id", flat=True).first()
        if owner is not None:
            return owner, False
        try:
            with transaction.atomic():
                result = customer_register(
                    display_name=display_name or ident.value, meta=meta, identities=[ident],
                    email=ident.value if ident.kind == identity.EMAIL else None,
                    phone=ident.value if ident.kind == identity.PHONE else None,
                )
            return result.customer_id, True
        except domain.IdentityTaken:
            continue  # someone registered it a moment ago: read it again
    raise RuntimeError(f"could not resolve identity {ident.kind}")


def customer_change_details(*, customer_id: uuid.UUID, expected_version: int, meta: Metadata, **changes) -> CommandResult:
    """Change contact details and profile.

    Emits customers.CustomerDetailsChanged (display name, email, phone,
    preferred channel), customers.ProfileUpdated (language, contact hours,
    VIP tier, tags, notes) and one customers.IdentityLinked per new email or
    phone, each only when something of its kind was given. A new email or
    phone is normalised and linked: one that leads to another customer is
    refused (IdentityTaken, 409) and nothing is written; the old one keeps
    leading here (a customer writing from an old address is still them).

    `expected_version` is the version the caller last read: a stale one is a
    ConcurrencyConflict (409), never a lost update. Refused for an erased or
    merged customer. Not idempotent (each call appends).
    """
    found = _identities(changes.get("email"), changes.get("phone"))
    for ident in found:
        changes[ident.kind] = ident.value  # as normalised (E.164, lower-case email)
    with transaction.atomic():
        customer, state = _load_for_update(customer_id)
        new = _unlinked(customer, found) if not (state.erased or state.merged_into) else []
        new_events = domain.decide_change_details(state, identities=new, **changes)
        _link(customer, new)
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

    Customers merged into this one (directly or along a chain) are the same
    person: they are erased with it, each with its own CustomerErased, so
    nothing of theirs stays readable on the merged timeline. The returned
    positions are the whole cascade's.
    """
    with transaction.atomic():
        customer, state = _load_for_update(customer_id)
        positions = _erase_one(customer, state, reason=reason, meta=meta)
        if not positions:
            return CommandResult(customer_id, customer.version, [])
        for source in _merged_into(customer_id):
            positions += _erase_one(source, _state(source), reason=f"merged into erased customer {customer_id}",
                                    meta=meta)
    return CommandResult(customer_id, customer.version, positions)


def _erase_one(customer: Customer, state: domain.CustomerState, *, reason: str, meta: Metadata) -> list[int]:
    new_events = domain.decide_erase(state, reason=reason)
    if not new_events:
        return []
    destroy_key(customer.id)
    # The identities go too: a new contact from that number is a new customer.
    CustomerIdentity.objects.filter(customer_id=customer.id).delete()
    erasure.scrub([customer.id])  # personal text that state rows keep in clear (customers.erasure)
    positions = store.append(
        stream_type="customer", stream_id=customer.id, customer_id=customer.id, events=new_events,
        expected_version=state.version, meta=meta,
    )
    customer.version = state.version + len(new_events)
    customer.erased_at = timezone.now()
    customer.save(update_fields=["version", "erased_at"])
    return positions


def _merged_into(customer_id: uuid.UUID) -> list[Customer]:
    """Everyone merged into this customer, along chains (A into B, B into C: both for C), locked, in id order."""
    found: list[Customer] = []
    frontier = [customer_id]
    while frontier:
        batch = list(Customer.objects.select_for_update().filter(merged_into__in=frontier).order_by("id"))
        found += batch
        frontier = [c.id for c in batch]
    return found


def customer_merge(*, customer_id: uuid.UUID, source_id: uuid.UUID, expected_version: int, meta: Metadata,
                   source_expected_version: int | None = None) -> CommandResult:
    """Merge the duplicate customer `source_id` into `customer_id` (the target).

    Emits customers.CustomerMerged on the target (at `expected_version`) and
    customers.CustomerMergedInto on the source (at `source_expected_version`
    when given, else its current version), in one transaction. The source's
    identities move to the target, so every channel now resolves to the
    target; the source becomes read-only (its commands are refused, 409).
    Its history stays in its own stream: the timeline projection shows it on
    the target's timeline, and the directory shows `merged_into` on the
    source. Refused into itself, and into or from an erased or already merged
    customer. Not idempotent: a second merge of the same source is refused.
    """
    with transaction.atomic():
        # Lock both rows in id order: two merges of the same pair the other
        # way round must not deadlock, one waits and then sees the other's.
        rows = {c.id: c for c in Customer.objects.select_for_update().filter(id__in=[customer_id, source_id])
                .order_by("id")}
        if customer_id not in rows:
            raise Customer.DoesNotExist()  # 404: the URL names the target
        if source_id not in rows:
            raise domain.InvalidValue("source_id", f"no customer {source_id}")
        target, source = rows[customer_id], rows[source_id]
        moving = CustomerIdentity.objects.filter(customer=source)
        target_events, source_events = domain.decide_merge(
            _state(target), _state(source), target_id=customer_id, source_id=source_id,
            identities_moved=moving.count() if customer_id != source_id else 0,
        )
        moving.update(customer=target)
        positions = store.append(
            stream_type="customer", stream_id=customer_id, customer_id=customer_id, events=target_events,
            expected_version=expected_version, meta=meta,
        )
        source_version = source.version if source_expected_version is None else source_expected_version
        positions += store.append(
            stream_type="customer", stream_id=source_id, customer_id=source_id, events=source_events,
            expected_version=source_version, meta=meta,
        )
        target.version = expected_version + len(target_events)
        target.save(update_fields=["version"])
        source.version = source_version + len(source_events)
        source.merged_into = customer_id
        source.save(update_fields=["version", "merged_into"])
    return CommandResult(customer_id, target.version, positions)
