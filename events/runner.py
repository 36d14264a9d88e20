"""The one consumer loop that serves every projection.

Each projection gets its own Kafka consumer (in its own thread) that assigns
itself the partitions of the events topic in its shard (every partition
unless told otherwise): no consumer group, so nothing to coordinate and
nothing to wedge. Where to resume is kept in PostgreSQL (the next offset per
partition), written in the same transaction as the projection's writes; that
an event was applied is kept per stream (projection.apply_envelopes), which
is what makes redelivery harmless.

Scaling out (docs/SCALING.md): `run_projector --shard I/N` takes the
partitions p with p % N == I, so N processes split the topic. All events of
one customer are on one partition, so each customer's order holds. A runner
holds a session advisory lock per (projection, partition) it consumes
(PartitionClaims, on a connection of its own): a runner whose shard overlaps
another's consumes only what nobody holds, and takes a partition over when
its holder's session ends (a standby), instead of racing through the same
events. Each batch also takes a transaction lock on its partitions, so two
runners can never apply one partition side by side, not even one that lost
its session lock without noticing yet: the second waits, then finds the
events applied (per-stream versions) and skips them.

The database going away (a restart) is waited out like Kafka going away:
the batch's transaction rolled back, the consumer is dropped and the next
connect seeks to the positions kept in PostgreSQL again.

Two things pause or reset a projection, both checked inside the same
transaction that would apply the batch:
- a rebuild (replay) marks it `rebuilding`: the runner applies nothing and
  holds its offsets until the rebuild is done;
- a new broker epoch (the relay found the broker empty and republishes the
  history): offsets of the old log mean nothing, so it starts at offset 0.
  The first runner of a projection to see it moves the projection's epoch
  and drops all of its checkpoints; every other shard then sees that its
  consumer's positions belong to the old epoch and seeks again, and a batch
  read under the old epoch is rolled back if the epoch moved before it
  committed (checked again under the state row's lock).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import psycopg
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from kafka import TopicPartition
from kafka.errors import KafkaError

from contactcenter import logs, metrics
from events import kafka
from events.db import DATABASE_ERRORS
from events.projection import Projection, apply_envelopes
from events.store import envelopes_from_rows

log = logging.getLogger(__name__)

APPLIED, RESEEK, PAUSED = "applied", "reseek", "paused"
# How often a runner checks that its claims' session is alive and tries the partitions of its shard that another
# runner holds: the longest a standby waits before it takes over a partition whose holder stopped.
CLAIM_SECONDS = 2.0


@dataclass(frozen=True)
class Shard:
    """The partitions p with p % count == index; 0/1 is every partition."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            index, count = (int(part) for part in text.strip().split("/"))
        except ValueError:
            raise ValueError(f"a shard is INDEX/COUNT, e.g. 0/2 (got {text!r})") from None
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"shard {text!r}: INDEX must be at least 0 and below COUNT")
        return cls(index, count)

    def owns(self, partition: int) -> bool:
        return partition % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


ALL = Shard()


