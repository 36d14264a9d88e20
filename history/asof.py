"""What the system knew at an instant T: answers folded from the events recorded up to T.

"As of T" means the events with `recorded_at <= T`, each stream in its own
order (stream_version), the store in position order. We filter on
`recorded_at` itself rather than first turning T into a position: a
position is taken at insert while `recorded_at` is the inserting
transaction's start (`now()`), so positions and recorded times may cross by
a few milliseconds between concurrent writers, and a position cut-off would
let in an event recorded after T. Every read here is narrowed first by an
index (customer_id, stream_id, or the two partial indexes of
events/migrations/0002_asof_indexes), and `recorded_at` is then a filter on
those few rows: no index on `recorded_at`, so appends pay nothing for it.

Nothing here writes, and no projection is rebuilt. Personal fields are
decrypted with today's keys: an erased customer's fields read "[erased]" at
every instant (crypto-shredding: erased stays erased).

Not time-travelled (the configuration has no history): which skills a queue
requires and which skills an agent has are today's; the sentiment trend and
open promises of a customer's context come from other read models and are
left empty in an `as_of` answer.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Count, Max, Q, QuerySet

from customers import events as cev
from customers.models import CustomerProfile, TimelineEntry
from events import registry
from events.crypto import KeyRing
from events.models import Event
from events.store import Envelope
from interactions import domain as idomain
from interactions import events as iev
from interactions.models import Case

MERGED = cev.CustomerMerged.event_type
MERGED_INTO = cev.CustomerMergedInto.event_type
UNMERGED = cev.CustomerUnmerged.event_type
UNMERGED_FROM = cev.CustomerUnmergedFrom.event_type
REGISTERED = cev.CustomerRegistered.event_type
CHANGED = cev.CustomerDetailsChanged.event_type
PROFILE = cev.ProfileUpdated.event_type
ERASED_EVENT = cev.CustomerErased.event_type
LINKED = cev.IdentityLinked.event_type
QUEUED = iev.InteractionQueued.event_type
OFFERED = iev.InteractionOffered.event_type
TRANSFERRED = iev.InteractionTransferred.event_type
PRESENCE = "routing.AgentPresenceChanged"
# The interaction events that change what a context shows (interactions.domain.evolve's cases).
LIFECYCLE = [t.event_type for t in (iev.InteractionCreated, iev.InteractionQueued, iev.InteractionOffered,
                                    iev.OfferDeclined, iev.InteractionAccepted, iev.InteractionHeld,
                                    iev.InteractionResumed, iev.InteractionTransferred, iev.InteractionEnded,
                                    iev.InteractionWrappedUp, iev.InteractionAbandoned, iev.InteractionReopened)]


def envelope(row: Event, keys: KeyRing | None) -> Envelope:
    return Envelope(row.position, row.event_id, row.event_type, row.schema_version, row.stream_type, row.stream_id,
                    row.stream_version, row.customer_id, row.occurred_at, row.recorded_at, row.correlation_id,
                    row.causation_id, row.actor, row.channel, row.data, keys=keys)


def envelopes(rows) -> list[Envelope]:
    rows = list(rows)
    keys = KeyRing.load(r.customer_id for r in rows if registry.event_type(r.event_type).pii_fields)
    return [envelope(r, keys) for r in rows]


def known(as_of: dt.datetime) -> QuerySet[Event]:
    """The events the system had recorded at `as_of`."""
    return Event.objects.filter(recorded_at__lte=as_of)


# --- whose history shows on a customer's timeline at T ------------------------------------------------------


@dataclass
class Absorbed:
    """A customer's timeline membership as of T (what customers.projections keeps live in TimelineMerge)."""

    customer_ids: list[uuid.UUID]
    streams_in: set[uuid.UUID] = field(default_factory=set)  # interactions an unmerge gave to one of them
    streams_out: set[uuid.UUID] = field(default_factory=set)  # interactions an unmerge took away from them
    merged_into: uuid.UUID | None = None  # the customer itself was merged away at T: its timeline is empty


def _own_stream(customer_id: uuid.UUID, as_of: dt.datetime) -> list[Event]:
    return list(known(as_of).filter(stream_id=customer_id).order_by("stream_version"))


