"""Shared fixtures. The suite runs against the real PostgreSQL, Redis and Kafka-protocol
broker that `make test` (contactcenter.devstack) starts; nothing here mocks them."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from kafka import KafkaConsumer, TopicPartition
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from events.projection import get as get_projection
from events.relay import Relay
from events.runner import ProjectorRunner


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """Each test gets its own channel layer. channels_redis binds a layer's receive lock to the event loop of
    its first receiver and keeps a count of receivers; a socket test that ends mid-receive in one event
    loop would otherwise break the next test's sockets in another ("bound to a different event loop")."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def fresh_intelligence_configuration():
    """Flag terms and policies are cached per process; each test starts from its own database's."""
    from intelligence.services import forget_configuration

    forget_configuration()
    yield
    forget_configuration()


@pytest.fixture
def topic(settings):
    """A topic of its own for each test, so tests never read each other's messages."""
    settings.KAFKA_EVENTS_TOPIC = f"test.events.{uuid.uuid4().hex[:12]}"
    settings.KAFKA_EVENTS_PARTITIONS = 4
    return settings.KAFKA_EVENTS_TOPIC


class Background:
    """Runs the relay and projectors in threads of this process (each with its own DB connection)."""

    def __init__(self):
        self.stops: list[threading.Event] = []
        self.threads: list[threading.Thread] = []

    def _start(self, target, name):
        stop = threading.Event()
        thread = threading.Thread(target=target, args=(stop,), name=name, daemon=True)
        thread.start()
        self.stops.append(stop)
        self.threads.append(thread)
        return stop, thread

    def relay(self, **kwargs):
        return self._start(Relay(**kwargs).run, "relay")

    def projector(self, name: str):
        return self._start(ProjectorRunner(get_projection(name)).run, f"projector-{name}")

    def stop_all(self):
        for stop in self.stops:
            stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
            assert not thread.is_alive(), f"{thread.name} did not stop"


@pytest.fixture
def background():
    bg = Background()
    yield bg
    bg.stop_all()


def read_topic(topic: str, bootstrap: list[str], expected: int, timeout: float = 30.0) -> list:
    """Every record on the topic, read from the beginning with a plain kafka-python consumer."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             allow_auto_create_topics=False)
    try:
        partitions = wait_for(lambda: consumer.partitions_for_topic(topic), what=f"topic {topic}")
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records = []
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        # A little longer, to catch anything beyond what was expected (duplicates).
        for batch in consumer.poll(timeout_ms=300).values():
            records.extend(batch)
        return records
    finally:
        consumer.close()


@pytest.fixture
def user(db):
    """An agent (the `agent` role): sees the interactions and customers they serve (contactcenter.access)."""
    from django.contrib.auth.models import Group

    agent = get_user_model().objects.create_user(username="agent1", password="pw-agent1")
    agent.groups.add(Group.objects.get_or_create(name="agent")[0])
    return agent


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user(username="super1", password="pw-super1", is_staff=True)


def client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.key}")
    return client


@pytest.fixture
def api(user):
    return client_for(user)


@pytest.fixture
def staff_api(staff):
    return client_for(staff)
