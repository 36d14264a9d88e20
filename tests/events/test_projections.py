"""Projection runtime: exactly-once effect, dead letters, replay equals live."""

import os
import signal
import subprocess
import sys
import threading
import uuid

import pytest
from django.conf import settings
from django.db import connection, connections
from django.db.models import Sum

from customers.events import CustomerDetailsChanged, CustomerRegistered
from customers.models import CustomerProfile, TimelineEntry
from events import store
from events.models import DeadLetter, Event, OutboxEntry, ProjectionState
from events.projection import Projection, apply_envelopes, retry_dead_letter
from events.projection import get as get_projection
from events.replay import replay
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def make_history(customers=20, changes=4):
    ids = []
    for i in range(customers):
        sid = uuid.uuid4()
        store.append(stream_type="customer", stream_id=sid, customer_id=sid, expected_version=0,
                     events=[CustomerRegistered(display_name=f"Customer {i}", email=f"c{i}@example.com")])
        for v in range(1, changes + 1):
            store.append(stream_type="customer", stream_id=sid, customer_id=sid, expected_version=v,
                         events=[CustomerDetailsChanged(preferred_channel=["chat", "sms", "email", "phone"][v % 4])])
        ids.append(sid)
    return ids


def snapshot():
    profiles = list(CustomerProfile.objects.order_by("customer_id").values())
    timeline = list(TimelineEntry.objects.order_by("position").values())
    return profiles, timeline


def test_redelivered_events_change_nothing():
    make_history(customers=3, changes=2)
    projection = get_projection("customers.directory")
    envelopes = store.read_all()
    assert len(apply_envelopes(projection, envelopes)) == 9
    assert apply_envelopes(projection, envelopes) == []  # everything again: nothing applied
    assert apply_envelopes(projection, envelopes[4:6]) == []
    assert CustomerProfile.objects.aggregate(n=Sum("event_count"))["n"] == 9


def test_live_projection_applies_everything_once(topic, background):
    ids = make_history()
    background.relay()
    background.projector("customers.directory")
    background.projector("customers.timeline")
    total = Event.objects.count()
    wait_for(lambda: TimelineEntry.objects.count() == total, what="timeline caught up")
    wait_for(lambda: CustomerProfile.objects.aggregate(n=Sum("event_count"))["n"] == total, what="directory")
    profile = CustomerProfile.objects.get(customer_id=ids[0])
    assert profile.display_name == "Customer 0" and profile.version == 5 and profile.preferred_channel == "chat"
    state = ProjectionState.objects.get(name="customers.timeline")
    assert state.applied_total == total


def test_replay_equals_live_projection_while_traffic_continues(topic, background):
    make_history(customers=30)
    background.relay()
    background.projector("customers.directory")
    background.projector("customers.timeline")
    total = Event.objects.count()
    wait_for(lambda: TimelineEntry.objects.count() == total, what="live timeline")
    wait_for(lambda: CustomerProfile.objects.aggregate(n=Sum("event_count"))["n"] == total, what="live directory")
    live = snapshot()
    assert live[0] and live[1]

    # Rebuild both while new traffic keeps arriving.
    more = threading.Event()

    def traffic():
        try:
            make_history(customers=10, changes=2)
        finally:
            more.set()
            connections.close_all()

    t = threading.Thread(target=traffic)
    t.start()
    replay(get_projection("customers.directory"), batch_size=37, progress=False)
    replay(get_projection("customers.timeline"), batch_size=37, progress=False)
    t.join(timeout=60)
    total = Event.objects.count()
    wait_for(lambda: TimelineEntry.objects.count() == total, what="timeline after replay")
    wait_for(lambda: CustomerProfile.objects.aggregate(n=Sum("event_count"))["n"] == total, what="directory")
    after_replay = snapshot()

    # The live projection of the same history, built from nothing, is the same read model.
    background.stop_all()
    with connection.cursor() as cur:
        cur.execute("TRUNCATE customers_customerprofile, customers_timelineentry, events_projection_stream")
    for name in ("customers.directory", "customers.timeline"):
        apply_envelopes(get_projection(name), store.read_all(limit=100_000))
    assert snapshot() == after_replay


def test_a_failing_event_is_dead_lettered_and_the_stream_goes_on():
    make_history(customers=3, changes=1)
    poison = Event.objects.filter(event_type="customers.CustomerDetailsChanged").order_by("position")[1]
    applied = []
    fail = {"on": True}

    def handler(env):
        if fail["on"] and env.position == poison.position:
            raise RuntimeError("cannot apply this one")
        applied.append(env.position)

    flaky = Projection(name="tests.flaky", tables=[], handlers={CustomerDetailsChanged: [handler],
                                                               CustomerRegistered: [handler]})
    apply_envelopes(flaky, store.read_all())
    # (the list is not transactional: the failed batch attempt appended too, then was rolled back)
    assert poison.position not in applied and len(set(applied)) == 5
    dl = DeadLetter.objects.get(projection="tests.flaky")
    assert dl.position == poison.position and "cannot apply this one" in dl.error

    from events import projection as projection_module

    projection_module.register(flaky)
    try:
        assert retry_dead_letter(dl.pk) is False  # still failing: stays dead-lettered
        fail["on"] = False
        assert retry_dead_letter(dl.pk) is True
        assert poison.position in applied
        dl.refresh_from_db()
        assert dl.resolved_at is not None and dl.attempts == 3
    finally:
        projection_module._PROJECTIONS.pop("tests.flaky")


def _projector_process(topic):
    env = dict(os.environ)
    db = settings.DATABASES["default"]
    env["DATABASE_URL"] = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["KAFKA_EVENTS_TOPIC"] = topic
    env["KAFKA_EVENTS_PARTITIONS"] = str(settings.KAFKA_EVENTS_PARTITIONS)
    env["PROJECTOR_BATCH_SIZE"] = "20"
    env["DJANGO_SETTINGS_MODULE"] = "contactcenter.settings"
    return subprocess.Popen([sys.executable, "manage.py", "run_projector", "customers.directory"], env=env,
                            cwd=settings.BASE_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_projector_killed_mid_stream_applies_every_event_exactly_once(topic, background):
    make_history(customers=300, changes=9)  # 3,000 events
    total = Event.objects.count()
    background.relay()
    wait_for(lambda: OutboxEntry.objects.count() == 0, timeout=60, what="all on Kafka")

    def applied():
        return CustomerProfile.objects.aggregate(n=Sum("event_count"))["n"] or 0

    proc = _projector_process(topic)
    try:
        wait_for(lambda: applied() > 0, timeout=60, interval=0.005, what="projector started applying")
        proc.send_signal(signal.SIGKILL)  # no goodbye: mid-batch, mid-transaction
        proc.wait(timeout=10)
        killed_at = applied()
        assert 0 < killed_at < total, "kill came too late to prove anything"
    finally:
        proc.kill()
    proc = _projector_process(topic)
    try:
        wait_for(lambda: applied() >= total, timeout=90, what="restarted projector caught up")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert applied() == total
    assert CustomerProfile.objects.count() == 300
    assert set(CustomerProfile.objects.values_list("version", flat=True)) == {10}