def absorbed_as_of(customer_id: uuid.UUID, as_of: dt.datetime) -> Absorbed:
    """The customer and those merged into it (and into them, down the chain) by T and not unmerged by T.

    Folded from the customer streams only (stream_id index): a CustomerMerged
    on a target's stream adds its source, a CustomerUnmerged removes it and
    takes away the interactions it returned; a CustomerUnmergedFrom on the
    source's stream brings those interactions (listed on the target's
    CustomerUnmerged) to the source. Merges and unmerges recorded after T are
    not applied.
    """
    result = Absorbed(customer_ids=[])
    todo, seen = [customer_id], set()
    while todo:
        cid = todo.pop()
        if cid in seen:
            continue
        seen.add(cid)
        result.customer_ids.append(cid)
        sources: list = []
        for e in _own_stream(cid, as_of):
            d = e.data
            if e.event_type == MERGED:
                sources.append(uuid.UUID(str(d["source_id"])))
            elif e.event_type == UNMERGED:
                source = uuid.UUID(str(d["source_id"]))
                sources = [s for s in sources if s != source]
                result.streams_out |= {uuid.UUID(str(s)) for s in d.get("interactions_returned") or []}
            elif e.event_type == MERGED_INTO and cid == customer_id:
                result.merged_into = uuid.UUID(str(d["target_id"]))
            elif e.event_type == UNMERGED_FROM:
                if cid == customer_id:
                    result.merged_into = None
                for u in known(as_of).filter(stream_id=d["target_id"], event_type=UNMERGED):
                    if str(u.data.get("source_id")) == str(cid):
                        result.streams_in |= {uuid.UUID(str(s)) for s in u.data.get("interactions_returned") or []}
        todo.extend(sources)
    result.streams_in -= result.streams_out
    return result


def timeline_as_of(customer_id: uuid.UUID, as_of: dt.datetime, *, channel: str | None = None,
                   event_type: str | None = None, since: dt.datetime | None = None,
                   until: dt.datetime | None = None) -> QuerySet[Event]:
    """The events that were on the customer's timeline at T, with the live timeline's filters.

    A queryset of events (paged by the caller like the live timeline, by
    (occurred_at, position)); turn a page into entries with `timeline_entries`.
    """
    who = absorbed_as_of(customer_id, as_of)
    if who.merged_into is not None:
        return Event.objects.none()  # merged away: its history was on the target's timeline then
    mine = Q(customer_id__in=who.customer_ids)
    if who.streams_in:
        mine |= Q(stream_id__in=who.streams_in)
    events = known(as_of).filter(mine)
    if who.streams_out:
        events = events.exclude(stream_id__in=who.streams_out)
    if channel:
        events = events.filter(channel=channel)
    if event_type:
        events = events.filter(event_type=event_type)
    if since:
        events = events.filter(occurred_at__gte=since)
    if until:
        events = events.filter(occurred_at__lt=until)
    return events


def timeline_entries(rows) -> list[TimelineEntry]:
    """Unsaved TimelineEntry rows shaped as the projection stores them, personal fields already decrypted.

    So the live path's withholding and serializer apply unchanged
    (customers.selectors.timeline_withhold, customers.api.serializers.timeline_json).
    """
    out = []
    for env in envelopes(rows):
        personal = registry.event_type(env.event_type).pii_fields
        stored = env._stored if isinstance(env._stored, dict) else {}
        listed = sorted(k for k in personal if stored.get(k) is not None)
        out.append(TimelineEntry(position=env.position, customer_id=env.customer_id, event_id=env.event_id,
                                 event_type=env.event_type, stream_type=env.stream_type, stream_id=env.stream_id,
                                 occurred_at=env.occurred_at, channel=env.channel, actor=env.actor, data=env.data,
                                 personal_fields=listed, key_id=None))
    return out


# --- a customer's context at T ------------------------------------------------------------------------------


@dataclass
class InteractionAsOf:
    """An interaction folded with interactions.domain.evolve, plus what the context shows of it."""

    id: uuid.UUID
    state: idomain.InteractionState
    direction: str | None = None
    created_at: dt.datetime | None = None
    contact: dict = field(default_factory=dict)
    resolved_at: list[dt.datetime] = field(default_factory=list)

    status = property(lambda self: self.state.status)
    case_id = property(lambda self: self.state.case_id)
    channel = property(lambda self: self.state.channel)
    queue = property(lambda self: self.state.queue)
    agent_id = property(lambda self: self.state.agent_id)


