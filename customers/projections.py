"""Customer read models: the directory (profiles) and the unified timeline.

Both apply a whole batch with a few set-based statements instead of one per
event, so a replay of hundreds of thousands of events takes seconds. Each
has exactly the effect of applying the batch's events one at a time, in
order (the runner falls back to single events to isolate a failure).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from customers.events import (
    CustomerDetailsChanged,
    CustomerErased,
    CustomerMerged,
    CustomerMergedInto,
    CustomerRegistered,
    CustomerUnmerged,
    CustomerUnmergedFrom,
    IdentityLinked,
    ProfileUpdated,
)
from customers.models import CustomerProfile, TimelineEntry, TimelineMerge, TimelineReassigned
from customers.realtime import notify_timeline
from events import registry
from events.crypto import ERASED
from events.db import raw_cursor
from events.projection import Projection, register
from events.store import Envelope

REGISTERED = CustomerRegistered.event_type
CHANGED = CustomerDetailsChanged.event_type
ERASED_EVENT = CustomerErased.event_type
PROFILE = ProfileUpdated.event_type
MERGED_INTO = CustomerMergedInto.event_type
UNMERGED = CustomerUnmerged.event_type
UNMERGED_FROM = CustomerUnmergedFrom.event_type
DETAILS = ("display_name", "email", "phone", "preferred_channel")
PROFILE_FIELDS = ("language", "contact_hours", "vip_tier", "tags", "notes")
JSON_FIELDS = ("contact_hours", "tags")
# Every column the folded changes can set, in the order of the UPDATE below.
CHANGES = DETAILS + PROFILE_FIELDS + ("merged_into",)


def _json(value):
    return None if value is None else json.dumps(value)


def directory_apply(envelopes: Sequence[Envelope]) -> None:
    """Fold the batch per customer in order, then write it in four statements.

    A customer's stream is in order within the batch: registered, then
    changes, then erased (the domain refuses changes after erasure). So
    registrations become one insert (with any later changes of the same
    batch folded in), changes of customers registered earlier one update,
    erasures one update, and activity counts one update. Every event of a
    customer's own stream moves the row's `version`, so the API shows the
    version a command must name (IdentityLinked and CustomerMerged change
    nothing else).
    """
    new: dict = {}  # customer -> the row to insert
    changed: dict = {}  # customer -> {field: value} for rows that exist already
    version: dict = {}
    erased: set = set()
    unmerged: set = set()  # merged_into to clear
    activity: dict = {}
    for env in envelopes:
        cid = env.customer_id
        if cid is None:
            continue
        count, last = activity.get(cid, (0, env.occurred_at))
        activity[cid] = (count + 1, max(last, env.occurred_at))
        if env.stream_type != "customer" or env.stream_id != cid:
            continue
        values: dict = {}
        if env.event_type == REGISTERED:
            d = env.data
            new[cid] = {"display_name": d["display_name"], "email": d.get("email"), "phone": d.get("phone"),
                        "preferred_channel": d.get("preferred_channel") or "", "registered_at": env.occurred_at}
        elif env.event_type == CHANGED:
            values = {k: env.data[k] for k in DETAILS if env.data.get(k) is not None}
        elif env.event_type == PROFILE:
            values = {k: env.data[k] for k in PROFILE_FIELDS if env.data.get(k) is not None}
        elif env.event_type == MERGED_INTO:
            values = {"merged_into": env.data["target_id"]}
            unmerged.discard(cid)
        elif env.event_type == UNMERGED_FROM:
            # The UPDATE below can only set a column (coalesce keeps it when null): clearing is its own statement,
            # after it, and it forgets a merge folded earlier in the batch.
            (new[cid] if cid in new else changed.setdefault(cid, {})).pop("merged_into", None)
            if cid not in new:
                unmerged.add(cid)
        elif env.event_type == ERASED_EVENT:
            erased.add(cid)
        (new[cid] if cid in new else changed.setdefault(cid, {})).update(values)
        version[cid] = env.stream_version

    with raw_cursor() as cur:
        if new:
            rows = list(new.items())
            cur.execute(
                """
                INSERT INTO customers_customerprofile (customer_id, display_name, email, phone, preferred_channel,
                                                       registered_at, version, language, contact_hours, vip_tier,
                                                       tags, notes, merged_into, event_count, erased)
                SELECT t.id, t.display_name, t.email, t.phone, t.preferred_channel, t.registered_at, t.version,
                       coalesce(t.language, ''), coalesce(t.contact_hours, '{}'), coalesce(t.vip_tier, 'none'),
                       coalesce(t.tags, '[]'), coalesce(t.notes, ''), t.merged_into, 0, false
                FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::int[],
                            %s::text[], %s::text[]::jsonb[], %s::text[], %s::text[]::jsonb[], %s::text[], %s::uuid[])
                     AS t(id, display_name, email, phone, preferred_channel, registered_at, version, language,
                          contact_hours, vip_tier, tags, notes, merged_into)
                ON CONFLICT (customer_id) DO NOTHING
                """,
                [[c for c, _ in rows], [r["display_name"] for _, r in rows], [r.get("email") for _, r in rows],
                 [r.get("phone") for _, r in rows], [r["preferred_channel"] for _, r in rows],
                 [r["registered_at"] for _, r in rows], [version[c] for c, _ in rows]]
                + [[_json(r.get(k)) if k in JSON_FIELDS else r.get(k) for _, r in rows]
                   for k in PROFILE_FIELDS + ("merged_into",)],
                prepare=True,
            )
        if changed:
            rows = list(changed.items())
            cur.execute(
                """
                UPDATE customers_customerprofile p
                SET display_name = coalesce(t.display_name, p.display_name), email = coalesce(t.email, p.email),
                    phone = coalesce(t.phone, p.phone),
                    preferred_channel = coalesce(t.preferred_channel, p.preferred_channel),
                    language = coalesce(t.language, p.language),
                    contact_hours = coalesce(t.contact_hours, p.contact_hours),
                    vip_tier = coalesce(t.vip_tier, p.vip_tier), tags = coalesce(t.tags, p.tags),
                    notes = coalesce(t.notes, p.notes), merged_into = coalesce(t.merged_into, p.merged_into),
                    version = t.version
                FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                            %s::text[]::jsonb[], %s::text[], %s::text[]::jsonb[], %s::text[], %s::uuid[], %s::int[])
                     AS t(id, display_name, email, phone, preferred_channel, language, contact_hours, vip_tier,
                          tags, notes, merged_into, version)
                WHERE p.customer_id = t.id
                """,
                [[c for c, _ in rows]]
                + [[_json(r.get(k)) if k in JSON_FIELDS else r.get(k) for _, r in rows] for k in CHANGES]
                + [[version[c] for c, _ in rows]],
                prepare=True,
            )
        if unmerged:
            cur.execute("UPDATE customers_customerprofile SET merged_into = NULL WHERE customer_id = ANY(%s)",
                        [list(unmerged)], prepare=True)
        if erased:
            ids = list(erased)
            cur.execute(
                """
                UPDATE customers_customerprofile p
                SET display_name = %s, email = NULL, phone = NULL, notes = '', erased = true, version = t.version
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


