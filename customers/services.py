"""Customer commands: load, decide, append, in one transaction."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from contactcenter import access
from customers import domain, erasure, identity
from customers.events import CustomerMerged, IdentityLinked
from customers.identity import Identity
from customers.models import Customer, CustomerIdentity, IdentityTouch, MergeSuggestion
from events import store
from events.crypto import destroy_key, stream_key_give, stream_keys_destroy, stream_keys_give_to
from events.store import Metadata
from interactions import hooks as interaction_hooks
from interactions.events import InteractionCreated


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
        found = CustomerIdentity.objects.filter(key_hash=key_hash).values_list("customer_id", "moved_by_merge").first()
        if found is not None:
            if found[1]:
                _note_moved_identity(key_hash, found[0])
            return found[0], False
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
    try:
        return _change_details(customer_id=customer_id, expected_version=expected_version, meta=meta, found=found,
                                **changes)
    except domain.IdentityTaken as taken:
        # Two customers found sharing an identity. Nothing merges on its own today (the change is refused, an
        # admin merges by hand); with IDENTITY_AUTO_MERGE = "suggest" the pair also goes to the review queue.
        # Recorded here, after the refused change rolled back, so that the suggestion stays.
        if settings.IDENTITY_AUTO_MERGE == "suggest" and taken.customer_id not in (None, customer_id):
            merge_suggestion_record(target_id=taken.customer_id, source_id=customer_id, kind=taken.field)
            taken.args = (f"{taken.args[0]}; a merge was suggested for an admin to review",)
        raise


def _change_details(*, customer_id: uuid.UUID, expected_version: int, meta: Metadata, found: list[Identity],
                    **changes) -> CommandResult:
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
    # Contacts with a key of their own that are theirs (opened through an identity a merge moved, and given
    # back to them by an unmerge: filed under the target, encrypted under their own key) are shredded too.
    returned = stream_keys_destroy(customer.id)
    # The identities go too: a new contact from that number is a new customer.
    CustomerIdentity.objects.filter(customer_id=customer.id).delete()
    erasure.scrub([customer.id], returned)  # personal text that state rows keep in clear (customers.erasure)
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
    Reversible: customer_unmerge. The merge event records which identities
    moved (their keyed hashes, encrypted) so the unmerge gives back exactly those.
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
        hashes = list(moving.values_list("key_hash", flat=True)) if customer_id != source_id else []
        target_events, source_events = domain.decide_merge(
            _state(target), _state(source), target_id=customer_id, source_id=source_id,
            identities_moved=len(hashes), identity_hashes=hashes,
        )
        # Marked: a touch through a moved identity is noted (IdentityTouch), so an unmerge can give it back.
        moving.update(customer=target, moved_by_merge=True)
        positions = _append_pair(target, source, target_events, source_events, meta=meta,
                                 expected_version=expected_version, source_expected_version=source_expected_version,
                                 merged_into=customer_id)
    return CommandResult(customer_id, target.version, positions)



def _append_pair(target: Customer, source: Customer, target_events: list, source_events: list, *, meta: Metadata,
                 expected_version: int, source_expected_version: int | None, merged_into) -> list[int]:
    """A merge's or an unmerge's two appends (target at `expected_version`, source at `source_expected_version`,
    else its current version) and both state rows kept in step, in the caller's transaction."""
    positions = store.append(stream_type="customer", stream_id=target.id, customer_id=target.id,
                             events=target_events, expected_version=expected_version, meta=meta)
    source_version = source.version if source_expected_version is None else source_expected_version
    positions += store.append(stream_type="customer", stream_id=source.id, customer_id=source.id,
                              events=source_events, expected_version=source_version, meta=meta)
    target.version = expected_version + len(target_events)
    target.save(update_fields=["version"])
    source.version, source.merged_into = source_version + len(source_events), merged_into
    source.save(update_fields=["version", "merged_into"])
    return positions

# --- unmerge -------------------------------------------------------------------