def _int4(text: str) -> int:
    """A stable signed 32-bit key (the first key of pg_advisory_lock(int, int); the partition is the second)."""
    value = zlib.crc32(text.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def claim_key(projection: str) -> int:
    return _int4(f"projector.claim:{projection}")


def batch_key(projection: str) -> int:
    return _int4(f"projector.batch:{projection}")


class PartitionClaims:
    """Session advisory locks (claim_key(projection), partition): the partitions this runner consumes.

    On a connection of its own: Django's connections go back to a pool
    between batches, and a session lock must last as long as the ownership.
    Its session ending (the process exits or dies, the database restarts)
    frees the partitions for a standby at once.
    """

    def __init__(self, projection: str):
        self.key = claim_key(projection)
        self.conn: psycopg.Connection | None = None
        self.held: set[int] = set()

    def claim(self, wanted: Iterable[int]) -> set[int]:
        """Check the session (a lost session lost its locks), lock what is wanted and free; the partitions held."""
        wanted = set(wanted)
        for attempt in (1, 2):  # a session found dead is replaced at once
            try:
                if self.conn is None:
                    self.conn = psycopg.connect(autocommit=True, **_connection_params())
                    self.held = set()
                else:
                    self.conn.execute("SELECT 1")
                missing = sorted(wanted - self.held)
                if missing:
                    rows = self.conn.execute(
                        "SELECT p FROM unnest(%s::int[]) AS t(p) WHERE pg_try_advisory_lock(%s, p)",
                        [missing, self.key],
                    ).fetchall()
                    self.held |= {p for (p,) in rows}
                return set(self.held)
            except psycopg.Error as exc:
                if attempt == 2:
                    log.warning("partition claims: database unavailable (%s)", str(exc).strip()[:200])
                self.release()
        return set()

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # a dead session: nothing left to release
                log.debug("error closing the claims connection", exc_info=True)
        self.conn = None
        self.held = set()


def _connection_params() -> dict:
    """This thread's Django database settings as psycopg.connect() arguments (the same database in tests)."""
    params = connection.get_connection_params()
    for django_only in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    return params


def partition_owners(projection: str) -> dict[int, int]:
    """Partition -> backend pid of the runner session that holds it now, for one projection (from pg_locks)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT l.objid::bigint, l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.classid = (%s::int)::oid "
            "AND d.datname = current_database()",
            [claim_key(projection)],
        )
        return {int(p): pid for p, pid in cur.fetchall()}


class _EpochMoved(Exception):
    """Another shard started a new broker epoch while this batch was applied: roll it back and seek again."""


def _row_from_message(value: bytes) -> tuple:
    r = json.loads(value)
    uid = lambda v: uuid.UUID(v) if v else None  # noqa: E731
    return (
        r["position"], uuid.UUID(r["event_id"]), r["event_type"], r["schema_version"], r["stream_type"],
        uuid.UUID(r["stream_id"]), r["stream_version"], uid(r["customer_id"]),
        datetime.fromisoformat(r["occurred_at"]), datetime.fromisoformat(r["recorded_at"]),
        uid(r["correlation_id"]), uid(r["causation_id"]), r["actor"], r["channel"], r["data"],
    )


def ensure_state(name: str) -> None:
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO events_projection_state (name, status, broker_epoch, applied_total) "
            "VALUES (%s, 'live', 0, 0) ON CONFLICT (name) DO NOTHING",
            [name],
        )


class ProjectorRunner:
    def __init__(self, projection: Projection, *, topic: str | None = None, shard: Shard = ALL):
        self.projection = projection
        self.topic = topic or settings.KAFKA_EVENTS_TOPIC
        self.shard = shard
        self.consumer = None
        self.mine: list[int] = []  # the topic's partitions in this shard
        self.partitions: list[TopicPartition] = []  # those this runner holds and consumes
        self.claims = PartitionClaims(projection.name)
        self.epoch: int | None = None  # the broker epoch the consumer's positions belong to
        self._claimed_at = float("-inf")

    def run(self, stop: threading.Event) -> None:
        backoff = 0.5
        ready = False
        try:
            while not stop.is_set():
                try:
                    if not ready:
                        ensure_state(self.projection.name)
                        ready = True
                    if self.consumer is None and not self._connect(stop):
                        continue
                    if time.monotonic() - self._claimed_at >= CLAIM_SECONDS:
                        self._claim()
                    if not self.partitions:
                        stop.wait(CLAIM_SECONDS)  # another runner holds all of ours: stand by
                        continue
                    outcome = self.step()
                    if outcome == RESEEK:
                        self._seek_to_checkpoints()
                    elif outcome == PAUSED:
                        self._seek_to_checkpoints()
                        stop.wait(0.5)
                    backoff = 0.5
                except DATABASE_ERRORS as exc:
                    # The batch's transaction rolled back, but the consumer has moved past what it polled: drop
                    # it, so that the next connect seeks to the checkpoints again (nothing skipped, nothing
                    # applied twice).
                    log.warning("%s: database unavailable (%s); retrying in %.1fs", self.projection.name, exc,
                                backoff)
                    self._close()
                    connection.close()
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                except (KafkaError, OSError) as exc:
                    metrics.KAFKA_ERRORS.labels("projector").inc()
                    log.warning("%s: Kafka unavailable (%s); retrying in %.1fs", self.projection.name, exc, backoff)
                    self._close()
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                finally:
                    close_old_connections()
        finally:
            # However the loop ends (stopped, or a crash): give the partitions back now, for a standby.
            self.claims.release()
            self._close()
            connection.close()

    def _connect(self, stop: threading.Event) -> bool:
        self.consumer = kafka.consumer()
        partitions = self.consumer.partitions_for_topic(self.topic)
        if not partitions:
            # The relay creates the topic; until then there is nothing to read.
            self._close()
            stop.wait(1.0)
            return False
        self.mine = [p for p in sorted(partitions) if self.shard.owns(p)]
        if not self.mine:
            log.warning("%s: shard %s gets none of the %d partitions of %s", self.projection.name, self.shard,
                        len(partitions), self.topic)
        self.partitions = []
        self._claim()
        log.info("%s: shard %s of %s: consuming partitions %s of %d", self.projection.name, self.shard, self.topic,
                 [tp.partition for tp in self.partitions], len(partitions))
        return True

    def _claim(self) -> None:
        """Hold what we can of our shard; on a change, consume exactly that from its checkpoints."""
        held = self.claims.claim(self.mine)
        self._claimed_at = time.monotonic()
        owned = [p for p in self.mine if p in held]
        before = [tp.partition for tp in self.partitions]
        if owned == before:
            return
        self.partitions = [TopicPartition(self.topic, p) for p in owned]
        self.consumer.assign(self.partitions)
        if self.partitions:
            self._seek_to_checkpoints()
        waiting = [p for p in self.mine if p not in held]
        log.info("%s: now consuming partitions %s%s", self.projection.name, owned,
                 f"; {waiting} held by another runner, standing by for them" if waiting else "")

    def _close(self) -> None:
        if self.consumer is not None:
            try:
                self.consumer.close(autocommit=False)
            except Exception:
                log.debug("error closing consumer", exc_info=True)
        self.consumer = None
        self.partitions = []

    def _seek_to_checkpoints(self) -> None:
        # One statement, so the epoch and the offsets are read from the same snapshot.
        with connection.cursor() as cur:
            cur.execute(
                "SELECT s.broker_epoch, c.partition, c.next_offset FROM events_projection_state s "
                "LEFT JOIN events_projection_checkpoint c ON c.projection = s.name WHERE s.name = %s",
                [self.projection.name],
            )
            rows = cur.fetchall()
        self.epoch = rows[0][0] if rows else 0
        offsets = {p: o for _, p, o in rows if p is not None}
        for tp in self.partitions:
            self.consumer.seek(tp, offsets.get(tp.partition, 0))

    def step(self, timeout_ms: int = 500) -> str:
        """Poll once and apply what came, in one transaction with the new offsets."""
        polled = self.consumer.poll(timeout_ms=timeout_ms)
        records = [rec for batch in polled.values() for rec in batch]
        name = self.projection.name
        try:
            with transaction.atomic(), connection.cursor() as cur:
                if records:
                    # Partitions in sorted order (no deadlock between two runners); held to the commit, so a
                    # second runner on the same partition applies after us and skips what we applied.
                    cur.execute("SELECT pg_advisory_xact_lock(%s, p)::text FROM unnest(%s::int[]) AS t(p)",
                                [batch_key(name), sorted({r.partition for r in records})])
                # FOR KEY SHARE: a rebuild flips the status with FOR UPDATE, so it waits for a batch in flight
                # and the batch sees the new status after it; other shards' batches only wait for each other
                # at the UPDATE below (not FOR SHARE: two shards upgrading to it would deadlock).
                cur.execute("SELECT status, broker_epoch FROM events_projection_state WHERE name = %s FOR KEY SHARE",
                            [name])
                status, epoch = cur.fetchone()
                cur.execute("SELECT coalesce((SELECT broker_epoch FROM events_relay_state WHERE id = 1), 0)")
                (relay_epoch,) = cur.fetchone()
                if relay_epoch != epoch:
                    log.info("%s: broker epoch %s -> %s; starting the new log from offset 0", name, epoch, relay_epoch)
                    cur.execute("UPDATE events_projection_state SET broker_epoch = %s WHERE name = %s "
                                "AND broker_epoch = %s", [relay_epoch, name, epoch])
                    if cur.rowcount:  # the first shard to see it: no shard's checkpoints are good any more
                        cur.execute("DELETE FROM events_projection_checkpoint WHERE projection = %s", [name])
                    return RESEEK
                if epoch != self.epoch:
                    return RESEEK  # another shard started the new log: our positions are in the old one
                if status != "live":
                    return PAUSED
                if not records:
                    return APPLIED
                envelopes = envelopes_from_rows([_row_from_message(r.value) for r in records])
                cids = logs.distinct(e.correlation_id for e in envelopes)
                # Lines the handlers and the after-commit pushes log carry the id when the batch has only one.
                with logs.bind(logs.single(cids)):
                    fresh = apply_envelopes(self.projection, envelopes)
                # The state row before the checkpoints, in every runner: its row lock, held to the commit, is
                # what an epoch change takes first, so no batch writes checkpoints of an epoch that has ended.
                cur.execute(
                    "UPDATE events_projection_state SET applied_total = applied_total + %s, last_applied_at = now(), "
                    "last_event_recorded_at = greatest(last_event_recorded_at, %s) WHERE name = %s "
                    "RETURNING broker_epoch",
                    [len(fresh), max(e.recorded_at for e in envelopes), name],
                )
                if cur.fetchone()[0] != self.epoch:
                    raise _EpochMoved()
                next_offsets: dict[int, int] = {}
                for rec in records:
                    next_offsets[rec.partition] = max(next_offsets.get(rec.partition, 0), rec.offset + 1)
                # greatest(): a runner that took a partition over may re-read from an older checkpoint; the
                # position never goes back within an epoch (a new epoch deletes the rows).
                cur.execute(
                    """
                    INSERT INTO events_projection_checkpoint (projection, partition, next_offset)
                    SELECT %s, p, o FROM unnest(%s::int[], %s::bigint[]) AS t(p, o)
                    ON CONFLICT (projection, partition) DO UPDATE
                    SET next_offset = greatest(events_projection_checkpoint.next_offset, EXCLUDED.next_offset)
                    """,
                    [name, list(next_offsets), list(next_offsets.values())],
                )
                if fresh and self.projection.after_commit is not None:
                    transaction.on_commit(logs.bound(logs.single(cids), self.projection.after_commit, fresh))
        except _EpochMoved:
            log.info("%s: the broker epoch moved during a batch; rolled back, seeking the new log", name)
            return RESEEK
        if fresh:  # one line a batch, naming every command whose events it applied (docs/OPERATIONS.md)
            applied = logs.distinct(e.correlation_id for e in fresh)
            log.info("%s: applied %d events", name, len(fresh),
                     extra={"projection": name, "correlation_id": logs.single(applied), "correlation_ids": applied,
                            "positions": [min(e.position for e in fresh), max(e.position for e in fresh)]})
        return APPLIED


def run_projectors(projections: list[Projection], stop: threading.Event, *,
                   shard: Shard = ALL) -> list[threading.Thread]:
    threads = []
    for projection in projections:
        runner = ProjectorRunner(projection, shard=shard)
        thread = threading.Thread(target=runner.run, args=(stop,), name=f"projector-{projection.name}", daemon=True)
        thread.start()
        threads.append(thread)
    return threads