def _timeline_merges(cur, envelopes: Sequence[Envelope]) -> tuple[dict, dict]:
    """Apply the batch's merges and unmerges to the maps and the entries; returns the maps (see _owners).

    A merge (CustomerMergedInto on the source) re-points the source's
    entries, and those of anyone merged into it before, to the end of the
    target's chain. An event of a merged customer that arrives later (an
    interaction still open at the merge, or a partition that lags) is mapped
    on insert. Both ways every entry ends at the end of its chain, whatever
    order the partitions deliver in, so live equals replay.
    """
    for env in envelopes:
        if env.event_type not in UNDOABLE or env.customer_id is None:
            continue
        if env.event_type == MERGED_INTO:
            _merge(cur, source=env.customer_id, target=env.data["target_id"])
        elif env.event_type == UNMERGED_FROM:
            _unmerge(cur, source=env.customer_id)
        elif env.data.get("interactions_returned"):  # UNMERGED, on the target's stream
            _reassign(cur, streams=env.data["interactions_returned"], to=env.data["source_id"])
    return _owners(cur, envelopes)


UNDOABLE = (MERGED_INTO, UNMERGED_FROM, UNMERGED)


def _merge(cur, *, source, target) -> None:
    cur.execute(
        """
        WITH root AS (
            SELECT coalesce((SELECT target_id FROM customers_timelinemerge WHERE source_id = %(target)s),
                            %(target)s::uuid) AS id
        ), mapped AS (
            INSERT INTO customers_timelinemerge (source_id, target_id, parent_id) SELECT %(source)s, id, %(target)s
            FROM root
            ON CONFLICT (source_id) DO UPDATE SET target_id = EXCLUDED.target_id, parent_id = EXCLUDED.parent_id
        ), chained AS (
            UPDATE customers_timelinemerge SET target_id = (SELECT id FROM root) WHERE target_id = %(source)s
        )
        UPDATE customers_timelineentry SET customer_id = (SELECT id FROM root)
        WHERE customer_id = %(source)s
        """,
        {"source": source, "target": target},
    )


def _unmerge(cur, *, source) -> None:
    """The source leaves its chain: it, and those merged into it before (its subtree), end at the source again.

    Every entry ends at the end of its owner's chain (TimelineEntry.owner_id),
    so the entries to move back are those owned by the source or its subtree,
    wherever the chain had taken them. The CustomerUnmergedFrom event sits on
    the source's partition with its CustomerMergedInto, so the merge it undoes
    was always applied before it.
    """
    cur.execute(
        """
        WITH RECURSIVE subtree(id) AS (
            SELECT source_id FROM customers_timelinemerge WHERE parent_id = %(source)s
            UNION SELECT m.source_id FROM customers_timelinemerge m JOIN subtree s ON m.parent_id = s.id
        ), rerooted AS (
            UPDATE customers_timelinemerge SET target_id = %(source)s WHERE source_id IN (SELECT id FROM subtree)
        ), cut AS (
            DELETE FROM customers_timelinemerge WHERE source_id = %(source)s
        )
        UPDATE customers_timelineentry SET customer_id = %(source)s
        WHERE owner_id = %(source)s OR owner_id IN (SELECT id FROM subtree)
        """,
        {"source": source},
    )


