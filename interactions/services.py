"""Interaction commands: load the state row, decide, append, keep the row in step; one transaction each.

Every command is a `domain.decide_*` function run through `_command`: a
refused transition raises before anything is written, and a concurrent
command on the same interaction waits for the row lock, then decides on the
new state.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from contactcenter import access, metrics
from customers import services as customer_services
from customers.identity import Identity
from customers.models import Customer
from events import store
from events.db import raw_cursor
from events.store import Metadata
from interactions import domain, hooks
from interactions.events import InteractionAccepted
from interactions.models import (
    Case,
    Conversation,
    EmailMessage,
    Interaction,
    ProviderMessage,
)


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
        interaction_id = store.uuid7()
        row = Interaction(id=interaction_id, customer_id=customer_id, case=case, channel=channel,
                          direction=direction, status="", version=0)
        row.take(domain.fold(new_events))
        new_events = hooks.annotate(row, new_events)  # e.g. red flags from the customer's history
        positions = store.append(stream_type="interaction", stream_id=interaction_id, customer_id=customer_id,
                                 events=new_events, expected_version=0, meta=_on(meta, channel))
        row.take(domain.fold(new_events))
        row.save(force_insert=True)
        if meta.actor.type == "user":  # an agent who starts a contact serves its customer (contactcenter.access)
            access.record_served(meta.actor.name, customer_id, interaction_id)
        hooks.changed(row, new_events)
    return InteractionResult(row, positions, created)


def _on(meta: Metadata, channel: str) -> Metadata:
    return Metadata(actor=meta.actor, correlation_id=meta.correlation_id, causation_id=meta.causation_id,
                    channel=channel)


def _command(interaction_id: uuid.UUID, decide: Callable, *, meta: Metadata, facts: tuple = (),
             **kwargs) -> InteractionResult:
    # `facts`: events of another app recorded on the interaction's stream
    # before what `decide` decides, in the same append (routing's reasons for an offer).
    with transaction.atomic():
        row = Interaction.objects.select_for_update().get(id=interaction_id)  # DoesNotExist -> 404
        state = row.state()
        new_events = hooks.annotate(row, [*facts, *decide(state, **kwargs)])
        positions = store.append(stream_type="interaction", stream_id=row.id, customer_id=row.customer_id,
                                 events=new_events, expected_version=row.version, meta=_on(meta, row.channel))
        for event in new_events:
            state = domain.evolve(state, event)
        row.take(state)
        row.save(update_fields=["status", "queue", "agent_id", "version", "updated_at"])
        _record_handled(row, new_events)
        hooks.changed(row, new_events)
        metrics.offer_outcomes(row, new_events)  # offers accepted, declined, timed out (after commit)
    return InteractionResult(row, positions)


def _record_handled(row: Interaction, new_events: list) -> None:
    # Who accepted it, kept for good in the same transaction: an agent reads the contacts and customers they
    # have served after a transfer or wrap-up has moved the row on (contactcenter.access).
    for event in new_events:
        if isinstance(event, InteractionAccepted):
            access.record_served(event.agent_id, row.customer_id, row.id)


def interaction_queue(*, interaction_id, queue: str, meta) -> InteractionResult:
    """Put a new interaction in a queue. Emits interactions.InteractionQueued."""
    return _command(interaction_id, domain.decide_queue, meta=meta, queue=queue)


def interaction_requeue(*, interaction_id, queue: str, meta, facts: tuple = ()) -> InteractionResult:
    """Move a waiting interaction to another queue (overflow). Emits interactions.InteractionQueued."""
    return _command(interaction_id, domain.decide_requeue, meta=meta, queue=queue, facts=tuple(facts))


def interaction_offer(*, interaction_id, agent_id: str, meta, facts: tuple = ()) -> InteractionResult:
    """Offer a queued interaction to one agent (a call rings). Emits interactions.InteractionOffered.

    `facts` go first in the same append: routing passes its decision
    (routing.InteractionRouted), so the offer and its reason commit together.
    """
    return _command(interaction_id, domain.decide_offer, meta=meta, agent_id=agent_id, facts=tuple(facts))


_ROW_FIELDS = [f.attname for f in Interaction._meta.concrete_fields]
_ROW_COLUMNS = ", ".join(f.column for f in Interaction._meta.concrete_fields)


def interactions_offer(offers: list[tuple[uuid.UUID, str, tuple]], *, meta) -> list[InteractionResult]:
    """Offer several queued interactions, each to one agent, in one transaction and one append.

    `offers`: (interaction_id, agent_id, facts) in the order to offer. The
    same rule as `interaction_offer` decides each (a refused transition
    raises before anything is written); routing offers a batch this way.
    Emits interactions.InteractionOffered (after each one's facts).
    """
    if not offers:
        return []
    with transaction.atomic():
        ids = [iid for iid, _, _ in offers]
        with raw_cursor() as cur:
            cur.execute(f"SELECT {_ROW_COLUMNS} FROM interactions_interaction WHERE id = ANY(%b::uuid[]) ORDER BY id "
                        "FOR UPDATE", [ids], prepare=True, binary=True)  # nosec B608  # our columns, bound values
            rows = {r.id: r for r in (Interaction.from_db("default", _ROW_FIELDS, v) for v in cur.fetchall())}
        changes, appends = [], []
        for iid, agent_id, facts in offers:
            row = rows[iid]  # KeyError: no such interaction (routing passes only rows it holds)
            state = row.state()
            new_events = [*facts, *domain.decide_offer(state, agent_id=agent_id)]
            for event in new_events:
                state = domain.evolve(state, event)
            appends.append(store.StreamAppend("interaction", row.id, new_events, row.version, row.customer_id,
                                              row.channel))
            changes.append((row, state, new_events))
        positions = store.append_streams(appends, meta=meta)
        now = timezone.now()
        for row, state, _ in changes:
            row.take(state)
            row.updated_at = now
        with raw_cursor() as cur:
            cur.execute(
                """UPDATE interactions_interaction i
                   SET status = c.status, queue = c.queue, agent_id = c.agent_id, version = c.version,
                       updated_at = %s
                   FROM unnest(%b::uuid[], %b::text[], %b::text[], %b::text[], %b::int[])
                        AS c(id, status, queue, agent_id, version)
                   WHERE i.id = c.id""",
                [now, [r.id for r, _, _ in changes], [r.status for r, _, _ in changes],
                 [r.queue for r, _, _ in changes], [r.agent_id for r, _, _ in changes],
                 [r.version for r, _, _ in changes]], prepare=True)
        hooks.changed_many([(row, new_events) for row, _, new_events in changes])
    return [InteractionResult(row, pos) for (row, _, _), pos in zip(changes, positions, strict=True)]


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


def interaction_warn(*, interaction_id, reason: str, meta, text: str = "") -> InteractionResult:
    """The agent warns an abusive customer. Emits interactions.WarningGiven."""
    return _command(interaction_id, domain.decide_warn, meta=meta, reason=reason, text=text)


def interaction_end(*, interaction_id, reason: str, meta, duration_seconds: int | None = None) -> InteractionResult:
    """The agent ends the conversation; wrap-up follows. Emits interactions.InteractionEnded. Ending for abuse
    (`agent_ended_abuse`) is refused until ABUSE_WARNINGS_REQUIRED warnings are on record."""
    warnings = None
    if reason == domain.ABUSE_END:
        given = sum(1 for e in store.read_stream(uuid.UUID(str(interaction_id)))
                    if e.event_type == "interactions.WarningGiven")
        warnings = (given, settings.ABUSE_WARNINGS_REQUIRED)
    return _command(interaction_id, domain.decide_end, meta=meta, reason=reason, duration_seconds=duration_seconds,
                    warnings=warnings)


def interaction_wrap_up(*, interaction_id, disposition: str, meta, notes: str = "") -> InteractionResult:
    """Disposition code and notes; the interaction is resolved. Emits interactions.InteractionWrappedUp."""
    return _command(interaction_id, domain.decide_wrap_up, meta=meta, disposition=disposition, notes=notes)


def interaction_abandon(*, interaction_id, meta, waited_seconds: int | None = None) -> InteractionResult:
    """The customer left while waiting. Emits interactions.InteractionAbandoned."""
    return _command(interaction_id, domain.decide_abandon, meta=meta, waited_seconds=waited_seconds)


def interaction_reopen(*, interaction_id, reason: str, meta) -> InteractionResult:
    """A resolved or abandoned interaction comes back. Emits interactions.InteractionReopened."""
    return _command(interaction_id, domain.decide_reopen, meta=meta, reason=reason)


# --- channel intake (provider webhooks) ------------------------------------


@dataclass(frozen=True)
class WebhookResult:
    interaction: Interaction
    positions: list[int]
    customer_created: bool = False
    duplicate: bool = False


def webhook_receive(*, channel: str, provider: str, data: dict, ident: Identity | None,
                    meta: Metadata) -> WebhookResult:
    """One verified delivery from a channel provider, acted on exactly once.

    `data` is the validated payload of the channel (see
    interactions.api.serializers), `ident` the customer's normalised
    identity (the payload's `from`). Emits what the channel event means for
    the interaction's lifecycle (see domain.decide_call_event and
    domain.decide_inbound).

    Idempotent on (provider, provider_message_id): the delivery is claimed
    in ProviderMessage in the same transaction as the events, so a repeated
    delivery, or a racing duplicate (it waits on the claim's unique index
    until the first commits), returns the original result and writes
    nothing. Two different messages opening the same new conversation at
    once both try to create its Conversation row; the loser fails on the
    unique index and runs again, now finding the conversation.
    """
    message_id = data["provider_message_id"]
    for _ in range(3):
        try:
            with transaction.atomic():
                if not _claim(provider, message_id, channel):
                    return _original(provider, message_id)
                row, is_new, new_events, customer_created = _INTAKE[channel](
                    provider=provider, data=data, ident=ident, meta=meta)
                positions = _commit(row, new_events, is_new=is_new, meta=meta, occurred_at=data.get("occurred_at"))
                if channel == "email":
                    EmailMessage.objects.bulk_create(
                        [EmailMessage(message_id=data["message_id"], interaction=row)], ignore_conflicts=True)
                with connection.cursor() as cur:
                    cur.execute(f"UPDATE {ProviderMessage._meta.db_table} SET interaction_id = %s, "  # nosec B608
                                "positions = %s::jsonb, position = %s, customer_created = %s "
                                "WHERE provider = %s AND message_id = %s",
                                [row.id, json.dumps(positions), positions[-1] if positions else None,
                                 customer_created, provider, message_id])
            return WebhookResult(row, positions, customer_created)
        except IntegrityError:
            continue  # a racing delivery opened the same conversation: decide again on what it wrote
    raise RuntimeError(f"could not record {provider} message {message_id!r}")


def _claim(provider: str, message_id: str, channel: str) -> bool:
    """Insert the delivery's idempotency row; False when it exists (a duplicate).

    ON CONFLICT DO NOTHING waits for a concurrent claim of the same id to
    commit or roll back, so exactly one of two racing deliveries gets True.
    """
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {ProviderMessage._meta.db_table} (provider, message_id, channel, positions, "  # nosec B608
            "customer_created, received_at) VALUES (%s, %s, %s, '[]'::jsonb, false, now()) "
            "ON CONFLICT (provider, message_id) DO NOTHING RETURNING id",
            [provider, message_id, channel],
        )
        return cur.fetchone() is not None


def _original(provider: str, message_id: str) -> WebhookResult:
    seen = ProviderMessage.objects.select_related("interaction").get(provider=provider, message_id=message_id)
    return WebhookResult(seen.interaction, seen.positions, seen.customer_created, duplicate=True)


def _commit(row: Interaction, new_events: list, *, is_new: bool, meta: Metadata, occurred_at) -> list[int]:
    """Append to the interaction's stream at the row's version and keep the row in step."""
    new_events = hooks.annotate(row, new_events)
    positions = store.append(stream_type="interaction", stream_id=row.id, customer_id=row.customer_id,
                             events=new_events, expected_version=row.version, meta=_on(meta, row.channel),
                             occurred_at=occurred_at)
    state = row.state()
    for event in new_events:
        state = domain.evolve(state, event)
    row.take(state)
    if is_new:
        row.save(force_insert=True)
    else:  # what row.save(update_fields=[...]) would do, without the ORM's cost on the hot intake path
        row.updated_at = timezone.now()
        with connection.cursor() as cur:
            cur.execute(f"UPDATE {Interaction._meta.db_table} SET status = %s, queue = %s, agent_id = %s, "
                        "version = %s, updated_at = %s WHERE id = %s",  # nosec B608  # the model's table
                        [row.status, row.queue, row.agent_id, row.version, row.updated_at, row.id])
    _record_handled(row, new_events)  # a call answered at the provider is served as an accept is
    hooks.changed(row, new_events)
    metrics.offer_outcomes(row, new_events)  # a call answered or refused at the provider counts too
    return positions


def _locked(interaction_id: uuid.UUID) -> Interaction:
    return Interaction.objects.select_for_update().get(id=interaction_id)


def _conversation(channel: str, provider: str, conversation_id: str | None) -> Interaction | None:
    """The interaction currently carrying the provider's conversation, locked; None for a new conversation.

    One statement: the conversation is looked up and its interaction row
    locked (FOR UPDATE) together.
    """
    if not conversation_id:
        return None
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM {Interaction._meta.db_table} i JOIN {Conversation._meta.db_table} c "  # nosec B608
            "ON c.interaction_id = i.id WHERE c.channel = %s AND c.provider = %s AND c.conversation_id = %s "
            "FOR UPDATE OF i",
            [channel, provider, conversation_id],
        )
        found = cur.fetchone()
    return Interaction.from_db("default", _FIELDS, found) if found else None


_FIELDS = [f.attname for f in Interaction._meta.concrete_fields]
_COLUMNS = ", ".join(f"i.{f.column}" for f in Interaction._meta.concrete_fields)


def _new_row(*, channel: str, direction: str, customer_id: uuid.UUID, case_id: uuid.UUID | None) -> Interaction:
    if case_id is None:
        case_id = Case.objects.create(id=store.uuid7(), customer_id=customer_id).id
    return Interaction(id=store.uuid7(), customer_id=customer_id, case_id=case_id, channel=channel,
                       direction=direction, status="", version=0)


def _resolve(ident: Identity | None, meta: Metadata, display_name: str | None) -> tuple[uuid.UUID, bool]:
    if ident is None:
        raise domain.InvalidValue("from", "who is in touch (from) is needed to start a conversation")
    return customer_services.customer_resolve(ident=ident, meta=meta, display_name=display_name)


def _map(current: Interaction | None, *, channel: str, provider: str, conversation_id: str | None,
         row: Interaction) -> None:
    """Point the provider's conversation at `row`.

    `current` is what the conversation pointed at (None: a new
    conversation, a plain insert, so a racing twin fails on the unique index).
    """
    if not conversation_id:
        return
    if current is None:
        Conversation.objects.create(channel=channel, provider=provider, conversation_id=conversation_id,
                                    interaction=row)
    elif current.id != row.id:
        Conversation.objects.filter(channel=channel, provider=provider, conversation_id=conversation_id).update(
            interaction=row, updated_at=timezone.now())


def _intake_voice(*, provider: str, data: dict, ident: Identity | None, meta: Metadata):
    current = _conversation("voice", provider, data["conversation_id"])
    customer_created = False
    if current is not None:
        row, is_new = current, False
    elif data["event"] == "ringing":
        customer_id, customer_created = _resolve(ident, meta, data.get("display_name"))
        row, is_new = _new_row(channel="voice", direction=data["direction"], customer_id=customer_id,
                               case_id=None), True
    else:
        raise domain.UnknownConversation(
            f"{data['event']} for call {data['conversation_id']!r}, which never rang here: send ringing first")
    new_events = domain.decide_call_event(
        row.state(), event=data["event"], case_id=row.case_id, direction=data["direction"],
        queue=data.get("queue") or "default", agent_id=data.get("agent_id"), to_agent_id=data.get("to_agent_id"),
        to_queue=data.get("to_queue"), note=data.get("note", ""), reason=data.get("reason"),
        duration_seconds=data.get("duration_seconds"), recording_ref=data.get("recording_ref"),
        recording_consent=data.get("recording_consent"), speaker=data.get("speaker"), body=data.get("body") or "",
        offset_seconds=data.get("offset_seconds"),
    )
    _map(current, channel="voice", provider=provider, conversation_id=data["conversation_id"], row=row)
    return row, is_new, new_events, customer_created


def _deliver(*, channel: str, provider: str, data: dict, ident: Identity | None, meta: Metadata,
             current: Interaction | None, message: dict | None, subject: str | None = None,
             customer_id: uuid.UUID | None = None):
    """Record a message (or a chat start) on `current`, the conversation's interaction (locked), or on a new one.

    A conversation whose interaction is closed continues as follows: an
    email reply reopens it (same matter, same thread); on chat, SMS and
    social, where a later message is usually a new matter, a new
    interaction starts in the same case. One still in wrap-up also gets a
    new interaction in the same case (its agent is finishing the old one).
    """
    customer_created, case_id = False, None
    if current is not None and (current.status == domain.WRAP_UP
                                or (current.status in domain.CLOSED and channel != "email")):
        customer_id, case_id, current = current.customer_id, current.case_id, None
    if current is None:
        if customer_id is None:
            customer_id, customer_created = _resolve(ident, meta, data.get("display_name"))
        row, is_new = _new_row(channel=channel, direction=data["direction"], customer_id=customer_id,
                               case_id=case_id), True
    else:
        row, is_new = current, False
    if message is not None:
        message = {"provider_message_id": data["provider_message_id"], "provider": provider, **message}
    new_events = domain.decide_inbound(row.state(), channel=channel, direction=data["direction"],
                                       case_id=row.case_id, queue=data.get("queue") or "default",
                                       subject=subject, message=message)
    return row, is_new, new_events, customer_created


def _intake_conversation(channel: str, default_key):
    """Chat, SMS, social: a provider conversation id (or a default key) maps to the current interaction."""

    def intake(*, provider: str, data: dict, ident: Identity | None, meta: Metadata):
        key = data.get("conversation_id") or default_key(data, ident)
        current = _conversation(channel, provider, key)
        previous = current
        event = data.get("event", "message")
        if event == "end":
            if current is None:
                raise domain.UnknownConversation(f"end for chat session {key!r}, which never started here")
            return current, False, domain.decide_chat_end(current.state(), reason=data["reason"]), False
        if event == "start" and current is not None and current.status in domain.OPEN:
            raise domain.TransitionRefused(f"chat session {key!r} has already started (it is {current.status})")
        body = data.get("body")
        message = None if event == "start" and not body else {"body": body or "", "kind": data.get("kind")}
        result = _deliver(channel=channel, provider=provider, data=data, ident=ident, meta=meta, current=current,
                          message=message)
        _map(previous, channel=channel, provider=provider, conversation_id=key, row=result[0])
        return result

    return intake


def _social_key(data: dict, ident: Identity | None) -> str | None:
    # Direct messages with one person are one conversation; each public
    # mention is its own unless the provider names its thread.
    # Keyed by a keyed hash of the handle, never the handle itself (docs/PRIVACY.md).
    return f"dm:{customer_services.identity_hash(ident)}" if data["kind"] == "dm" and ident else None


def _intake_email(*, provider: str, data: dict, ident: Identity | None, meta: Metadata):
    customer_id, customer_created = _resolve(ident, meta, data.get("display_name"))
    current = None
    # The message replied to first, then the thread's older messages, newest first.
    candidates = [i for i in [data.get("in_reply_to"), *reversed(data.get("references", []))] if i]
    if candidates:
        known = dict(EmailMessage.objects.filter(message_id__in=candidates).values_list("message_id", "interaction"))
        for message_id in candidates:
            if message_id in known:
                thread = _locked(known[message_id])
                # Threading headers are the sender's to write: never let them
                # graft a message onto another customer's conversation.
                if thread.customer_id == customer_id:
                    current = thread
                break
    message = {"body": data["body"], "subject": data.get("subject"), "sender": data.get("sender") or ident.value,
               "recipients": data.get("to", []) + data.get("cc", [])}
    row, is_new, new_events, _ = _deliver(channel="email", provider=provider, data=data, ident=ident, meta=meta,
                                          current=current, message=message, subject=data.get("subject"),
                                          customer_id=customer_id)
    return row, is_new, new_events, customer_created


_INTAKE = {
    "voice": _intake_voice,
    "chat": _intake_conversation("chat", lambda data, ident: None),
    # One thread per number, keyed by a keyed hash of it: the number itself is kept only encrypted (docs/PRIVACY.md).
    "sms": _intake_conversation("sms", lambda data, ident: f"sms:{customer_services.identity_hash(ident)}" if ident
                                else None),
    "social": _intake_conversation("social", _social_key),
    "email": _intake_email,
}