def fold_interactions(rows) -> dict[uuid.UUID, InteractionAsOf]:
    """Interactions folded from their events (in stream order) with the live domain's `evolve`."""
    from customers.selectors import contact_outcome

    found: dict[uuid.UUID, InteractionAsOf] = {}
    for env in envelopes(rows):
        i = found.get(env.stream_id)
        if i is None:
            i = found[env.stream_id] = InteractionAsOf(id=env.stream_id, state=idomain.InteractionState())
        i.state = idomain.evolve(i.state, env.event)
        if env.event_type == iev.InteractionCreated.event_type:
            d = env.data
            i.direction, i.created_at = d.get("direction"), env.occurred_at
            i.contact = {"interaction_id": env.stream_id, "case_id": d.get("case_id"),
                         "channel": d.get("channel") or env.channel, "direction": d.get("direction"),
                         "started_at": env.occurred_at, "ended_at": None, "end_reason": None, "disposition": None,
                         "outcome": "open"}
        elif i.contact:
            contact_outcome(i.contact, env.event_type, env.occurred_at, env.data)
        if env.event_type == iev.InteractionWrappedUp.event_type:
            i.resolved_at.append(env.occurred_at)
    return found


def profile_as_of(customer_id: uuid.UUID, as_of: dt.datetime) -> tuple[CustomerProfile, list[dict]]:
    """The profile (an unsaved CustomerProfile, fields as the directory projection folds them) and identity kinds.

    CustomerProfile.DoesNotExist when the customer was not registered by T.
    """
    from customers.projections import DETAILS, PROFILE_FIELDS

    profile = None
    identities: set = set()
    erased = False
    for env in envelopes(_own_stream(customer_id, as_of)):
        d = env.data
        if env.event_type == REGISTERED:
            profile = CustomerProfile(customer_id=customer_id, display_name=d["display_name"], email=d.get("email"),
                                      phone=d.get("phone"), preferred_channel=d.get("preferred_channel") or "",
                                      registered_at=env.occurred_at)
        elif profile is None:
            continue
        elif env.event_type == CHANGED:
            for k in DETAILS:
                if d.get(k) is not None:
                    setattr(profile, k, d[k])
        elif env.event_type == PROFILE:
            for k in PROFILE_FIELDS:
                if d.get(k) is not None:
                    setattr(profile, k, d[k])
        elif env.event_type == MERGED_INTO:
            profile.merged_into = uuid.UUID(str(d["target_id"]))
        elif env.event_type == UNMERGED_FROM:
            profile.merged_into = None
        elif env.event_type == ERASED_EVENT:
            erased = True
        elif env.event_type == LINKED:
            identities.add((d.get("kind") or "", d.get("provider") or ""))
        if profile is not None:
            profile.version = env.stream_version
    if profile is None:
        raise CustomerProfile.DoesNotExist(f"customer {customer_id} was not registered at {as_of.isoformat()}")
    if erased:
        from events.crypto import ERASED

        profile.display_name, profile.email, profile.phone, profile.notes = ERASED, None, None, ""
    profile.erased = erased
    return profile, [{"kind": k, "provider": p} for k, p in sorted(identities)]


