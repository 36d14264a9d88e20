"""The outbox relay: committed events to Kafka, at least once, in order per customer.

Loop: read the oldest outbox rows (only committed ones are visible), send them
with the idempotent producer, wait for every acknowledgement (acks=all), then
delete those rows. A crash between send and delete sends them again; the
projectors' per-stream versions make that harmless.

While Kafka is away nothing is deleted: the API keeps appending, the outbox
grows, and it drains when Kafka returns. A broker that comes back without our
topic (the embedded broker keeps everything in memory) is detected, the topic
is created again, the broker epoch is bumped so projectors start over from
offset 0 of the new log, and the whole history is put back in the outbox.

Only one relay publishes at a time (a PostgreSQL advisory lock): two relays
could interleave one customer's events. A second relay waits as a standby.
The lock lives in a database session, so when the database goes away (a
restart) the relay stops publishing and takes the lock again once the
database is back (run_relay), rather than exiting or publishing unlocked.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from django.conf import settings
from django.db import connection, transaction
from kafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError

from contactcenter import logs, metrics
from events import kafka
from events.db import DATABASE_ERRORS

log = logging.getLogger(__name__)

RELAY_LOCK_KEY = 0x636F6E74  # any constant shared by every relay process
TOPIC_CHECK_SECONDS = 2.0

class DatabaseLost(Exception):
    """The database went away under the relay: its advisory lock went with the session."""


_SELECT_BATCH = """
    SELECT o.position, e.customer_id, e.stream_id, row_to_json(e)::text, e.correlation_id
    FROM events_outbox o JOIN events_event e ON e.position = o.position
    ORDER BY o.position
    LIMIT %s
