"""Projector shards (events/runner.py): `run_projector --shard I/N` splits the topic's partitions between processes.

Against the real broker and PostgreSQL, with runners in threads of this process (each thread has its own database
connections, so they lock each other as processes do). "The same projection" is events.checksum: every table of
the projection summed row by row, its applied stream versions and its dead letters.
"""

import threading
import time
from collections import defaultdict

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.db.models import Sum

from customers.models import Customer, CustomerProfile
from customers.services import customer_change_details, customer_merge
from events.checksum import checksum, replay_checksums, streams_behind
from events.models import Event, OutboxEntry, ProjectionCheckpoint, ProjectionState, RelayState
from events.projection import Projection, all_projections
from events.projection import get as get_projection
from events.runner import ALL, CLAIM_SECONDS, ProjectorRunner, Shard, partition_owners
from events.store import Metadata
from interactions import services as interactions
from routing import services as routing
from tests.conftest import wait_for
from tests.routing.factories import make_agent, make_queue

pytestmark = pytest.mark.django_db(transaction=True)

META = Metadata()
HALVES = (Shard(0, 2), Shard(1, 2))


def _email(n: int):
    from customers.identity import identity

    return identity("email", f"shards{n}@example.com")


def make_history(contacts: int = 24, first: int = 0, agents: list[str] | None = None) -> list[str]:
    """Events for every projection: agents' presence, customers (registered on first contact, details changed, some
    merged into another), contacts through their lifecycle (some abandoned)."""
    if agents is None:
        make_queue("support")
        agents = [make_agent(f"shard-agent{i}", presence="offline").user.username for i in range(3)]
        for name in agents:
            routing.agent_presence_set(agent_id=name, presence="available")
    customers = []
    for i in range(first, first + contacts):
        agent = agents[i % len(agents)]
        result = interactions.interaction_create(channel=["chat", "email", "sms"][i % 3], direction="inbound",
                                                 meta=META, queue="support",
                                                 ident=_email(first + i % (contacts // 2)))  # half come back
        iid = result.interaction.id
        customers.append(result.interaction.customer_id)
        if i % 6 == 5:
            interactions.interaction_abandon(interaction_id=iid, meta=META, waited_seconds=12)
            continue
        interactions.interaction_offer(interaction_id=iid, agent_id=agent, meta=META)
        interactions.interaction_accept(interaction_id=iid, agent_id=agent, meta=META)
        interactions.interaction_end(interaction_id=iid, reason="resolved", meta=META)
        interactions.interaction_wrap_up(interaction_id=iid, disposition="resolved", meta=META)
        if i % 8 == 0:
            routing.agent_presence_set(agent_id=agent, presence="break", reason="lunch")
            routing.agent_presence_set(agent_id=agent, presence="available")
    distinct = list(dict.fromkeys(customers))
    if first:
        return agents
    for n, cid in enumerate(distinct[:4]):
        customer = Customer.objects.get(id=cid)
        customer_change_details(customer_id=cid, expected_version=customer.version, meta=META,
                                display_name=f"Changed {n}")
    # Merges: customers' timelines move onto others' (other partitions, most likely), one chain (a into b into c).
    for source, target in ((distinct[4], distinct[5]), (distinct[5], distinct[6]), (distinct[7], distinct[8])):
        customer_merge(customer_id=target, source_id=source, meta=META,
                       expected_version=Customer.objects.get(id=target).version)
    return agents


def caught_up(projections) -> bool:
    return all(streams_behind(p) == 0 for p in projections)


class Recorder:
    """Wraps projections so that every event a runner applies, and commits, is noted under the runner's label."""

    def __init__(self):
        self.applied: dict[tuple[str, str], list] = defaultdict(list)  # (projection, label) -> envelopes
        self.lock = threading.Lock()

    def wrap(self, p: Projection, label: str) -> Projection:
        def apply(envelopes):
            p.apply(envelopes)
            done = list(envelopes)

            def note():  # after the commit only: a batch rolled back applied nothing
                with self.lock:
                    self.applied[(p.name, label)].extend(done)

            transaction.on_commit(note)

        return Projection(name=p.name, tables=p.tables, batch_handler=apply)

    def positions(self, name: str, label: str) -> list[int]:
        return [e.position for e in self.applied[(name, label)]]


class Watched(ProjectorRunner):
    """A runner that also counts the records it polled per partition (applied or found applied already)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.polled: dict[int, int] = defaultdict(int)

    def _connect(self, stop):
        ok = super()._connect(stop)
        if ok:
            poll = self.consumer.poll

            def counted(*args, **kwargs):
                got = poll(*args, **kwargs)
                for tp, records in got.items():
                    self.polled[tp.partition] += len(records)
                return got

            self.consumer.poll = counted
        return ok


class Runners:
    def __init__(self):
        self.started: list[tuple[threading.Event, threading.Thread, ProjectorRunner]] = []

    def start(self, runner: ProjectorRunner) -> tuple[threading.Event, ProjectorRunner]:
        stop = threading.Event()

        def run():
            try:
                runner.run(stop)
            finally:
                connections.close_all()

        thread = threading.Thread(target=run, name=f"shard-{runner.shard}-{runner.projection.name}", daemon=True)
        thread.start()
        self.started.append((stop, thread, runner))
        return stop, runner

    def stop(self, runner: ProjectorRunner) -> None:
        for stop, thread, r in self.started:
            if r is runner:
                stop.set()
                thread.join(timeout=30)
                assert not thread.is_alive(), f"{thread.name} did not stop"

    def stop_all(self) -> None:
        for _, _, r in list(self.started):
            self.stop(r)


@pytest.fixture
def runners():
    r = Runners()
    yield r
    r.stop_all()


def _reset(projections) -> None:
    """What a projection is before its first event: empty tables, no positions, no applied versions."""
    with connection.cursor() as cur:
        for p in projections:
            p.reset()
            for table in ("events_projection_stream", "events_projection_checkpoint"):
                cur.execute(f"DELETE FROM {table} WHERE projection = %s", [p.name])
            cur.execute("DELETE FROM events_projection_state WHERE name = %s", [p.name])


def _log_ends() -> dict[int, int]:
    """Partition -> offset of the last record the relay published there."""
    with connection.cursor() as cur:
        cur.execute("SELECT partition, last_offset FROM events_relay_partition")
        return dict(cur.fetchall())


def _published(topic: str, background) -> None:
    background.relay()
    wait_for(lambda: not OutboxEntry.objects.exists(), timeout=60, what="every event on Kafka")


def test_two_shards_build_the_projections_one_runner_builds(topic, background, runners, settings):
    settings.PROJECTOR_BATCH_SIZE = 20  # many batches, the two shards' interleaved
    make_history()
    _published(topic, background)
    projections = all_projections()
    recorder = Recorder()
    for p in projections:
        for shard in HALVES:
            runners.start(ProjectorRunner(recorder.wrap(p, str(shard)), shard=shard))
    wait_for(lambda: caught_up(projections), timeout=120, interval=0.2, what="the two shards caught up")
    runners.stop_all()
    sharded = {p.name: checksum(p) for p in projections}

    events = list(Event.objects.values_list("position", "customer_id", "stream_id"))
    key = {pos: cid or sid for pos, cid, sid in events}
    for p in projections:
        first, second = (set(recorder.positions(p.name, str(s))) for s in HALVES)
        assert first and second, f"{p.name}: each shard should have applied its half"
        assert not first & second, f"{p.name}: an event applied by both shards"
        assert first | second == set(key), f"{p.name}: events that no shard applied"
        # One partition, one process: every customer's (or customer-less stream's) events went to one shard,
        # so each customer's order is the one its partition has.
        shards_of = defaultdict(set)
        for label in map(str, HALVES):
            for pos in recorder.positions(p.name, label):
                shards_of[key[pos]].add(label)
        assert all(len(labels) == 1 for labels in shards_of.values())
    assert set(ProjectionCheckpoint.objects.filter(projection="customers.timeline")
               .values_list("partition", flat=True)) == {0, 1, 2, 3}

    # The same events through one runner per projection, from nothing: the same read models.
    _reset(projections)
    for p in projections:
        runners.start(ProjectorRunner(p, shard=ALL))
    wait_for(lambda: caught_up(projections), timeout=120, interval=0.2, what="one runner caught up")
    runners.stop_all()
    single = {p.name: checksum(p) for p in projections}
    for p in projections:
        assert sharded[p.name].rows > 0, f"{p.name} is empty: the history does not exercise it"
        assert sharded[p.name].digest == single[p.name].digest, f"{p.name}: two shards differ from one runner"


def test_an_overlapping_runner_stands_by_and_nothing_is_applied_twice(topic, background, runners, settings):
    settings.PROJECTOR_BATCH_SIZE = 10
    directory = get_projection("customers.directory")
    agents = make_history(contacts=18)
    _published(topic, background)
    recorder = Recorder()
    _, first = runners.start(Watched(recorder.wrap(directory, "0/2"), shard=HALVES[0]))
    _, second = runners.start(Watched(recorder.wrap(directory, "1/2"), shard=HALVES[1]))
    wait_for(lambda: len(partition_owners(directory.name)) == 4, what="the two shards hold every partition")
    wait_for(lambda: caught_up([directory]), timeout=60, interval=0.2, what="the two shards caught up")

    # A third runner for every partition: it gets none of them, and waits.
    _, third = runners.start(Watched(recorder.wrap(directory, "0/1"), shard=ALL))
    make_history(contacts=6, first=100, agents=agents)
    wait_for(lambda: caught_up([directory]), timeout=60, interval=0.2, what="caught up with the third waiting")
    time.sleep(CLAIM_SECONDS + 0.5)  # it has tried again at least once
    assert not recorder.positions(directory.name, "0/1") and not third.polled and not third.partitions
    pids = {runner.claims.conn.info.backend_pid: runner for runner in (first, second)}
    assert {pids[pid] for pid in partition_owners(directory.name).values()} == {first, second}

    # The first shard's session lock is lost (its connection cut) while it keeps consuming, unaware (it does not
    # check again here): the third takes those partitions over, and for a while both read them. Each batch's
    # transaction lock makes them take turns, and the second finds the events applied.
    first._claimed_at = float("inf")
    with connection.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", [first.claims.conn.info.backend_pid])
    wait_for(lambda: set(partition_owners(directory.name)) == {0, 1, 2, 3}
             and {p for p, pid in partition_owners(directory.name).items()
                  if pid == third.claims.conn.info.backend_pid} == {0, 2},
             timeout=30, what="the third runner took the first shard's partitions over")
    before = dict(first.polled), dict(third.polled)
    ends = _log_ends()
    make_history(contacts=16, first=200, agents=agents)
    wait_for(lambda: caught_up([directory]), timeout=60, interval=0.2, what="caught up with two on partitions 0, 2")
    grown = [p for p in (0, 2) if _log_ends().get(p, -1) > ends.get(p, -1)]
    assert grown, "no new event on partition 0 or 2: nothing to race for"
    wait_for(lambda: all(first.polled[p] > before[0].get(p, 0) and third.polled[p] > before[1].get(p, 0)
                         for p in grown), timeout=30, what="both runners reading the new events of 0 and 2")

    # The first shard stops for good; the third keeps its partitions, and nothing was ever applied twice.
    runners.stop(first)
    make_history(contacts=6, first=300, agents=agents)
    wait_for(lambda: caught_up([directory]), timeout=60, interval=0.2, what="caught up after the first stopped")
    runners.stop_all()
    applied = [pos for label in ("0/2", "1/2", "0/1") for pos in recorder.positions(directory.name, label)]
    assert len(applied) == len(set(applied)) == Event.objects.count()
    assert recorder.positions(directory.name, "0/1"), "the standby never applied anything"
    total = Event.objects.exclude(customer_id=None).count()
    assert CustomerProfile.objects.aggregate(n=Sum("event_count"))["n"] == total  # an event applied twice counts 2
    assert ProjectionState.objects.get(name=directory.name).applied_total == Event.objects.count()
    rebuilt, diffs = replay_checksums([directory], live={directory.name: checksum(directory)}, diff_limit=5)
    assert checksum(directory).digest == rebuilt[directory.name].digest, diffs[directory.name]


@pytest.mark.slow
def test_a_new_broker_epoch_restarts_every_shard_at_offset_zero(topic, background, runners, settings):
    """The topic is deleted (a broker that lost it): the relay makes it again and republishes the history; the
    first shard to notice moves the projection's epoch, and the other shard, whose positions were in the old
    log, seeks again too. Both read the new log from 0 and apply only what is new."""
    from events import kafka

    settings.PROJECTOR_BATCH_SIZE = 20
    timeline = get_projection("customers.timeline")
    agents = make_history(contacts=18)
    _published(topic, background)
    for shard in HALVES:
        runners.start(ProjectorRunner(timeline, shard=shard))
    wait_for(lambda: caught_up([timeline]), timeout=60, interval=0.2, what="the two shards caught up")
    epoch = RelayState.objects.get().broker_epoch

    admin = kafka.admin_client()
    try:
        admin.delete_topics([topic])
    finally:
        admin.close()
    wait_for(lambda: RelayState.objects.get().broker_epoch > epoch, timeout=60, what="the relay's new epoch")
    make_history(contacts=6, first=100, agents=agents)
    wait_for(lambda: not OutboxEntry.objects.exists(), timeout=60, what="the history republished")
    new_epoch = RelayState.objects.get().broker_epoch

    def on_the_new_log() -> bool:
        with connection.cursor() as cur:
            cur.execute("SELECT partition, last_offset + 1 FROM events_relay_partition")
            ends = dict(cur.fetchall())
        got = dict(ProjectionCheckpoint.objects.filter(projection=timeline.name)
                   .values_list("partition", "next_offset"))
        return ends and got == ends

    wait_for(lambda: caught_up([timeline]) and on_the_new_log(), timeout=90, interval=0.2,
             what="both shards at the end of the new log")
    assert ProjectionState.objects.get(name=timeline.name).broker_epoch == new_epoch
    assert ProjectionState.objects.get(name=timeline.name).applied_total == Event.objects.count()
    rebuilt, diffs = replay_checksums([timeline], live={timeline.name: checksum(timeline)}, diff_limit=5)
    assert checksum(timeline).digest == rebuilt[timeline.name].digest, diffs[timeline.name]


def test_the_command_takes_a_shard_and_refuses_a_bad_one(monkeypatch):
    assert Shard.parse("1/4") == Shard(1, 4) and Shard.parse(" 0/1 ") == ALL
    assert [p for p in range(8) if Shard(1, 3).owns(p)] == [1, 4, 7]
    for bad in ("2/2", "-1/2", "0/0", "1", "a/b", "1/2/3"):
        with pytest.raises(ValueError):
            Shard.parse(bad)
        with pytest.raises(CommandError, match="shard"):
            call_command("run_projector", "--shard", bad)
    monkeypatch.setenv("PROJECTOR_SHARD", "5/2")  # the environment is the default
    with pytest.raises(CommandError, match="5/2"):
        call_command("run_projector")
