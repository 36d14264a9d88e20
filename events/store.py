"""The append-only event store in PostgreSQL.

`append()` is the only way events enter the system. In one statement it
checks the stream's expected version, inserts the events and their outbox
rows; the caller's transaction commits all of it together with any state
rows, or none of it.

Reads decrypt personal data with the customers' keys (erased customers read
back as "[erased]") and upcast old schema versions to the current one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from django.db import connection, transaction

from events import registry
from events.db import raw_cursor
from events.crypto import ERASED, KeyRing, encrypt_value


class ConcurrencyConflict(Exception):
    """The stream moved on since the caller read it (HTTP 409)."""

    def __init__(self, stream_id: uuid.UUID, expected_version: int):
        self.stream_id = stream_id
        self.expected_version = expected_version
        super().__init__(f"stream {stream_id} is no longer at version {expected_version}")


def uuid7s(n: int) -> list[uuid.UUID]:
    """`n` time-ordered UUIDs (RFC 9562 version 7): 48-bit ms timestamp, then random bits.

    Made in one go (one clock read, one call for randomness): an append of a
    hundred events should not pay for a hundred system calls.
    """
    ms = (time.time_ns() // 1_000_000) & (2**48 - 1)
    rand = os.urandom(10 * n)
    out = []
    for i in range(n):
        r = int.from_bytes(rand[10 * i: 10 * i + 10], "big")
        value = ms << 80 | r & (2**80 - 1)
        value = value & ~(0xF << 76) | 0x7 << 76  # version 7
        value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 4122 variant
        out.append(uuid.UUID(int=value))
    return out


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7)."""
    return uuid7s(1)[0]


@dataclass(frozen=True)
class Actor:
    """Who caused an event: an agent, a customer, a user of the API, or the system."""

    type: str
    id: str | None = None
    name: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in {"type": self.type, "id": self.id, "name": self.name}.items() if v is not None}


SYSTEM = Actor("system")


@dataclass(frozen=True)
class Metadata:
    """What a command knows about its context; copied onto every event it produces."""

    actor: Actor = SYSTEM
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    channel: str = ""