"""


class Relay:
    def __init__(self, *, topic: str | None = None, partitions: int | None = None, batch_size: int | None = None):
        self.topic = topic or settings.KAFKA_EVENTS_TOPIC
        self.partitions = partitions or settings.KAFKA_EVENTS_PARTITIONS
        self.batch_size = batch_size or settings.RELAY_BATCH_SIZE
        self.producer = None
        self.admin = None
        self._last_topic_check = 0.0

    # --- connection to Kafka ------------------------------------------------

    def connect(self) -> None:
        self.admin = kafka.admin_client()
        self.ensure_topic()
        self.producer = kafka.producer()

    def close(self) -> None:
        for client in (self.producer, self.admin):
            if client is not None:
                try:
                    client.close(timeout=1) if client is self.producer else client.close()
                except Exception:  # closing a client of a dead broker may fail; nothing to keep
                    log.debug("error closing Kafka client", exc_info=True)
        self.producer = self.admin = None

    def ensure_topic(self) -> bool:
        """Make sure we publish into a topic incarnation the projectors know.

        Returns True when a new epoch started: the topic was missing (a broker
        that came back empty), had the wrong partition count, or has another
        topic id than the one we published to (recreated, or auto-created by
        the broker after a restart before we got to it).
        """
        self._last_topic_check = time.monotonic()
        found = kafka.describe_topic(self.admin, self.topic)
        known_topic, known_id = relay_topic()
        if found is not None and found[0] != self.partitions:
            # Our keying needs the configured partition count: replace it. The epoch first (it queues the whole
            # history again, which takes a while), then delete and create back to back, retried at once: the
            # embedded broker (Tansu) creates a missing topic again, with its default partition count, as soon
            # as a consumer fetches from it, and live projectors keep fetching. With the epoch bump between the
            # delete and the create, their fetches won that race for minutes (make trust, docs/TRUST.md).
            log.warning("topic %s has %s partitions, expected %s: recreating it", self.topic, found[0], self.partitions)
            start_new_broker_epoch()
            self._replace_topic()
            found = kafka.describe_topic(self.admin, self.topic)
            remember_topic(self.topic, found[1] if found else "")
            log.info("recreated topic %s with %s partitions; history queued for republishing", self.topic,
                     self.partitions)
            return True
        if found is not None:
            partitions, topic_id = found
            if known_topic == self.topic and known_id == topic_id:
                return False
            if known_topic != self.topic and not known_id and not outbox_ever_published():
                remember_topic(self.topic, topic_id)  # first start against a topic made by ops
                return False
            log.warning("topic %s is a new incarnation (id %s, was %s): republishing the history",
                        self.topic, topic_id, known_id or "-")
            start_new_broker_epoch()
            remember_topic(self.topic, topic_id)
            return True
        # Epoch first, topic second: should we die in between, the next start
        # sees an unknown topic id and bumps again. Nothing is published into a
        # new incarnation before projectors can know it is new.
        start_new_broker_epoch()
        kafka.create_topic(self.admin, self.topic, self.partitions)
        found = kafka.describe_topic(self.admin, self.topic)
        remember_topic(self.topic, found[1] if found else "")
        log.info("created topic %s with %s partitions; history queued for republishing", self.topic, self.partitions)
        return True

    def _replace_topic(self, attempts: int = 20) -> None:
        for _ in range(attempts):
            try:
                self.admin.delete_topics([self.topic])
            except UnknownTopicOrPartitionError:
                pass  # gone already
            try:
                kafka.create_topic(self.admin, self.topic, self.partitions)
                return
            except TopicAlreadyExistsError:
                continue  # a consumer's fetch re-created it in between: again, at once
        raise TopicAlreadyExistsError(f"{self.topic} is re-created by the broker as fast as it is deleted")

    # --- publishing ------------------------------------------------------------

    def publish_batch(self) -> int:
        """Publish up to one batch from the outbox; returns how many were acknowledged."""
        with connection.cursor() as cur:
            cur.execute(_SELECT_BATCH, [self.batch_size])
            rows = cur.fetchall()
        if not rows:
            return 0
        futures = []
        for _position, customer_id, stream_id, value, _cid in rows:
            key = str(customer_id or stream_id).encode()
            futures.append(self.producer.send(self.topic, key=key, value=value.encode()))
        self.producer.flush(timeout=30)
        last_offset: dict[int, int] = {}
        for future in futures:
            meta = future.get(timeout=0)  # raises if this message was not acknowledged
            last_offset[meta.partition] = max(meta.offset, last_offset.get(meta.partition, -1))
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("DELETE FROM events_outbox WHERE position = ANY(%s)", [[r[0] for r in rows]])
            cur.execute(
                """
                INSERT INTO events_relay_partition (partition, epoch, last_offset)
                SELECT p, (SELECT broker_epoch FROM events_relay_state WHERE id = 1), o
                FROM unnest(%s::int[], %s::bigint[]) AS t(p, o)
                ON CONFLICT (partition) DO UPDATE
                SET last_offset = greatest(events_relay_partition.last_offset, EXCLUDED.last_offset),
                    epoch = EXCLUDED.epoch
                """,
                [list(last_offset), list(last_offset.values())],
            )
            cur.execute(
                "UPDATE events_relay_state SET published_total = published_total + %s, last_published_at = now() "
                "WHERE id = 1",
                [len(rows)],
            )
        # One line a batch, naming every command whose events it carried (grep one id: docs/OPERATIONS.md).
        cids = logs.distinct(r[4] for r in rows)
        log.info("published %d events to %s", len(rows), self.topic,
                 extra={"correlation_id": logs.single(cids), "correlation_ids": cids,
                        "positions": [rows[0][0], rows[-1][0]]})
        return len(rows)

    def run(self, stop: threading.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                if self.producer is None:
                    self.connect()
                    backoff = 0.5
                # Checked busy or idle: a broker that restarted may have let the
                # producer auto-create the topic and carry on without an error.
                if time.monotonic() - self._last_topic_check > TOPIC_CHECK_SECONDS:
                    self.ensure_topic()
                if self.publish_batch() == 0:
                    stop.wait(settings.RELAY_IDLE_SLEEP_MS / 1000)
            except DATABASE_ERRORS as exc:
                # Not a Kafka problem: another relay may hold the lock by now. What was sent and not yet deleted
                # from the outbox is sent again by whoever publishes next (at least once, as after a crash).
                log.warning("database unavailable (%s); stopping until the relay lock is taken again", exc)
                self.close()
                connection.close()
                raise DatabaseLost(str(exc)) from exc
            except (KafkaError, OSError) as exc:
                metrics.KAFKA_ERRORS.labels("relay").inc()
                log.warning("Kafka unavailable (%s); outbox keeps growing, retrying in %.1fs", exc, backoff)
                # The idempotent producer's sequence numbers belong to the old
                # broker session: a fresh producer is needed after a restart.
                self.close()
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        self.close()
        connection.close()


def start_new_broker_epoch() -> int:
    """Bump the broker epoch and queue the whole history for publishing (one transaction)."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "INSERT INTO events_relay_state (id, broker_epoch, topic, topic_id, published_total) VALUES (1, 1, '', '', 0) "
            "ON CONFLICT (id) DO UPDATE SET broker_epoch = events_relay_state.broker_epoch + 1 "
            "RETURNING broker_epoch"
        )
        (epoch,) = cur.fetchone()
        cur.execute("DELETE FROM events_relay_partition")
        cur.execute(
            "INSERT INTO events_outbox (position, enqueued_at) SELECT position, now() FROM events_event "
            "ON CONFLICT (position) DO NOTHING"
        )
    return epoch


def relay_topic() -> tuple[str, str]:
    with connection.cursor() as cur:
        cur.execute("SELECT topic, topic_id FROM events_relay_state WHERE id = 1")
        row = cur.fetchone()
    return (row[0], row[1]) if row else ("", "")


def remember_topic(topic: str, topic_id: str) -> None:
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO events_relay_state (id, broker_epoch, topic, topic_id, published_total) "
            "VALUES (1, 0, %s, %s, 0) ON CONFLICT (id) DO UPDATE SET topic = EXCLUDED.topic, topic_id = EXCLUDED.topic_id",
            [topic, topic_id],
        )


def outbox_ever_published() -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT coalesce((SELECT published_total FROM events_relay_state WHERE id = 1), 0) > 0")
        return cur.fetchone()[0]


class RelayLock:
    """Session advisory lock on a dedicated connection: one active relay at a time."""

    def __init__(self) -> None:
        self.conn = psycopg.connect(settings.DATABASE_URL, autocommit=True)

    def acquire(self, stop: threading.Event) -> bool:
        announced = False
        while not stop.is_set():
            if self.conn.execute("SELECT pg_try_advisory_lock(%s)", [RELAY_LOCK_KEY]).fetchone()[0]:
                return True
            if not announced:
                log.info("another relay is active; standing by")
                announced = True
            stop.wait(1.0)
        return False

    def release(self) -> None:
        self.conn.close()