def customer_context_as_of(customer_id: uuid.UUID, as_of: dt.datetime):
    """customers.selectors.CustomerContext as it stood at T, folded from the events recorded by then.

    Profile and identity kinds from the customer's own stream; open work,
    open cases, last contacts and repeat contact from the interactions of the
    customer and of those merged into it at T (see `absorbed_as_of`), each
    folded with interactions.domain.evolve. Repeat contact is judged at T
    with the live rule (customers.selectors.repeat_contacts). Sentiment and
    open promises are not time-travelled: empty.
    """
    from customers.selectors import LAST_CONTACTS, REPEAT_CONTACT_WINDOW, CustomerContext

    profile, identities = profile_as_of(customer_id, as_of)
    who = absorbed_as_of(customer_id, as_of)
    # Only the events that move the lifecycle or the last contacts: evolve() leaves the state as it was for the
    # rest (messages, transcripts, recordings), and skipping them spares decrypting every message.
    rows = (timeline_as_of(customer_id, as_of).filter(stream_type="interaction", event_type__in=LIFECYCLE)
            .order_by("stream_id", "stream_version"))
    # As the directory counts them: events naming this customer (merged-in customers keep their own counts).
    stats = known(as_of).filter(customer_id=customer_id).aggregate(n=Count("position"), last=Max("occurred_at"))
    profile.event_count, profile.last_event_at = stats["n"], stats["last"]
    interactions = fold_interactions(rows) if who.merged_into is None else {}
    if who.merged_into is not None:
        identities = []  # a merge moves them to the target
    else:  # and brings those of the customers merged in
        kinds = {(i["kind"], i["provider"]) for i in identities}
        for e in known(as_of).filter(stream_id__in=who.customer_ids[1:], event_type=LINKED):
            kinds.add((e.data.get("kind") or "", e.data.get("provider") or ""))
        identities = [{"kind": k, "provider": p} for k, p in sorted(kinds)]
    started = sorted((i for i in interactions.values() if i.created_at), key=lambda i: i.created_at, reverse=True)
    open_interactions = [i for i in started if i.status not in idomain.CLOSED]
    cases: dict = {}
    for i in open_interactions:
        cases.setdefault(i.case_id, []).append(i.id)
    created_at = dict(Case.objects.filter(id__in=[c for c in cases if c]).values_list("id", "created_at"))
    open_cases = [{"id": cid, "created_at": created_at.get(cid), "open_interactions": iids}
                  for cid, iids in cases.items()]
    # Repeat contact, the rule of customers.selectors.repeat_contacts with T for now and the cases as they were.
    open_case_ids = {i.case_id for i in interactions.values() if i.status not in idomain.CLOSED}
    repeat_of = []
    for i in interactions.values():
        recent = [at for at in i.resolved_at if at >= as_of - REPEAT_CONTACT_WINDOW]
        if not recent or i.case_id is None:
            continue
        resolved_at = recent[-1]
        came_back = any(o.id != i.id and o.case_id == i.case_id and o.created_at
                        and resolved_at < o.created_at <= resolved_at + REPEAT_CONTACT_WINDOW
                        for o in interactions.values())
        if i.case_id in open_case_ids or came_back:
            repeat_of.append(i.id)
    return CustomerContext(profile=profile, identities=identities, open_interactions=open_interactions,
                           open_cases=open_cases, last_contacts=[i.contact for i in started[:LAST_CONTACTS]],
                           repeat_contact=bool(repeat_of), repeat_of=repeat_of,
                           sentiment={"latest": None, "trend": "unknown", "interactions": []}, open_promises=[])


# --- a queue and an agent at T ------------------------------------------------------------------------------


def _ids(sql: str, params: list) -> list[uuid.UUID]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return [r[0] for r in cur.fetchall()]


def _fold_streams(stream_ids, as_of: dt.datetime) -> dict[uuid.UUID, InteractionAsOf]:
    if not stream_ids:
        return {}
    return fold_interactions(known(as_of).filter(stream_id__in=stream_ids).order_by("stream_id", "stream_version"))


def _queued_at(stream_ids, as_of: dt.datetime) -> dict[uuid.UUID, dt.datetime]:
    """When each interaction last entered a queue (InteractionQueued, or a transfer to a queue) by T."""
    last: dict = {}
    for sid, kind, data, at in (known(as_of).filter(stream_id__in=stream_ids, event_type__in=[QUEUED, TRANSFERRED])
                                .order_by("stream_id", "stream_version")
                                .values_list("stream_id", "event_type", "data", "occurred_at")):
        if kind == QUEUED or data.get("to_queue"):
            last[sid] = at
    return last


def presence_as_of(stream_ids, as_of: dt.datetime) -> dict[uuid.UUID, dict]:
    """Agent stream -> {"presence", "reason", "since"} from the last AgentPresenceChanged recorded by T."""
    out = {}
    for sid, data, at in (known(as_of).filter(stream_id__in=list(stream_ids), event_type=PRESENCE)
                          .order_by("stream_id", "stream_version").values_list("stream_id", "data", "occurred_at")):
        out[sid] = {"presence": data.get("presence"), "reason": data.get("reason", ""), "since": at}
    return out