class Envelope:
    """A stored event with its envelope; `data` is decrypted and upcast to the current version.

    `data` is decoded on first use: a replay builds hundreds of thousands of
    envelopes, and a projection that only copies a payload through
    (`data_json`) never pays for parsing it when it is stored in its final
    form (current version, no personal data).
    """

    __slots__ = ("position", "event_id", "event_type", "schema_version", "stream_type", "stream_id",
                 "stream_version", "customer_id", "occurred_at", "recorded_at", "correlation_id", "causation_id",
                 "_actor", "channel", "_stored", "_stored_version", "_data", "_keys")

    def __init__(self, position: int, event_id: uuid.UUID, event_type: str, schema_version: int, stream_type: str,
                 stream_id: uuid.UUID, stream_version: int, customer_id: uuid.UUID | None,
                 occurred_at: dt.datetime, recorded_at: dt.datetime, correlation_id: uuid.UUID | None,
                 causation_id: uuid.UUID | None, actor: dict | str, channel: str, data: dict | str,
                 keys: KeyRing | None = None):
        # `schema_version` and `data` are as stored; the properties give them current.
        et = registry.event_type(event_type)
        self.position, self.event_id, self.event_type = position, event_id, event_type
        self.schema_version = et.version
        self.stream_type, self.stream_id, self.stream_version = stream_type, stream_id, stream_version
        self.customer_id, self.occurred_at, self.recorded_at = customer_id, occurred_at, recorded_at
        self.correlation_id, self.causation_id, self._actor, self.channel = correlation_id, causation_id, actor, channel
        self._stored, self._stored_version, self._keys = data, schema_version, keys
        self._data = data if keys is None and isinstance(data, dict) and schema_version == et.version else None

    @property
    def _final(self) -> bool:
        """The stored payload is already what `data` returns (nothing to decrypt or upcast)."""
        et = registry.event_type(self.event_type)
        return self._stored_version == et.version and not et.pii_fields

    @property
    def data(self) -> dict:
        if self._data is None:
            data = json.loads(self._stored) if isinstance(self._stored, str) else self._stored
            if self._keys is not None:
                data = self._keys.decrypt_data(self.customer_id, data)
            self._data = registry.upcast(self.event_type, self._stored_version, data)
        return self._data

    @property
    def data_json(self) -> str:
        """`data` as JSON text; the stored text itself when it is final (no parse, no dump)."""
        if isinstance(self._stored, str) and self._final:
            return self._stored
        return json.dumps(self.data)

    def sealed_data(self) -> dict:
        """`data` with its personal fields still encrypted under the customer's key (as `data_json`'s shape).

        For read models that keep personal data but must forget it when the
        customer's key is destroyed: they store this and decrypt on read with
        a KeyRing for `customer_id`. An event stored at its current version
        gives its stored ciphertext (no crypto, and the same bytes on every
        replay); an older one is upcast and its personal fields encrypted
        again. A field already erased stays the erased marker.
        """
        et = registry.event_type(self.event_type)
        if self._stored_version == et.version:
            return json.loads(self._stored) if isinstance(self._stored, str) else dict(self._stored)
        data = dict(self.data)
        key = self._keys.key(self.customer_id) if self._keys is not None and self.customer_id else None
        stored = json.loads(self._stored) if isinstance(self._stored, str) else dict(self._stored)
        own = next((v["k"] for v in stored.values() if isinstance(v, dict) and "k" in v), None)
        if own is not None:  # the stream's own key: encrypted again under it, never the customer's
            kid = uuid.UUID(own)
            key = self._keys.stream_key(kid) if self._keys is not None else None
        for name in et.pii_fields:
            value = data.get(name)
            if value is not None and value != ERASED and key is not None:
                data[name] = encrypt_value(key, kid, value, stream_key=True) if own is not None \
                    else encrypt_value(key, self.customer_id, value)
        return data

    @property
    def actor(self) -> dict:
        if isinstance(self._actor, str):
            self._actor = json.loads(self._actor)
        return self._actor

    @property
    def actor_json(self) -> str:
        return self._actor if isinstance(self._actor, str) else json.dumps(self._actor)

    @property
    def event(self) -> Any:
        """The typed event instance (a frozen dataclass of the current version)."""
        return registry.from_data(self.event_type, self.data)

    def __repr__(self) -> str:
        return f"<Envelope #{self.position} {self.event_type} {self.stream_type}/{self.stream_id}@{self.stream_version}>"

    def as_dict(self) -> dict:
        return {
            "position": self.position,
            "event_id": str(self.event_id),
            "event_type": self.event_type,
            "schema_version": self.schema_version,
            "stream_type": self.stream_type,
            "stream_id": str(self.stream_id),
            "stream_version": self.stream_version,
            "customer_id": str(self.customer_id) if self.customer_id else None,
            "occurred_at": self.occurred_at.isoformat(),
            "recorded_at": self.recorded_at.isoformat(),
            "correlation_id": str(self.correlation_id) if self.correlation_id else None,
            "causation_id": str(self.causation_id) if self.causation_id else None,
            "actor": self.actor,
            "channel": self.channel,
            "data": self.data,
        }


# The columns in the order every query below selects them.
COLUMNS = (
    "position, event_id, event_type, schema_version, stream_type, stream_id, stream_version, customer_id, "
    "occurred_at, recorded_at, correlation_id, causation_id, actor::text, channel, data::text"
)

