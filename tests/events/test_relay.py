"""The outbox relay: nothing skipped, order per customer, survives a broker that comes back empty."""

import json
import threading
import uuid
from collections import defaultdict

import pytest
from django.conf import settings
from django.db import connections, transaction
from kafka.errors import KafkaConfigurationError

from contactcenter.devstack import Kafka, free_port
from customers.events import CustomerDetailsChanged, CustomerRegistered
from events import kafka, store
from events.models import Event, OutboxEntry, RelayState
from events.relay import Relay
from tests.conftest import read_topic, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def append_customer(n_changes=0):
    sid = uuid.uuid4()
    store.append(stream_type="customer", stream_id=sid, customer_id=sid, expected_version=0,
                 events=[CustomerRegistered(display_name="C")])
    for v in range(1, n_changes + 1):
        store.append(stream_type="customer", stream_id=sid, customer_id=sid, expected_version=v,
                     events=[CustomerDetailsChanged(preferred_channel=f"c{v}")])
    return sid


def test_producer_is_explicitly_idempotent_with_acks_all():
    producer = kafka.producer()
    try:
        assert producer.config["enable_idempotence"] is True
        assert producer.config["acks"] == -1
    finally:
        producer.close()
    # Because idempotence is asked for explicitly, a conflicting setting fails loudly.
    from kafka import KafkaProducer

    with pytest.raises(KafkaConfigurationError):
        KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, enable_idempotence=True, acks=1)


def test_a_position_that_commits_late_is_still_published(topic):
    """Tx A takes a lower position but commits after tx B: the relay must not skip A's event."""
    relay = Relay()
    relay.connect()
    try:
        a_inserted, a_may_commit = threading.Event(), threading.Event()
        a_position = []

        def slow_writer():
            try:
                with transaction.atomic():
                    sid = uuid.uuid4()
                    a_position.extend(store.append(stream_type="customer", stream_id=sid, customer_id=sid,
                                                   expected_version=0, events=[CustomerRegistered(display_name="A")]))
                    a_inserted.set()
                    a_may_commit.wait(timeout=30)
            finally:
                connections.close_all()

        t = threading.Thread(target=slow_writer)
        t.start()
        a_inserted.wait(timeout=10)
        (b_position,) = store.append(stream_type="customer", stream_id=(sid := uuid.uuid4()), customer_id=sid,
                                     expected_version=0, events=[CustomerRegistered(display_name="B")])
        assert a_position[0] < b_position
        assert relay.publish_batch() == 1  # only B is visible yet
        a_may_commit.set()
        t.join(timeout=10)
        assert relay.publish_batch() == 1  # A, late but not lost
        assert OutboxEntry.objects.count() == 0
    finally:
        relay.close()
    records = read_topic(topic, settings.KAFKA_BOOTSTRAP_SERVERS, expected=2)
    assert sorted(json.loads(r.value)["position"] for r in records) == sorted([a_position[0], b_position])


def test_events_of_one_customer_keep_their_order_on_kafka(topic, background):
    streams = [append_customer(n_changes=9) for _ in range(12)]
    background.relay()
    records = read_topic(topic, settings.KAFKA_BOOTSTRAP_SERVERS, expected=120)
    assert len(records) == 120
    seen = defaultdict(list)
    partition_of = defaultdict(set)
    for r in records:
        body = json.loads(r.value)
        assert r.key.decode() == body["customer_id"]
        seen[body["stream_id"]].append(body["stream_version"])
        partition_of[body["stream_id"]].add(r.partition)
    for sid in streams:
        assert seen[str(sid)] == list(range(1, 11))
        assert len(partition_of[str(sid)]) == 1
    wait_for(lambda: OutboxEntry.objects.count() == 0, what="outbox drained")


def test_personal_data_is_encrypted_on_kafka(topic, background):
    sid = uuid.uuid4()
    store.append(stream_type="customer", stream_id=sid, customer_id=sid, expected_version=0,
                 events=[CustomerRegistered(display_name="Secret Name", email="secret@example.com")])
    background.relay()
    (record,) = read_topic(topic, settings.KAFKA_BOOTSTRAP_SERVERS, expected=1)
    assert b"Secret Name" not in record.value and b"secret@example.com" not in record.value
    assert "$pii" in json.loads(record.value)["data"]["display_name"]


@pytest.mark.slow
def test_nothing_lost_when_the_broker_stops_during_writes_and_returns_empty(settings, topic, background):
    broker = Kafka(free_port()).start()
    settings.KAFKA_BOOTSTRAP_SERVERS = [broker.bootstrap]
    try:
        writing = threading.Event()
        writing.set()
        written = []

        def writer():
            try:
                while writing.is_set():
                    written.append(append_customer(n_changes=1))
            finally:
                connections.close_all()

        background.relay()
        background.projector("customers.directory")
        w = threading.Thread(target=writer)
        w.start()
        wait_for(lambda: RelayState.objects.filter(published_total__gte=50).exists(), what="some published")
        broker.stop()
        before = len(written)
        wait_for(lambda: len(written) >= before + 50, what="writes accepted while the broker is down")
        assert OutboxEntry.objects.count() > 0
        broker.start()  # comes back empty: no topic, no records
        wait_for(lambda: len(written) >= before + 100, what="more writes after the broker returned")
        writing.clear()
        w.join(timeout=30)
        total = Event.objects.count()
        wait_for(lambda: OutboxEntry.objects.count() == 0, timeout=60, what="outbox drained")
        assert RelayState.objects.get().broker_epoch >= 2
        records = read_topic(topic, settings.KAFKA_BOOTSTRAP_SERVERS, expected=total, timeout=60)
        on_kafka = {json.loads(r.value)["event_id"] for r in records}
        in_store = {str(e) for e in Event.objects.values_list("event_id", flat=True)}
        assert on_kafka == in_store
        # The projector followed the broker into its new epoch and applied everything exactly once.
        from django.db.models import Sum

        from customers.models import CustomerProfile

        wait_for(lambda: (CustomerProfile.objects.aggregate(n=Sum("event_count"))["n"] or 0) >= total, timeout=60,
                 what="directory caught up")
        assert CustomerProfile.objects.count() == len(written)
        assert CustomerProfile.objects.aggregate(n=Sum("event_count"))["n"] == total
    finally:
        background.stop_all()
        broker.stop()
