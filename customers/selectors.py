"""Reads over the customer projections (and, for an agent's context, the interaction state rows)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from django.db.models import QuerySet
from django.utils import timezone

from customers.models import CustomerIdentity, CustomerProfile, TimelineEntry, TimelineMerge
from events.crypto import KeyRing
from interactions import events as interaction_events
from interactions.domain import CLOSED
from interactions.models import Case, Interaction

CREATED = interaction_events.InteractionCreated.event_type
ENDED = interaction_events.InteractionEnded.event_type
WRAPPED_UP = interaction_events.InteractionWrappedUp.event_type
ABANDONED = interaction_events.InteractionAbandoned.event_type
REOPENED = interaction_events.InteractionReopened.event_type

REPEAT_CONTACT_WINDOW = dt.timedelta(days=7)
LAST_CONTACTS = 5


def customer_list() -> QuerySet[CustomerProfile]:
    return CustomerProfile.objects.all()


def customer_get(customer_id: uuid.UUID) -> CustomerProfile:
    return CustomerProfile.objects.get(customer_id=customer_id)


def timeline_list(customer_id: uuid.UUID, *, channel: str | None = None, event_type: str | None = None,
                  since: dt.datetime | None = None, until: dt.datetime | None = None) -> QuerySet[TimelineEntry]:
    """A customer's timeline, including what customers merged into them brought along.

    `since` is inclusive, `until` exclusive (pages of time ranges never
    overlap). Order is the caller's: the API pages by (occurred_at, position).
    """
    entries = TimelineEntry.objects.filter(customer_id=customer_id)
    if channel:
        entries = entries.filter(channel=channel)
    if event_type:
        entries = entries.filter(event_type=event_type)
    if since:
        entries = entries.filter(occurred_at__gte=since)
    if until:
        entries = entries.filter(occurred_at__lt=until)
    return entries


# Streams whose content has its own endpoint, with its own readers and an audit entry per read: incident reports
# (supervisors, compliance, their author) and quality evaluations (the agent and their reviewers). The timeline
# shows that one happened and where to read it, never what it says.
WITHHELD = {"incident": "/api/v1/incidents/{}/", "evaluation": "/api/v1/evaluations/{}/"}


def timeline_withhold(entries: list[TimelineEntry]) -> list[TimelineEntry]:
    """Replace the content of incident and evaluation entries with a pointer to their own endpoint."""
    for e in entries:
        where = WITHHELD.get(e.stream_type)
        if where is not None:
            e.data, e.personal_fields, e.key_id = {"withheld": True, "read_at": where.format(e.stream_id)}, [], None
    return entries


def timeline_open(entries: list[TimelineEntry]) -> list[TimelineEntry]:
    """Decrypt the personal fields of these entries in place (one query for the keys); returns them.

    A field whose customer was erased (key destroyed) reads "[erased]".
    """
    ring = KeyRing.load(e.key_id for e in entries if e.key_id is not None)
    for e in entries:
        if e.key_id is not None:
            e.data = ring.decrypt_data(e.key_id, e.data)
    return entries


def _absorbed(customer_id: uuid.UUID) -> list[uuid.UUID]:
    """The customer and everyone merged into them (at the end of the chain), as the timeline knows it."""
    return [customer_id, *TimelineMerge.objects.filter(target_id=customer_id).values_list("source_id", flat=True)]


@dataclass
class CustomerContext:
    profile: CustomerProfile
    identities: list[dict]
    open_interactions: list[Interaction]
    open_cases: list[dict]
    last_contacts: list[dict]
    repeat_contact: bool
    repeat_of: list[uuid.UUID] = field(default_factory=list)
    sentiment: dict = field(default_factory=dict)
    open_promises: list[dict] = field(default_factory=list)


def customer_context(customer_id: uuid.UUID, *, now: dt.datetime | None = None) -> CustomerContext:
    """What an agent needs on pick-up: who (profile, identity kinds), what is open, how the last contacts ended.

    - open interactions: the customer's (and merged-in customers') interactions
      not resolved or abandoned, newest first;
    - open cases: cases with at least one such interaction (a case has no
      status of its own: it is open while a conversation about it is);
    - last contacts: the last 5 interactions by start time, each with its
      outcome from the timeline (end reason, wrap-up disposition, or abandoned);
    - repeat contact: see `repeat_contacts()`;
    - sentiment: the running sentiment of their last scored interactions and its trend
      (intelligence.selectors.sentiment_trend);
    - open promises: callbacks, follow-up tasks and escalations still owed to them
      (followups.selectors.open_promises), whoever promised them.
    """
    from followups.selectors import open_promises
    from intelligence.selectors import sentiment_trend

    now = now or timezone.now()
    profile = CustomerProfile.objects.get(customer_id=customer_id)
    ids = _absorbed(customer_id)
    identities = list(CustomerIdentity.objects.filter(customer_id=customer_id).order_by("kind", "provider")
                      .values("kind", "provider"))
    open_interactions = list(Interaction.objects.filter(customer_id__in=ids).exclude(status__in=CLOSED)
                             .order_by("-created_at"))
    cases: dict = {}
    for i in open_interactions:
        cases.setdefault(i.case_id, []).append(i.id)
    created_at = dict(Case.objects.filter(id__in=cases).values_list("id", "created_at"))
    open_cases = [{"id": cid, "created_at": created_at.get(cid), "open_interactions": iids}
                  for cid, iids in cases.items()]
    repeat_of = repeat_contacts(customer_id, now=now)
    return CustomerContext(profile=profile, identities=identities, open_interactions=open_interactions,
                           open_cases=open_cases, last_contacts=last_contacts(customer_id),
                           repeat_contact=bool(repeat_of), repeat_of=repeat_of, sentiment=sentiment_trend(ids),
                           open_promises=open_promises(customer_ids=ids, limit=20))


def last_contacts(customer_id: uuid.UUID, *, limit: int = LAST_CONTACTS) -> list[dict]:
    """The last `limit` interactions by start time, with their outcome, from the timeline (two queries).

    `outcome` is "resolved" (wrapped up: `disposition` says how), "abandoned",
    "ended" (ended, wrap-up pending) or "open".
    """
    started = list(
        TimelineEntry.objects.filter(customer_id=customer_id, event_type=CREATED)
        .order_by("-occurred_at", "-position").values("stream_id", "occurred_at", "channel", "data")[:limit]
    )
    ids = [s["stream_id"] for s in started]
    contacts = {
        s["stream_id"]: {"interaction_id": s["stream_id"], "case_id": s["data"].get("case_id"),
                         "channel": s["data"].get("channel") or s["channel"],
                         "direction": s["data"].get("direction"), "started_at": s["occurred_at"],
                         "ended_at": None, "end_reason": None, "disposition": None, "outcome": "open"}
        for s in started
    }
    # In time order, so the last word wins (a reopened interaction is open again).
    for e in (TimelineEntry.objects.filter(customer_id=customer_id, stream_id__in=ids,
                                           event_type__in=[ENDED, WRAPPED_UP, ABANDONED, REOPENED])
              .order_by("occurred_at", "position").values("stream_id", "event_type", "occurred_at", "data")):
        contact_outcome(contacts[e["stream_id"]], e["event_type"], e["occurred_at"], e["data"])
    return [contacts[i] for i in ids]


def contact_outcome(contact: dict, event_type: str, occurred_at: dt.datetime, data: dict) -> dict:
    """One event's effect on a last-contacts entry (shared by the live path and history.asof); others: none."""
    if event_type == ENDED:
        contact.update(ended_at=occurred_at, end_reason=data.get("reason"), outcome="ended")
    elif event_type == WRAPPED_UP:
        contact.update(disposition=data.get("disposition"), outcome="resolved")
    elif event_type == ABANDONED:
        contact.update(ended_at=occurred_at, outcome="abandoned")
    elif event_type == REOPENED:
        contact.update(ended_at=None, end_reason=None, disposition=None, outcome="open")
    return contact