# Optimistic concurrency without a table lock, in one statement. The unique
# index on (stream_id, stream_version) is the arbiter: two writers that read
# the same version both try to insert the next one, the second waits for the
# first to commit and then fails on the index (a ConcurrencyConflict). An
# expected version the stream has not reached inserts nothing (the EXISTS
# guard), so a stream never has a gap. Writers of different streams never
# wait for each other. The outbox row is written by the same statement.
_GUARD = """
    WHERE %(expected)s = 0
       OR EXISTS (SELECT 1 FROM events_event WHERE stream_id = %(stream_id)s AND stream_version = %(expected)s)
"""
_COLUMNS_IN = """events_event (event_id, event_type, schema_version, stream_type, stream_id, stream_version,
                               customer_id, occurred_at, recorded_at, correlation_id, causation_id, actor,
                               channel, data)"""
_TO_OUTBOX = """
    INSERT INTO events_outbox (position, enqueued_at) SELECT position, now() FROM appended RETURNING position
"""
# One event (the common case): plain parameters, nothing to pack into arrays.
_APPEND_ONE = f"""
    WITH appended AS (
        INSERT INTO {_COLUMNS_IN}
        SELECT %(event_id)s, %(type)s, %(version)s, %(stream_type)s, %(stream_id)s, %(expected)s + 1,
               %(customer_id)s, %(occurred_at)s, now(), %(correlation_id)s, %(causation_id)s, %(actor)s::jsonb,
               %(channel)s, %(data)s::jsonb
        {_GUARD}
        RETURNING position
    )""" + _TO_OUTBOX
# Arrays go in binary (%b): in text form psycopg escapes every quote of every
# JSON payload with a regular expression, which cost more than the insert.
_APPEND_MANY = f"""
    WITH appended AS (
        INSERT INTO {_COLUMNS_IN}
        SELECT e.event_id, e.event_type, e.schema_version, %(stream_type)s, %(stream_id)s,
               %(expected)s + e.ord, %(customer_id)s, %(occurred_at)s, now(), %(correlation_id)s,
               %(causation_id)s, %(actor)s::jsonb, %(channel)s, e.data
        FROM unnest(%(event_ids)b::uuid[], %(types)b::text[], %(versions)b::int[], %(datas)b::text[]::jsonb[])
             WITH ORDINALITY AS e(event_id, event_type, schema_version, data, ord)
        {_GUARD}
        RETURNING position
    )""" + _TO_OUTBOX
_STREAM_VERSION_INDEX = "events_stream_version_uniq"


def _stored_data(et: registry.EventType, instance: Any, customer_id: uuid.UUID | None, key_cache: dict,
                 stream_id: uuid.UUID | None = None) -> str:
    data = registry.to_data(instance)
    personal = [name for name in et.pii_fields if data.get(name) is not None]
    if personal:
        if customer_id is None:
            raise ValueError(f"{et.name} carries personal data and needs a customer_id")
        # A stream with a key of its own (events.models.StreamKey) uses it instead of the customer's; which
        # key, and the key, in one statement per stream and append, only for events that carry personal data.
        found = key_cache.get((customer_id, stream_id))
        if found is None:
            found = key_cache[(customer_id, stream_id)] = KeyRing.for_writing(customer_id, stream_id)
        key, key_id = found
        for name in personal:
            data[name] = encrypt_value(key, key_id, data[name], stream_key=key_id != customer_id)
    return json.dumps(data)


def _insert(sql: str, params: dict, stream_id: uuid.UUID, expected_version: int) -> list[int]:
    """Run an append statement in the caller's transaction; the positions it returns. A second writer of the
    same stream version (the unique index) is a ConcurrencyConflict."""
    with transaction.atomic(savepoint=False):
        with raw_cursor() as cur:
            try:
                cur.execute(sql, params, prepare=True)
            except psycopg.errors.UniqueViolation as exc:
                if exc.diag.constraint_name == _STREAM_VERSION_INDEX:
                    raise ConcurrencyConflict(stream_id, expected_version) from None
                raise
            return [row[0] for row in cur.fetchall()]