def _reassign(cur, *, streams: list, to) -> None:
    """Interactions an unmerge gave back: owned by `to` from now on, at the end of its chain (now, or once the
    source's own CustomerUnmergedFrom, on another partition, is applied: that one moves what `to` owns)."""
    cur.execute(
        """
        WITH root AS (
            SELECT coalesce((SELECT target_id FROM customers_timelinemerge WHERE source_id = %(to)s),
                            %(to)s::uuid) AS id
        ), noted AS (
            INSERT INTO customers_timelinereassigned (stream_id, customer_id) SELECT unnest(%(streams)s::uuid[]), %(to)s
            ON CONFLICT (stream_id) DO UPDATE SET customer_id = EXCLUDED.customer_id
        )
        UPDATE customers_timelineentry SET owner_id = %(to)s, customer_id = (SELECT id FROM root)
        WHERE stream_id = ANY(%(streams)s::uuid[])
        """,
        {"streams": streams, "to": to},
    )


def _owners(cur, envelopes: Sequence[Envelope]) -> tuple[dict, dict]:
    """For the batch: (stream -> owner, for interactions an unmerge gave back; owner -> end of its chain)."""
    streams = list({env.stream_id for env in envelopes
                    if env.customer_id is not None and env.stream_type != "customer"})
    reassigned: dict = {}
    if streams:
        cur.execute("SELECT stream_id, customer_id FROM customers_timelinereassigned WHERE stream_id = ANY(%s)",
                    [streams], prepare=True)
        reassigned = dict(cur.fetchall())
    ids = list({env.customer_id for env in envelopes if env.customer_id is not None} | set(reassigned.values()))
    cur.execute("SELECT source_id, target_id FROM customers_timelinemerge WHERE source_id = ANY(%s)", [ids],
                prepare=True)
    return reassigned, dict(cur.fetchall())


TIMELINE_MERGE_LOCK = 0x54494D45  # pg advisory lock key ("TIME")


def timeline_apply(envelopes: Sequence[Envelope]) -> None:
    """Merges first, then one COPY for the whole batch.

    Personal fields are copied encrypted (Envelope.sealed_data), with the
    customer whose key encrypts them, and decrypted when read
    (customers.selectors.timeline_page).
    """
    with raw_cursor() as cur:
        # Projector shards (events/runner.py) apply other partitions meanwhile, and a merge re-points other
        # customers' rows: a batch with a merge holds this lock alone, every other batch shares it.
        merging = any(env.event_type in UNDOABLE for env in envelopes)
        cur.execute(f"SELECT pg_advisory_xact_lock{'' if merging else '_shared'}(%s)::text", [TIMELINE_MERGE_LOCK])
        reassigned, merged = _timeline_merges(cur, envelopes)
        with cur.copy(
            "COPY customers_timelineentry (position, customer_id, event_id, event_type, stream_type, stream_id,"
            " occurred_at, channel, actor, data, personal_fields, key_id, owner_id) FROM STDIN"
        ) as copy:
            for env in envelopes:
                if env.customer_id is None:
                    continue
                personal = registry.event_type(env.event_type).pii_fields
                if personal:
                    sealed = env.sealed_data()
                    data = json.dumps(sealed)
                    listed = json.dumps(sorted(k for k in personal if sealed.get(k) is not None))
                    key_id = env.customer_id
                else:
                    data, listed, key_id = env.data_json, "[]", None  # copied through as stored: no parse, no dump
                owner = reassigned.get(env.stream_id, env.customer_id)
                copy.write_row((env.position, merged.get(owner, owner), env.event_id,
                                env.event_type, env.stream_type, env.stream_id, env.occurred_at, env.channel,
                                env.actor_json, data, listed, key_id, owner))


directory = register(
    Projection(
        name="customers.directory",
        tables=[CustomerProfile],
        batch_handler=directory_apply,
        subscribes=[CustomerRegistered, CustomerDetailsChanged, ProfileUpdated, IdentityLinked, CustomerMerged,
                    CustomerMergedInto, CustomerUnmerged, CustomerUnmergedFrom, CustomerErased],
        reads="customer events, and every event with a customer_id (activity counts)",
    )
)

timeline = register(
    Projection(
        name="customers.timeline",
        tables=[TimelineEntry, TimelineMerge, TimelineReassigned],
        batch_handler=timeline_apply,
        after_commit=notify_timeline,
        subscribes=[CustomerMergedInto, CustomerUnmerged, CustomerUnmergedFrom],
        reads="every event with a customer_id (a merge re-points the source's entries to the target, an unmerge "
              "back, with the interactions it gives back)",
    )
)
