"""Customer read models: the directory (profiles) and the unified timeline.

Both apply a whole batch with a few set-based statements instead of one per
event, so a replay of hundreds of thousands of events takes seconds. Each
has exactly the effect of applying the batch's events one at a time, in
order (the runner falls back to single events to isolate a failure).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from customers.events import CustomerDetailsChanged, CustomerErased, CustomerRegistered
from customers.models import CustomerProfile, TimelineEntry
from customers.realtime import notify_timeline
from events import registry
from events.crypto import ERASED
from events.db import raw_cursor
from events.projection import Projection, register
from events.store import Envelope

REGISTERED = CustomerRegistered.event_type
CHANGED = CustomerDetailsChanged.event_type
ERASED_EVENT = CustomerErased.event_type
DETAILS = ("display_name", "email", "phone", "preferred_channel")


def directory_apply(envelopes: Sequence[Envelope]) -> None:
    """Fold the batch per customer in order, then write it in four statements.

    A customer's stream is in order within the batch: registered, then
    changes, then erased (the domain refuses changes after erasure). So
    registrations become one insert (with any later changes of the same
    batch folded in), changes of customers registered earlier one update,
    erasures one update, and activity counts one update.
    """
    new: dict = {}  # customer -> the row to insert
    changed: dict = {}  # customer -> {field: value} for rows that exist already
    version: dict = {}
    erased: set = set()
    activity: dict = {}
    for env in envelopes:
        cid = env.customer_id
        if cid is None:
            continue
        count, last = activity.get(cid, (0, env.occurred_at))
        activity[cid] = (count + 1, max(last, env.occurred_at))
        if env.event_type == REGISTERED:
            d = env.data
            new[cid] = {"display_name": d["display_name"], "email": d.get("email"), "phone": d.get("phone"),
                        "preferred_channel": d.get("preferred_channel") or "", "registered_at": env.occurred_at}
        elif env.event_type == CHANGED:
            values = {k: env.data[k] for k in DETAILS if env.data.get(k) is not None}
            (new[cid] if cid in new else changed.setdefault(cid, {})).update(values)
        elif env.event_type == ERASED_EVENT:
            erased.add(cid)
        else:
            continue
        version[cid] = env.stream_version

    with raw_cursor() as cur:
        if new:
            rows = list(new.items())
            cur.execute(
                """
                INSERT INTO customers_customerprofile (customer_id, display_name, email, phone, preferred_channel,
                                                       registered_at, version, event_count, erased)
                SELECT * , 0, false FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[],
                                               %s::timestamptz[], %s::int[])
                ON CONFLICT (customer_id) DO NOTHING
                """,
                [[c for c, _ in rows], [r["display_name"] for _, r in rows], [r["email"] for _, r in rows],
                 [r["phone"] for _, r in rows], [r["preferred_channel"] for _, r in rows],
                 [r["registered_at"] for _, r in rows], [version[c] for c, _ in rows]],
                prepare=True,
            )
        if changed:
            rows = list(changed.items())
            cur.execute(
                """
                UPDATE customers_customerprofile p
                SET display_name = coalesce(t.display_name, p.display_name), email = coalesce(t.email, p.email),
                    phone = coalesce(t.phone, p.phone),
                    preferred_channel = coalesce(t.preferred_channel, p.preferred_channel), version = t.version
                FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::int[])
                     AS t(id, display_name, email, phone, preferred_channel, version)
                WHERE p.customer_id = t.id
                """,
                [[c for c, _ in rows]] + [[r.get(k) for _, r in rows] for k in DETAILS] + [[version[c] for c, _ in rows]],
                prepare=True,
            )
        if erased:
            ids = list(erased)
            cur.execute(
                """
                UPDATE customers_customerprofile p
                SET display_name = %s, email = NULL, phone = NULL, erased = true, version = t.version
                FROM unnest(%s::uuid[], %s::int[]) AS t(id, version) WHERE p.customer_id = t.id
                """,
                [ERASED, ids, [version[c] for c in ids]],
                prepare=True,
            )
        if activity:
            cur.execute(
                """
                UPDATE customers_customerprofile p
                SET event_count = p.event_count + t.n, last_event_at = greatest(p.last_event_at, t.last_at)
                FROM unnest(%s::uuid[], %s::int[], %s::timestamptz[]) AS t(id, n, last_at)
                WHERE p.customer_id = t.id
                """,
                [list(activity), [v[0] for v in activity.values()], [v[1] for v in activity.values()]],
                prepare=True,
            )


def timeline_apply(envelopes: Sequence[Envelope]) -> None:
    """One COPY for the whole batch. Personal fields are not copied: their names are listed instead."""
    with raw_cursor() as cur, cur.copy(
        "COPY customers_timelineentry (position, customer_id, event_id, event_type, stream_type, stream_id,"
        " occurred_at, channel, actor, data, personal_fields) FROM STDIN"
    ) as copy:
        for env in envelopes:
            if env.customer_id is None:
                continue
            personal = registry.event_type(env.event_type).pii_fields
            if personal:
                data = json.dumps({k: v for k, v in env.data.items() if k not in personal})
                listed = json.dumps(sorted(k for k in personal if env.data.get(k) is not None))
            else:
                data, listed = env.data_json, "[]"  # copied through as stored: no parse, no dump
            copy.write_row((env.position, env.customer_id, env.event_id, env.event_type, env.stream_type,
                            env.stream_id, env.occurred_at, env.channel, env.actor_json, data, listed))


directory = register(
    Projection(
        name="customers.directory",
        tables=[CustomerProfile],
        batch_handler=directory_apply,
        subscribes=[CustomerRegistered, CustomerDetailsChanged, CustomerErased],
        reads="customer events, and every event with a customer_id (activity counts)",
    )
)

timeline = register(
    Projection(
        name="customers.timeline",
        tables=[TimelineEntry],
        batch_handler=timeline_apply,
        after_commit=notify_timeline,
        reads="every event with a customer_id",
    )
)
