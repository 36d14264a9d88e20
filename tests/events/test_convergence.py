"""Projections converge after a crash mid-batch: once caught up, every projection equals a full replay.

"Equal" is events.checksum: each projection's tables summed row by row in key order (surrogate ids and
auto timestamps left out), its applied stream versions and its dead letters, compared with the same
projection rebuilt by events.replay.replay in a scratch schema (manage.py projection_checksum --replay).
"""

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, connections

from customers.models import TimelineEntry
from events.checksum import checksum, replay_checksums, streams_behind
from events.models import Event, OutboxEntry, ProjectionState
from events.projection import Projection, all_projections
from events.runner import ProjectorRunner
from events.store import Metadata
from interactions import services as interactions
from quality.models import PresenceInterval
from routing import services as routing
from tests.conftest import wait_for
from tests.routing.factories import make_agent, make_queue

pytestmark = pytest.mark.django_db(transaction=True)

META = Metadata()


def make_history(contacts: int = 40) -> None:
    """Events for every projection: agents changing presence (agent states, presence intervals), customers
    (directory, timeline) and contacts through their lifecycle (interaction facts, timeline)."""
    make_queue("support")
    agents = [make_agent(f"conv-agent{i}", presence="offline").user.username for i in range(3)]
    for name in agents:
        routing.agent_presence_set(agent_id=name, presence="available")
    for i in range(contacts):
        agent = agents[i % len(agents)]
        iid = interactions.interaction_create(
            channel=["chat", "email", "sms"][i % 3], direction="inbound", meta=META, queue="support",
            ident=_email(i % (contacts // 2))).interaction.id  # half the customers come back: repeat contacts
        if i % 5 == 4:
            interactions.interaction_abandon(interaction_id=iid, meta=META, waited_seconds=30)
            continue
        interactions.interaction_offer(interaction_id=iid, agent_id=agent, meta=META)
        interactions.interaction_accept(interaction_id=iid, agent_id=agent, meta=META)
        interactions.interaction_end(interaction_id=iid, reason="resolved", meta=META)
        interactions.interaction_wrap_up(interaction_id=iid, disposition="resolved", meta=META)
        if i % 7 == 0:
            routing.agent_presence_set(agent_id=agent, presence="break", reason="lunch")
            routing.agent_presence_set(agent_id=agent, presence="available")


def _email(n: int):
    from customers.identity import identity

    return identity("email", f"convergence{n}@example.com")


def caught_up() -> bool:
    return all(streams_behind(p) == 0 for p in all_projections())


def assert_converged() -> dict:
    """Live checksums equal a full replay's, projection by projection (with the differing rows when not)."""
    live = {p.name: checksum(p) for p in all_projections()}
    rebuilt, diffs = replay_checksums(all_projections(), live=live, diff_limit=5)
    for name, s in live.items():
        assert s.rows > 0, f"{name} is empty: the history does not exercise it"
        assert s.digest == rebuilt[name].digest, f"{name} differs from a replay: {diffs[name]}"
    return live


def _process(topic: str, command: str = "run_projector", app: str = "conv") -> subprocess.Popen:
    env = dict(os.environ)
    db = settings.DATABASES["default"]
    env.update(DATABASE_URL=f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}?application_name={app}",
               KAFKA_EVENTS_TOPIC=topic, KAFKA_EVENTS_PARTITIONS=str(settings.KAFKA_EVENTS_PARTITIONS),
               PROJECTOR_BATCH_SIZE="20", DJANGO_SETTINGS_MODULE="contactcenter.settings", LOG_LEVEL="WARNING")
    return subprocess.Popen([sys.executable, "manage.py", command], env=env, cwd=settings.BASE_DIR,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _projector_process(topic: str) -> subprocess.Popen:
    return _process(topic)


def applied_total() -> int:
    return sum(ProjectionState.objects.values_list("applied_total", flat=True))


@pytest.mark.slow
def test_projector_killed_mid_batch_converges_to_a_full_replay(topic, background):
    make_history()
    background.relay()
    wait_for(lambda: not OutboxEntry.objects.exists(), timeout=60, what="every event on Kafka")
    total = Event.objects.count() * len(all_projections())

    proc = _projector_process(topic)
    try:
        wait_for(lambda: applied_total() > 0, timeout=60, interval=0.005, what="the projector applying")
        proc.send_signal(signal.SIGKILL)  # no goodbye: mid-batch, mid-transaction
        proc.wait(timeout=10)
    finally:
        proc.kill()
    killed_at = applied_total()
    assert 0 < killed_at < total, "the kill came too late to prove anything"
    assert not caught_up()

    proc = _projector_process(topic)
    try:
        wait_for(caught_up, timeout=120, interval=0.2, what="the restarted projector caught up")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    live = assert_converged()
    # The rebuild numbered its presence intervals anew (surrogate ids), and still the sums agree.
    assert live["quality.presence_intervals"].rows > 3 and PresenceInterval.objects.exists()


class Crash(BaseException):
    """Not an Exception: the dead-letter path does not catch it, like a process dying mid-batch."""


def test_a_runner_that_dies_half_way_through_a_batch_converges_after_restart(topic, background, settings):
    settings.PROJECTOR_BATCH_SIZE = 20  # many batches: the second one is mid-stream
    make_history(contacts=20)
    background.relay()
    wait_for(lambda: not OutboxEntry.objects.exists(), timeout=60, what="every event on Kafka")
    targets = all_projections()
    died = []

    def crashing(p: Projection) -> Projection:
        """The projection, but its second batch writes half of its events and then the runner dies."""
        calls = {"n": 0}

        def apply(envelopes):
            calls["n"] += 1
            if calls["n"] == 2 and len(envelopes) > 1:
                p.apply(envelopes[: len(envelopes) // 2])  # written inside the batch's transaction...
                died.append(p.name)
                raise Crash()  # ...which never commits
            p.apply(envelopes)

        return Projection(name=p.name, tables=p.tables, batch_handler=apply)

    def run_until_crash(p: Projection) -> None:
        try:
            ProjectorRunner(crashing(p)).run(threading.Event())
        except Crash:
            pass
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run_until_crash, args=(p,)) for p in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive()
    assert sorted(died) == sorted(p.name for p in targets), "every runner should have died mid-batch"
    assert not caught_up()

    for p in targets:
        background.projector(p.name)
    wait_for(caught_up, timeout=120, interval=0.2, what="the restarted runners caught up")
    assert_converged()


def test_the_checksum_sees_a_row_that_differs_and_the_command_says_where():
    make_history(contacts=10)
    for p in all_projections():
        from events.replay import replay

        replay(p, progress=False)
    out = io.StringIO()
    call_command("projection_checksum", "--replay", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["equal"] is True and set(report["projections"]) == {p.name for p in all_projections()}

    entry = TimelineEntry.objects.order_by("position").first()
    with connection.cursor() as cur:  # what a lost or doubled update would leave behind
        cur.execute("UPDATE customers_timelineentry SET channel = 'tampered' WHERE position = %s", [entry.position])
    out = io.StringIO()
    with pytest.raises(CommandError, match="customers.timeline"):
        call_command("projection_checksum", "customers.timeline", "customers.directory", "--replay", stdout=out)
    text = out.getvalue()
    assert "DIFFERS from a full replay" in text and "equal to a full replay" in text  # the directory is fine
    assert f"customers_timelineentry: live only: {entry.position}" in text
    assert f"customers_timelineentry: replay only: {entry.position}" in text
    # The live tables were not touched by the comparison, and the scratch schema is gone.
    assert TimelineEntry.objects.get(position=entry.position).channel == "tampered"
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'checksum\\_%'")
        assert cur.fetchone()[0] == 0
        cur.execute("SHOW search_path")
        assert "checksum_" not in cur.fetchone()[0]


def bulk_customers(n: int) -> None:
    """n customers registered and changed once, 100 to a transaction (events quickly, without the services)."""
    from django.db import transaction

    from customers.events import CustomerDetailsChanged, CustomerRegistered
    from events import store

    for k in range(0, n, 100):
        with transaction.atomic():
            for i in range(k, min(n, k + 100)):
                sid = uuid.uuid4()
                store.append(stream_type="customer", stream_id=sid, customer_id=sid, expected_version=0,
                             events=[CustomerRegistered(display_name=f"Bulk {i}"),
                                     CustomerDetailsChanged(preferred_channel="sms")])


def _fetch(bootstrap: str, topic: str, fetching: threading.Event) -> None:
    """Fetch from every partition of `topic` until told to stop, reconnecting on its own (a live consumer)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             allow_auto_create_topics=False, fetch_max_wait_ms=50)
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(8)])
        while fetching.is_set():
            try:
                consumer.poll(timeout_ms=100)
            except Exception:  # the broker away, offsets out of range: a consumer carries on
                time.sleep(0.05)
    finally:
        consumer.close()


def more_contacts(n: int, first: int) -> None:
    for i in range(first, first + n):
        iid = interactions.interaction_create(channel="sms", direction="inbound", meta=META, queue="support",
                                              ident=_email(i)).interaction.id
        interactions.interaction_abandon(interaction_id=iid, meta=META, waited_seconds=5)


def _cut(apps: list[str]) -> int:
    """What a database restart does to these processes: every session of theirs ends (FATAL 57P01)."""
    with connection.cursor() as cur:
        cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = ANY(%s)",
                    [apps])
        return cur.fetchone()[0]


@pytest.mark.slow
def test_relay_and_projector_ride_out_losing_their_database_sessions(topic):
    """A database restart ends every session, the relay's advisory lock with it: the relay and the projector wait
    for the database, the relay takes its lock again, and every event is still applied exactly once."""
    make_history(contacts=10)
    relay = _process(topic, "run_relay", "conv-relay")
    projector = _process(topic, "run_projector", "conv-projector")
    try:
        wait_for(caught_up, timeout=120, interval=0.2, what="caught up before the cut")
        for round_ in range(3):
            assert _cut(["conv-relay", "conv-projector"]) > 0
            more_contacts(5, first=100 + 5 * round_)  # committed while they reconnect
            time.sleep(0.5)
        wait_for(caught_up, timeout=120, interval=0.2, what="caught up after the cuts")
        assert relay.poll() is None and projector.poll() is None, "a process exited instead of waiting"
        with connection.cursor() as cur:  # the relay holds its lock again, on a new session
            cur.execute("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'conv-relay'")
            assert cur.fetchone()[0] == 1
    finally:
        for proc in (relay, projector):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    assert not OutboxEntry.objects.exists()
    assert_converged()


@pytest.mark.slow
def test_a_broker_back_empty_under_fetching_projectors_costs_one_republish(settings, topic, background):
    """The embedded broker creates a missing topic (with 4 partitions) as soon as a consumer fetches from it, and
    the projectors keep fetching: the relay must still replace it with ours (8 partitions) at once, in one new
    epoch, not fight them epoch after epoch while the history is queued again each time."""
    from contactcenter.devstack import Kafka, free_port
    from events import kafka
    from events.models import RelayState

    settings.KAFKA_EVENTS_PARTITIONS = 8  # not the broker's default: what it auto-creates is wrong for us
    broker = Kafka(free_port()).start()
    settings.KAFKA_BOOTSTRAP_SERVERS = [broker.bootstrap]
    try:
        make_history(contacts=20)
        bulk_customers(3000)  # a history worth queuing again: the epoch bump takes a while
        background.relay()
        for p in all_projections():
            background.projector(p.name)
        wait_for(caught_up, timeout=120, interval=0.2, what="caught up before the restart")
        epoch = RelayState.objects.get().broker_epoch
        fetching = threading.Event()
        fetching.set()
        fetcher = threading.Thread(target=_fetch, args=(broker.bootstrap, topic, fetching), daemon=True)
        fetcher.start()  # as a consumer does that rides out the restart without an error: it fetches on
        time.sleep(1.0)
        broker.stop()
        time.sleep(1.0)
        broker.start()  # empty; the fetches re-create the topic with the broker's 4 partitions at once
        more_contacts(5, first=200)
        wait_for(lambda: not OutboxEntry.objects.exists() and caught_up(), timeout=90, interval=0.2,
                 what="republished and caught up")
        fetching.clear()
        fetcher.join(10)
        admin = kafka.admin_client()
        try:
            assert kafka.describe_topic(admin, topic)[0] == 8
        finally:
            admin.close()
        assert RelayState.objects.get().broker_epoch - epoch <= 2  # new incarnation (+ one replacement at most)
    finally:
        background.stop_all()
        broker.stop()
    assert_converged()