def customer_unmerge(*, customer_id: uuid.UUID, source_id: uuid.UUID, expected_version: int, meta: Metadata,
                     source_expected_version: int | None = None) -> CommandResult:
    """Undo the merge of `source_id` into `customer_id` (the target): both are their own customers again.

    Emits customers.CustomerUnmerged on the target (at `expected_version`)
    and customers.CustomerUnmergedFrom on the source (at
    `source_expected_version` when given, else its current version), in one
    transaction; both versions move. Refused (409 `not_merged`) unless the
    source is merged into the target directly right now, and (409) when
    either was erased; then nothing is written. Not idempotent: a second
    unmerge is refused.

    What comes back to the source:
    - the identities the merge moved (recorded in its CustomerMerged event;
      for merges recorded before that field, those linked on the source's
      stream and on the streams of customers merged into it), wherever the
      target's chain holds them now;
    - its own history, and that of customers merged into it before: the
      timeline projection follows CustomerUnmergedFrom;
    - the touches that arrived after the merge through one of those
      identities. The rule: an interaction *opened* after the merge by one of
      them (noted at intake in IdentityTouch) is the source's; a message that
      continued an interaction already open stays where the interaction is.
      Their ids go in the CustomerUnmerged event (`interactions_returned`) and
      the timeline projection maps their events, past and future, to the
      source. Why an id list in our event rather than re-assignment events on
      each interaction's stream: the decision is the unmerge's, one event
      records it atomically with the rest, and it sits on the target's
      partition, the same one as those interactions' own events, so their
      order holds for every projector and a replay equals live. The
      interactions' own rows (interactions app) keep naming the target, as
      their events do: only the customer's identities and timeline move.
    """
    with transaction.atomic():
        # Lock both rows in id order, as customer_merge does (no deadlock with a merge of the same pair).
        rows = {c.id: c for c in Customer.objects.select_for_update().filter(id__in=[customer_id, source_id])
                .order_by("id")}
        if customer_id not in rows:
            raise Customer.DoesNotExist()  # 404: the URL names the target
        if source_id not in rows:
            raise domain.InvalidValue("source_id", f"no customer {source_id}")
        target, source = rows[customer_id], rows[source_id]
        returning, touches = [], []
        if source.merged_into == customer_id and target.erased_at is None and source.erased_at is None:
            merged = _merge_event(customer_id, source_id)
            hashes = (merged.data.get("identity_hashes") if merged else None) or _linked_hashes(source_id)
            chain = _chain(customer_id)
            returning = CustomerIdentity.objects.filter(key_hash__in=hashes, customer_id__in=chain)
            touches = list(IdentityTouch.objects.filter(
                key_hash__in=hashes, customer_id__in=chain,
                created_at__gte=merged.recorded_at if merged else source.created_at,
            ).values_list("interaction_id", flat=True))
        target_events, source_events = domain.decide_unmerge(
            _state(target), _state(source), target_id=customer_id, source_id=source_id,
            identities_returned=len(returning), interactions_returned=touches,
        )
        returning.update(customer=source)
        IdentityTouch.objects.filter(interaction_id__in=touches).delete()  # given back: never twice
        stream_keys_give_to(touches, source_id)  # their own keys: erasing the source now shreds them
        positions = _append_pair(target, source, target_events, source_events, meta=meta,
                                 expected_version=expected_version, source_expected_version=source_expected_version,
                                 merged_into=None)
    return CommandResult(customer_id, target.version, positions)


def _merge_event(target_id: uuid.UUID, source_id: uuid.UUID):
    """The target's latest CustomerMerged naming the source (the merge standing now), or None."""
    found = None
    for env in store.read_stream(target_id):
        if env.event_type == CustomerMerged.event_type and str(env.data["source_id"]) == str(source_id):
            found = env
    return found


def _linked_hashes(source_id: uuid.UUID) -> list[str]:
    """For merges recorded before CustomerMerged.identity_hashes: what the source and those merged into it linked."""
    hashes = []
    for cid in [source_id] + [c.id for c in _merged_into(source_id)]:
        for env in store.read_stream(cid):
            if env.event_type == IdentityLinked.event_type and env.data.get("value") not in (None, "[erased]"):
                hashes.append(identity_hash(Identity(env.data["kind"], env.data["value"],
                                                     env.data.get("provider") or "")))
    return hashes


def _chain(customer_id: uuid.UUID) -> list[uuid.UUID]:
    """The customer and those it was merged into since, along the chain (where its identities are now)."""
    chain = [customer_id]
    while (nxt := Customer.objects.filter(id=chain[-1]).values_list("merged_into", flat=True).first()) is not None:
        if nxt in chain:
            break
        chain.append(nxt)
    return chain


# --- touches through moved identities ---------------------------------------------------------------


def _txid() -> str:
    with transaction.get_connection().cursor() as cur:
        cur.execute("SELECT pg_current_xact_id()::text")
        return cur.fetchone()[0]