def repeat_contacts(customer_id: uuid.UUID, *, now: dt.datetime, window: dt.timedelta = REPEAT_CONTACT_WINDOW,
                    ) -> list[uuid.UUID]:
    """The customer's interactions that were resolved but whose matter came back: a repeat contact.

    First-contact resolution counts a contact as resolved only if the
    customer does not come back about the same matter within N days (here 7).
    The matter is the case. An interaction I of the customer (or of a
    customer merged into them) is a resolved contact that came back when

    - I was wrapped up (resolved) within the last 7 days, and
    - its case is still open (some interaction on it, I reopened included,
      is not resolved or abandoned), or another interaction was started on
      the same case after I was resolved and within 7 days of it.

    `repeat_contact` is true when there is at least one such I; contacts about
    other cases do not count, nor do abandoned ones (never resolved).
    """
    resolved = dict(
        TimelineEntry.objects.filter(customer_id=customer_id, event_type=WRAPPED_UP, occurred_at__gte=now - window)
        .order_by("occurred_at", "position").values_list("stream_id", "occurred_at")
    )  # the last wrap-up of each interaction wins
    if not resolved:
        return []
    case_of = dict(Interaction.objects.filter(id__in=resolved).values_list("id", "case_id"))
    open_cases = set(Interaction.objects.filter(case_id__in=set(case_of.values())).exclude(status__in=CLOSED)
                     .values_list("case_id", flat=True))
    started = list(
        TimelineEntry.objects.filter(customer_id=customer_id, event_type=CREATED,
                                     occurred_at__gt=min(resolved.values()))
        .values_list("stream_id", "occurred_at", "data__case_id")
    )
    repeats = []
    for iid, resolved_at in resolved.items():
        case_id = case_of.get(iid)
        if case_id is None:
            continue
        came_back = any(
            sid != iid and str(cid) == str(case_id) and resolved_at < at <= resolved_at + window
            for sid, at, cid in started
        )
        if case_id in open_cases or came_back:
            repeats.append(iid)
    return repeats
