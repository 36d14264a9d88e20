"""End to end: an API request with a bearer token → event store → outbox → Kafka → projection,
and the event read back from the broker by a standard Kafka client (librdkafka)."""

import json
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from django.conf import settings

from customers.models import CustomerProfile, TimelineEntry
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def read_with_librdkafka(topic: str, want: int, timeout: float = 20.0) -> list:
    consumer = Consumer({"bootstrap.servers": ",".join(settings.KAFKA_BOOTSTRAP_SERVERS),
                         "group.id": f"e2e-{uuid.uuid4().hex}", "enable.auto.commit": False})
    try:
        def partitions():
            found = consumer.list_topics(topic, timeout=10).topics.get(topic)
            return found.partitions if found is not None and not found.error else None

        partitions = wait_for(partitions, what=f"topic {topic} (created by the relay)")
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages = []
        import time

        deadline = time.monotonic() + timeout
        while len(messages) < want and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                messages.append(msg)
        return messages
    finally:
        consumer.close()


def test_a_request_reaches_kafka_and_the_projections(api, topic, background):
    background.relay()
    background.projector("customers.directory")
    background.projector("customers.timeline")
    response = api.post("/api/v1/customers/", {"display_name": "Edsger Dijkstra", "preferred_channel": "email"},
                        format="json")
    assert response.status_code == 201
    customer_id = response.json()["id"]

    (message,) = read_with_librdkafka(topic, want=1)
    body = json.loads(message.value())
    assert message.key().decode() == customer_id
    assert body["event_type"] == "customers.CustomerRegistered" and body["stream_id"] == customer_id
    assert body["data"]["preferred_channel"] == "email" and "$pii" in body["data"]["display_name"]

    wait_for(lambda: CustomerProfile.objects.filter(customer_id=customer_id).exists(), what="profile")
    wait_for(lambda: TimelineEntry.objects.filter(customer_id=customer_id).exists(), what="timeline")
    profile = api.get(f"/api/v1/customers/{customer_id}/").json()
    assert profile["display_name"] == "Edsger Dijkstra" and profile["event_count"] == 1