def queue_state_as_of(name: str, as_of: dt.datetime) -> dict:
    """A queue at T: waiting work (with how long each had waited at T), offered, in hand, agents by presence.

    The interactions are those sent to the queue by T (the partial index
    events_asof_queue_idx), folded with interactions.domain.evolve; one is
    the queue's while its state's queue is this one: waiting (queued),
    offered, or in hand (active or held). Agents: those
    who qualify for the queue's required skills today, by their presence at T.
    """
    from routing.models import Agent, Queue

    queue = Queue.objects.prefetch_related("skills").get(name=name)  # DoesNotExist -> 404
    # The condition and the expression are those of events_asof_queue_idx, literally: the planner uses a
    # partial index only when it can see the query's condition implies the index's.
    sent = _ids("SELECT DISTINCT stream_id FROM events_event WHERE event_type IN "
                "('interactions.InteractionQueued', 'interactions.InteractionTransferred')"
                " AND coalesce(data->>'queue', data->>'to_queue') = %s AND recorded_at <= %s", [name, as_of])
    folded = _fold_streams(sent, as_of)
    queued_at = _queued_at(sent, as_of)
    waiting, offered, in_hand = [], [], []
    for i in folded.values():
        if i.queue != name:
            continue
        if i.status == idomain.QUEUED:  # (a reopened one is "created" with its old queue: not waiting there)
            at = queued_at.get(i.id)
            waiting.append({"interaction_id": i.id, "channel": i.channel, "queued_at": at,
                            "waited_seconds": round((as_of - at).total_seconds(), 3) if at else None})
        elif i.status == idomain.OFFERED:
            offered.append({"interaction_id": i.id, "channel": i.channel, "agent_id": i.agent_id})
        elif i.status in idomain.CONNECTED:  # as the live stats count it: accepted or on hold
            in_hand.append({"interaction_id": i.id, "channel": i.channel, "agent_id": i.agent_id,
                            "status": i.status})
    waiting.sort(key=lambda w: w["queued_at"] or as_of)
    agents = Agent.objects.all()
    for s in queue.skills.all():
        if not s.secondary:
            agents = agents.filter(skills__skill_id=s.skill_id, skills__proficiency__gte=s.min_proficiency)
    streams = dict(agents.values_list("stream_id", "user__username"))
    presence = presence_as_of(streams, as_of)
    by_presence: dict[str, int] = {}
    for sid in streams:
        p = presence.get(sid, {}).get("presence") or "offline"
        by_presence[p] = by_presence.get(p, 0) + 1
    return {"queue": name, "as_of": as_of, "waiting": waiting, "offered": offered, "in_hand": in_hand,
            "longest_wait_seconds": max((w["waited_seconds"] or 0.0 for w in waiting), default=0.0),
            "agents": by_presence}


def agent_state_as_of(agent_id: str, as_of: dt.datetime) -> dict:
    """An agent at T: presence (and since when), and the work offered to them or in their hands.

    The interactions are those offered, accepted or transferred to the agent
    by T (the partial index events_asof_agent_idx), folded with
    interactions.domain.evolve; one is theirs while its state's agent is
    them: offered, or in hand (active, held, in wrap-up).
    """
    from routing.models import Agent

    agent = Agent.objects.get(user__username=agent_id)  # DoesNotExist -> 404
    presence = presence_as_of([agent.stream_id], as_of).get(agent.stream_id) or {
        "presence": "offline", "reason": "", "since": None}
    touched = _ids("SELECT DISTINCT stream_id FROM events_event WHERE event_type IN "  # events_asof_agent_idx
                   "('interactions.InteractionOffered', 'interactions.InteractionAccepted',"
                   " 'interactions.InteractionTransferred')"
                   " AND coalesce(data->>'agent_id', data->>'to_agent_id') = %s AND recorded_at <= %s",
                   [agent_id, as_of])
    work = [{"interaction_id": i.id, "channel": i.channel, "queue": i.queue, "status": i.status}
            for i in _fold_streams(touched, as_of).values()
            if i.agent_id == agent_id and i.status in (idomain.OFFERED, idomain.ACTIVE, idomain.HELD,
                                                      idomain.WRAP_UP)]
    work.sort(key=lambda w: str(w["interaction_id"]))
    return {"agent_id": agent_id, "as_of": as_of, **presence, "work": work}


def interaction_offered_at(interaction_id: uuid.UUID) -> dt.datetime | None:
    """When the interaction's first InteractionOffered was recorded (for the admin's "context when offered")."""
    return (Event.objects.filter(stream_id=interaction_id, event_type=OFFERED).order_by("stream_version")
            .values_list("recorded_at", flat=True).first())


__all__ = ["timeline_as_of", "timeline_entries", "customer_context_as_of",
           "queue_state_as_of", "agent_state_as_of", "interaction_offered_at", "absorbed_as_of"]