def append(
    *,
    stream_type: str,
    stream_id: uuid.UUID,
    events: Sequence[Any],
    expected_version: int,
    customer_id: uuid.UUID | None = None,
    meta: Metadata = Metadata(),
    occurred_at: dt.datetime | None = None,
) -> list[int]:
    """Append `events` to a stream that must be at `expected_version` (0: a new stream).

    Raises ConcurrencyConflict, inserting nothing, when the stream is at any
    other version; a conflict aborts the caller's transaction, so let it
    propagate out of the `atomic()` block (the API turns it into a 409). Runs
    inside the caller's transaction (or its own): the events, their outbox
    rows and the caller's state rows commit together.
    Returns the global positions of the new events.
    """
    if not events:
        return []
    occurred_at = occurred_at or dt.datetime.now(dt.UTC)
    key_cache: dict = {}
    types, versions, datas = [], [], []
    for instance in events:
        et = registry.type_of(instance)
        types.append(et.name)
        versions.append(et.version)
        datas.append(_stored_data(et, instance, customer_id, key_cache, stream_id))
    params = {
        "stream_type": stream_type,
        "stream_id": stream_id,
        "expected": expected_version,
        "customer_id": customer_id,
        "occurred_at": occurred_at,
        "correlation_id": meta.correlation_id,
        "causation_id": meta.causation_id,
        "actor": json.dumps(meta.actor.as_dict()),
        "channel": meta.channel,
    }
    if len(events) == 1:
        sql = _APPEND_ONE
        params.update(event_id=uuid7(), type=types[0], version=versions[0], data=datas[0])
    else:
        sql = _APPEND_MANY
        params.update(event_ids=uuid7s(len(events)), types=types, versions=versions, datas=datas)
    positions = _insert(sql, params, stream_id, expected_version)
    if not positions:
        raise ConcurrencyConflict(stream_id, expected_version)
    return positions


# Several streams in one statement (routing offers a batch of interactions at once): every column varies by
# row; the guard is per row (its stream must be at the expected version before the statement).
_APPEND_STREAMS = f"""
    WITH rows AS (
        SELECT * FROM unnest(%(event_ids)b::uuid[], %(types)b::text[], %(versions)b::int[], %(stream_types)b::text[],
                             %(stream_ids)b::uuid[], %(stream_versions)b::int[], %(expected)b::int[],
                             %(customer_ids)b::uuid[], %(channels)b::text[], %(datas)b::text[]::jsonb[])
             WITH ORDINALITY AS e(event_id, event_type, schema_version, stream_type, stream_id, stream_version,
                                  expected, customer_id, channel, data, ord)
    ), appended AS (
        INSERT INTO {_COLUMNS_IN}
        SELECT e.event_id, e.event_type, e.schema_version, e.stream_type, e.stream_id, e.stream_version,
               e.customer_id, %(occurred_at)s, now(), %(correlation_id)s, %(causation_id)s, %(actor)s::jsonb,
               e.channel, e.data
        FROM rows e
        WHERE e.expected = 0
           OR EXISTS (SELECT 1 FROM events_event x WHERE x.stream_id = e.stream_id AND x.stream_version = e.expected)
        ORDER BY e.ord
        RETURNING position
    )""" + _TO_OUTBOX


@dataclass(frozen=True)
class StreamAppend:
    """One stream's part of `append_streams`: events for a stream that must be at `expected_version`."""

    stream_type: str
    stream_id: uuid.UUID
    events: Sequence[Any]
    expected_version: int
    customer_id: uuid.UUID | None = None
    channel: str = ""