def _note_moved_identity(key_hash: str, customer_id: uuid.UUID) -> None:
    """Remember, for this database transaction only, that a moved identity just led to `customer_id`.

    Interactions resolve the customer and then open the interaction in the
    same transaction; the hook below notes which identity opened it. The
    transaction id makes sure a note left by a rolled-back transaction never
    names a later interaction. Costs two queries per touch through a moved
    identity only, none otherwise.
    """
    conn = transaction.get_connection()
    if not conn.in_atomic_block:
        return  # autocommit: no interaction can open in the same transaction
    notes = conn.__dict__.setdefault("_customers_moved_identities", {})
    notes[customer_id] = (key_hash, _txid())


@interaction_hooks.annotator
def identity_touch_key(row, new_events: list) -> list:
    """Annotator (interactions.hooks; runs before the interaction's first append): an interaction opening
    through a moved identity gets a data key of its own (events.models.StreamKey), owned by the customer it
    is filed under. An unmerge that gives it to the source gives the source the key, so erasing the source
    shreds it without touching the target's data (docs/PRIVACY.md). Adds no event."""
    notes = transaction.get_connection().__dict__.get("_customers_moved_identities")
    if notes and row.customer_id in notes and notes[row.customer_id][1] == _txid() \
            and any(isinstance(e, InteractionCreated) for e in new_events):
        stream_key_give(row.id, row.customer_id)
    return []


@interaction_hooks.listen
def identity_touch_record(row, new_events: list) -> None:
    """Hook (interactions.hooks): an interaction opened through a moved identity is noted in IdentityTouch."""
    notes = transaction.get_connection().__dict__.get("_customers_moved_identities")
    if not notes or row.customer_id not in notes or not any(isinstance(e, InteractionCreated) for e in new_events):
        return
    key_hash, txid = notes.pop(row.customer_id)
    if txid == _txid():
        IdentityTouch.objects.get_or_create(interaction_id=row.id,
                                            defaults={"key_hash": key_hash, "customer_id": row.customer_id})


# --- merge suggestions ---------------------------------------------------------------------------------


def merge_suggestion_record(*, target_id: uuid.UUID, source_id: uuid.UUID, kind: str) -> MergeSuggestion:
    """Queue the pair for an admin (IDENTITY_AUTO_MERGE = "suggest"). Idempotent: one pending suggestion per pair."""
    pending = MergeSuggestion.objects.filter(status=MergeSuggestion.PENDING)
    for a, b in ((target_id, source_id), (source_id, target_id)):
        existing = pending.filter(target_id=a, source_id=b).first()
        if existing is not None:
            return existing
    try:
        with transaction.atomic():
            return MergeSuggestion.objects.create(target_id=target_id, source_id=source_id, kind=kind)
    except IntegrityError:  # the same pair suggested a moment ago
        return pending.get(target_id=target_id, source_id=source_id)


def merge_suggestion_accept(*, suggestion_id: int, meta: Metadata) -> CommandResult:
    """Merge a suggested pair (customer_merge, at the target's current version) and close the suggestion.

    Refused (409 `suggestion_decided`) once decided; the merge's own refusals
    (an erased or already merged side) leave the suggestion pending.
    """
    with transaction.atomic():
        suggestion = MergeSuggestion.objects.select_for_update().get(id=suggestion_id)
        _check_pending(suggestion)
        version = Customer.objects.values_list("version", flat=True).get(id=suggestion.target_id)
        result = customer_merge(customer_id=suggestion.target_id, source_id=suggestion.source_id,
                                expected_version=version, meta=meta)
        _decide(suggestion, MergeSuggestion.MERGED, meta)
    return result


def merge_suggestion_dismiss(*, suggestion_id: int, meta: Metadata) -> MergeSuggestion:
    """Close a suggestion without merging (they are different people). Refused (409) once decided."""
    with transaction.atomic():
        suggestion = MergeSuggestion.objects.select_for_update().get(id=suggestion_id)
        _check_pending(suggestion)
        _decide(suggestion, MergeSuggestion.DISMISSED, meta)
    return suggestion


class SuggestionDecided(domain.CustomerError):
    code = "suggestion_decided"


def _check_pending(suggestion: MergeSuggestion) -> None:
    if suggestion.status != MergeSuggestion.PENDING:
        raise SuggestionDecided(f"this suggestion was already {suggestion.status}")


def _decide(suggestion: MergeSuggestion, status: str, meta: Metadata) -> None:
    suggestion.status, suggestion.decided_at = status, timezone.now()
    suggestion.decided_by = (meta.actor.name or "")[:150]
    suggestion.save(update_fields=["status", "decided_at", "decided_by"])
