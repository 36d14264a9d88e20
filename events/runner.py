"""The one consumer loop that serves every projection.

Each projection gets its own Kafka consumer (in its own thread) that assigns
itself every partition of the events topic: no consumer group, so nothing to
coordinate and nothing to wedge. Where to resume is kept in PostgreSQL (the
next offset per partition), written in the same transaction as the
projection's writes; that an event was applied is kept per stream
(projection.apply_envelopes), which is what makes redelivery harmless.

Two things pause or reset a projection, both checked inside the same
transaction that would apply the batch:
- a rebuild (replay) marks it `rebuilding`: the runner applies nothing and
  holds its offsets until the rebuild is done;
- a new broker epoch (the relay found the broker empty and republishes the
  history): offsets of the old log mean nothing, so it starts at offset 0.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from datetime import datetime

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from kafka import TopicPartition
from kafka.errors import KafkaError

from contactcenter import logs, metrics
from events import kafka
from events.projection import Projection, apply_envelopes
from events.store import envelopes_from_rows

log = logging.getLogger(__name__)

APPLIED, RESEEK, PAUSED = "applied", "reseek", "paused"


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
    def __init__(self, projection: Projection, *, topic: str | None = None):
        self.projection = projection
        self.topic = topic or settings.KAFKA_EVENTS_TOPIC
        self.consumer = None
        self.partitions: list[TopicPartition] = []

    def run(self, stop: threading.Event) -> None:
        ensure_state(self.projection.name)
        backoff = 0.5
        while not stop.is_set():
            try:
                if self.consumer is None and not self._connect(stop):
                    continue
                outcome = self.step()
                if outcome == RESEEK:
                    self._seek_to_checkpoints()
                elif outcome == PAUSED:
                    self._seek_to_checkpoints()
                    stop.wait(0.5)
                backoff = 0.5
            except (KafkaError, OSError) as exc:
                metrics.KAFKA_ERRORS.labels("projector").inc()
                log.warning("%s: Kafka unavailable (%s); retrying in %.1fs", self.projection.name, exc, backoff)
                self._close()
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                close_old_connections()
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
        self.partitions = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self.consumer.assign(self.partitions)
        self._seek_to_checkpoints()
        log.info("%s: consuming %d partitions of %s", self.projection.name, len(self.partitions), self.topic)
        return True

    def _close(self) -> None:
        if self.consumer is not None:
            try:
                self.consumer.close(autocommit=False)
            except Exception:
                log.debug("error closing consumer", exc_info=True)
        self.consumer = None

    def _seek_to_checkpoints(self) -> None:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT partition, next_offset FROM events_projection_checkpoint WHERE projection = %s",
                [self.projection.name],
            )
            offsets = dict(cur.fetchall())
        for tp in self.partitions:
            self.consumer.seek(tp, offsets.get(tp.partition, 0))

    def step(self, timeout_ms: int = 500) -> str:
        """Poll once and apply what came, in one transaction with the new offsets."""
        polled = self.consumer.poll(timeout_ms=timeout_ms)
        records = [rec for batch in polled.values() for rec in batch]
        name = self.projection.name
        with transaction.atomic(), connection.cursor() as cur:
            # FOR SHARE: a rebuild flips the status with FOR UPDATE, so it waits
            # for a batch in flight and the batch sees the new status after it.
            cur.execute("SELECT status, broker_epoch FROM events_projection_state WHERE name = %s FOR SHARE", [name])
            status, epoch = cur.fetchone()
            cur.execute("SELECT coalesce((SELECT broker_epoch FROM events_relay_state WHERE id = 1), 0)")
            (relay_epoch,) = cur.fetchone()
            if relay_epoch != epoch:
                log.info("%s: broker epoch %s -> %s; starting the new log from offset 0", name, epoch, relay_epoch)
                cur.execute("UPDATE events_projection_state SET broker_epoch = %s WHERE name = %s", [relay_epoch, name])
                cur.execute("DELETE FROM events_projection_checkpoint WHERE projection = %s", [name])
                return RESEEK
            if status != "live":
                return PAUSED
            if not records:
                return APPLIED
            envelopes = envelopes_from_rows([_row_from_message(r.value) for r in records])
            cids = logs.distinct(e.correlation_id for e in envelopes)
            # Lines the handlers and the after-commit pushes log carry the id when the batch has only one.
            with logs.bind(logs.single(cids)):
                fresh = apply_envelopes(self.projection, envelopes)
            next_offsets: dict[int, int] = {}
            for rec in records:
                next_offsets[rec.partition] = max(next_offsets.get(rec.partition, 0), rec.offset + 1)
            cur.execute(
                """
                INSERT INTO events_projection_checkpoint (projection, partition, next_offset)
                SELECT %s, p, o FROM unnest(%s::int[], %s::bigint[]) AS t(p, o)
                ON CONFLICT (projection, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset
                """,
                [name, list(next_offsets), list(next_offsets.values())],
            )
            cur.execute(
                "UPDATE events_projection_state SET applied_total = applied_total + %s, last_applied_at = now(), "
                "last_event_recorded_at = greatest(last_event_recorded_at, %s) WHERE name = %s",
                [len(fresh), max(e.recorded_at for e in envelopes), name],
            )
            if fresh and self.projection.after_commit is not None:
                transaction.on_commit(logs.bound(logs.single(cids), self.projection.after_commit, fresh))
        if fresh:  # one line a batch, naming every command whose events it applied (docs/OPERATIONS.md)
            applied = logs.distinct(e.correlation_id for e in fresh)
            log.info("%s: applied %d events", name, len(fresh),
                     extra={"projection": name, "correlation_id": logs.single(applied), "correlation_ids": applied,
                            "positions": [min(e.position for e in fresh), max(e.position for e in fresh)]})
        return APPLIED


def run_projectors(projections: list[Projection], stop: threading.Event) -> list[threading.Thread]:
    threads = []
    for projection in projections:
        runner = ProjectorRunner(projection)
        thread = threading.Thread(target=runner.run, args=(stop,), name=f"projector-{projection.name}", daemon=True)
        thread.start()
        threads.append(thread)
    return threads
