"""Kafka plumbing shared by the relay, the projectors and the health check.

Only this module and relay.py/runner.py talk to Kafka; handlers never do.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

log = logging.getLogger(__name__)

# Fail fast when the broker is away: the relay and projectors retry in their
# own loops, and the health check must answer quickly.
_CONNECT = {"request_timeout_ms": 10_000, "reconnect_backoff_max_ms": 2_000}


def bootstrap() -> list[str]:
    return list(settings.KAFKA_BOOTSTRAP_SERVERS)


def admin_client(bootstrap_timeout_ms: int = 30_000) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap(), client_id="contactcenter-admin",
                            bootstrap_timeout_ms=bootstrap_timeout_ms, **_CONNECT)


def producer() -> KafkaProducer:
    # enable_idempotence and acks are set explicitly: with idempotence asked
    # for, kafka-python raises on a conflicting setting instead of quietly
    # turning idempotence off.
    return KafkaProducer(
        bootstrap_servers=bootstrap(),
        client_id="contactcenter-relay",
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        batch_size=256 * 1024,
        compression_type=None,
        allow_auto_create_topics=False,
        max_block_ms=10_000,
        delivery_timeout_ms=30_000,
        **_CONNECT,
    )


def consumer() -> KafkaConsumer:
    # No group: projectors assign partitions themselves and keep positions in
    # PostgreSQL (see DESIGN.md on the embedded broker's group coordination).
    return KafkaConsumer(
        bootstrap_servers=bootstrap(),
        client_id="contactcenter-projector",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        allow_auto_create_topics=False,
        max_poll_records=settings.PROJECTOR_BATCH_SIZE,
        fetch_max_wait_ms=100,
        **_CONNECT,
    )


def describe_topic(admin: KafkaAdminClient, topic: str) -> tuple[int, str] | None:
    """The topic's partition count and topic id, or None when the broker does not have it."""
    for t in admin.describe_topics([topic]):
        if t.get("name") == topic and not t.get("error_code") and t.get("partitions"):
            return len(t["partitions"]), str(t.get("topic_id") or "")
    return None


def create_topic(admin: KafkaAdminClient, topic: str, partitions: int) -> None:
    admin.create_topics(
        {topic: {"num_partitions": partitions, "replication_factor": settings.KAFKA_REPLICATION_FACTOR}},
        wait_for_metadata=True,
    )


def encode_message(row: dict) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Key, value and headers of one event on the wire.

    The key is the customer id (the stream id for events without a customer),
    so every event of one customer goes to one partition, in order. The
    payload is the stored one: personal data stays encrypted on Kafka too.
    """
    key = str(row["customer_id"] or row["stream_id"]).encode()
    value = json.dumps(row, default=str, separators=(",", ":")).encode()
    headers = [("event_type", row["event_type"].encode()), ("schema_version", str(row["schema_version"]).encode())]
    return key, value, headers