def append_streams(appends: Sequence[StreamAppend], *, meta: Metadata = Metadata(),
                   occurred_at: dt.datetime | None = None) -> list[list[int]]:
    """`append()` for several streams in one statement, all or nothing (one actor and correlation for all).

    Raises ConcurrencyConflict if any stream is not at its expected
    version; let it propagate out of the caller's `atomic()` block, which
    rolls back the other streams' rows with everything else. Returns each
    stream's new positions, in order.
    """
    appends = [a for a in appends if a.events]
    if not appends:
        return []
    occurred_at = occurred_at or dt.datetime.now(dt.UTC)
    key_cache: dict = {}
    cols: dict[str, list] = {k: [] for k in ("types", "versions", "stream_types", "stream_ids", "stream_versions",
                                             "expected", "customer_ids", "channels", "datas")}
    for a in appends:
        for k, instance in enumerate(a.events, start=1):
            et = registry.type_of(instance)
            cols["types"].append(et.name)
            cols["versions"].append(et.version)
            cols["stream_types"].append(a.stream_type)
            cols["stream_ids"].append(a.stream_id)
            cols["stream_versions"].append(a.expected_version + k)
            cols["expected"].append(a.expected_version)
            cols["customer_ids"].append(a.customer_id)
            cols["channels"].append(a.channel or meta.channel)
            cols["datas"].append(_stored_data(et, instance, a.customer_id, key_cache, a.stream_id))
    total = len(cols["types"])
    params = {**cols, "event_ids": uuid7s(total), "occurred_at": occurred_at, "correlation_id": meta.correlation_id,
              "causation_id": meta.causation_id, "actor": json.dumps(meta.actor.as_dict())}
    positions = _insert(_APPEND_STREAMS, params, appends[0].stream_id, appends[0].expected_version)
    if len(positions) != total:  # a stream behind its expected version: none of its rows went in
        raise ConcurrencyConflict(appends[0].stream_id, appends[0].expected_version)
    positions.sort()
    out, k = [], 0
    for a in appends:
        out.append(positions[k:k + len(a.events)])
        k += len(a.events)
    return out


# --- reads -----------------------------------------------------------------


def envelopes_from_rows(rows: Sequence[tuple]) -> list[Envelope]:
    """Envelopes from rows in COLUMNS order (payloads as stored, as JSON text or parsed).

    Keys are loaded with one query for the customers whose events carry
    personal data; decrypting and upcasting happen when `data` is first read.
    """
    keys = KeyRing.load(row[7] for row in rows if registry.event_type(row[2]).pii_fields)
    return [Envelope(*row, keys=keys) for row in rows]


def stream_version(stream_id: uuid.UUID) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT coalesce(max(stream_version), 0) FROM events_event WHERE stream_id = %s", [stream_id])
        return cur.fetchone()[0]


def read_stream(stream_id: uuid.UUID, *, after_version: int = 0) -> list[Envelope]:
    """Every event of one stream, in stream order."""
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT {COLUMNS} FROM events_event WHERE stream_id = %s AND stream_version > %s "  # nosec B608
            "ORDER BY stream_version",
            [stream_id, after_version],
        )
        return envelopes_from_rows(cur.fetchall())


def read_all(*, after_position: int = 0, limit: int = 1000) -> list[Envelope]:
    """Committed events in position order, starting after `after_position`.

    A position can become visible after a higher one (its transaction
    committed later). Paging by position is fine for rebuilding and for
    reading history; the relay, which must never skip one, works from the
    outbox instead.
    """
    with raw_cursor() as cur:
        cur.execute(
            f"SELECT {COLUMNS} FROM events_event WHERE position > %s ORDER BY position LIMIT %s",  # nosec B608
            [after_position, limit], prepare=True, binary=True,
        )
        return envelopes_from_rows(cur.fetchall())


def iter_all(*, after_position: int = 0, batch_size: int = 5000) -> Iterator[list[Envelope]]:
    """Batches of everything from a position on, up to what is committed when each batch is read."""
    position = after_position
    while True:
        batch = read_all(after_position=position, limit=batch_size)
        if not batch:
            return
        yield batch
        position = batch[-1].position


def head_position() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT coalesce(max(position), 0) FROM events_event")
        return cur.fetchone()[0]
