#!/usr/bin/env python
"""Scaling benchmark: two sharded projector processes against one, two routing workers against one.

Run it with `make bench-scale` (throw-away PostgreSQL with real fsync, Redis and
the Tansu Kafka broker), or by hand against running services:

    DATABASE_URL=... REDIS_URL=... KAFKA_BOOTSTRAP_SERVERS=... python bench/scale_bench.py [--quick]

Like the other benchmarks it never touches existing data: it creates databases
`bench_<random>...`, measures and drops them. Each "two" figure is printed
beside the "one" measured in the same run, and the ratio two/one is the figure
that matters; a full run (not --quick) against a server with fsync on
rewrites the `bench-scale` section of docs/BENCHMARKS.md. docs/SCALING.md
reads these figures.

Figures:
 0. bare kafka-python consumers reading and decoding the backlog (no database): 2 processes vs 1
 1. projector throughput over a backlog already on Kafka (100,000 events, 8 partitions), every
    projection: events/s until every projection has applied all of them, with
    2 processes (`run_projector --shard 0/2`, `--shard 1/2`)   vs 1 process (`run_projector`)
    1 process per projection (`run_projector NAME`, 5)        vs 1 process
 2. the same for customers.timeline alone (one consumer thread per process)
 3. routing offers/s at shift start (bench/routing_bench.py's figure 2: 10,000 waiting, 1,000
    agents set available one by one), 2 routing workers       vs 1 routing worker
 4. routing offers/s draining a backlog: the 1,000 agents are available before the workers start,
    a dispatch is requested every 20 ms, 2 workers             vs 1 worker
 5. safety over every routing run: double offers, capacity overruns, the voice rule   (all 0)
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for p in (str(REPO), str(REPO / "bench")):
    if p not in sys.path:
        sys.path.insert(0, p)
os.environ["DJANGO_SETTINGS_MODULE"] = "contactcenter.settings"
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("LOG_LEVEL", "WARNING")  # the relay and the runners log a line a batch

import events_bench as eb  # noqa: E402  (database set-up, Proc, Row, machine info)
import routing_bench as rb  # noqa: E402  (the routing set-up, workers' queue, safety queries)
from events_bench import Bench, Proc, Row, log  # noqa: E402

DOCS = REPO / "docs" / "BENCHMARKS.md"
START_MARK = "<!-- bench-scale:results:start -->"
END_MARK = "<!-- bench-scale:results:end -->"
PARTITIONS = 8
TRIGGER_EVERY = 0.02  # figure 4: a dispatch request every 20 ms (what a steady stream of arrivals asks for)


# --- projectors: the backlog ---------------------------------------------------------------------------------


def fill_backlog(n_events: int, customers: int, agents: int, seed: int) -> dict:
    """About n_events straight into events_event with COPY, encoded as events.store writes them (personal data
    encrypted under each customer's key): per customer a CustomerRegistered; then contacts of those customers
    through their lifecycle with two messages each (bench/kpis_bench.py's interactions), and agents changing
    presence. No outbox rows: the relay queues the whole history when it creates the topic."""
    import kpis_bench as kb
    import psycopg

    from customers.events import CustomerRegistered
    from events import registry, store
    from interactions.events import MessageRecorded
    from routing.events import AgentPresenceChanged

    rnd = random.Random(seed)
    names = [f"agent{i:03d}" for i in range(agents)]
    agent_stream = {a: uuid.uuid4() for a in names}
    agent_version = dict.fromkeys(names, 0)
    cust = [store.uuid7() for _ in range(customers)]
    key_cache: dict = {}
    buf = io.StringIO()
    actor = json.dumps({"type": "system"})
    cols = ("event_id, event_type, schema_version, stream_type, stream_id, stream_version, customer_id, "
            "occurred_at, recorded_at, actor, channel, data")
    now = dt.datetime.now(dt.UTC)
    counts = {"events": 0, "customers": customers, "interactions": 0, "presence": 0}

    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")

    def row(stream_type, stream_id, version, customer, at, event):
        et = registry.type_of(event)
        data = store._stored_data(et, event, customer, key_cache)
        vals = [str(store.uuid7()), et.name, str(et.version), stream_type, str(stream_id), str(version),
                "\\N" if customer is None else str(customer), at.isoformat(), at.isoformat(), esc(actor), "",
                esc(data)]
        buf.write("\t".join(vals) + "\n")
        counts["events"] += 1

    def flush(conn):
        if buf.tell():
            with conn.cursor().copy(f"COPY events_event ({cols}) FROM STDIN") as cp:
                cp.write(buf.getvalue())
            buf.seek(0)
            buf.truncate()

    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        for k, c in enumerate(cust):
            row("customer", c, 1, c, now - dt.timedelta(days=30), CustomerRegistered(
                display_name=f"Customer {k}", email=f"customer{k}@example.com", phone=None,
                preferred_channel="chat"))
        # Contacts in the order they began, over 29 days (as they would be appended): each customer's contacts
        # reach the projections in business-time order, which quality.interaction_facts' repeat links assume.
        spacing = 29 * 86400 / max(1, n_events / 9.5)
        while counts["events"] < n_events:
            customer = rnd.choice(cust)
            start = now - dt.timedelta(days=29) + dt.timedelta(seconds=counts["interactions"] * spacing)
            iid = uuid.uuid4()
            events, survey = kb.interaction_events(rnd, start, names)
            at = next((t for t, e in events if type(e).__name__ == "InteractionAccepted"), None)
            if at is not None:  # two messages once an agent has it
                k = next(i for i, (_, e) in enumerate(events) if type(e).__name__ == "InteractionAccepted") + 1
                events[k:k] = [(at + dt.timedelta(seconds=5), MessageRecorded(direction="inbound",
                                                                              body=f"My order {rnd.randrange(10**6)}")),
                               (at + dt.timedelta(seconds=30), MessageRecorded(direction="outbound",
                                                                               body="Let me check that for you"))]
            for version, (t, event) in enumerate(events, start=1):
                row("interaction", iid, version, customer, t, event)
            if survey:
                t, answer = survey
                row("survey", uuid.uuid4(), 1, customer, t, type(answer)(interaction_id=iid, csat=answer.csat))
            counts["interactions"] += 1
            if counts["interactions"] % 10 == 0:  # an agent goes on a break, or comes back
                a = rnd.choice(names)
                agent_version[a] += 1
                row("agent", agent_stream[a], agent_version[a], None, start, AgentPresenceChanged(
                    agent_id=a, presence="break" if agent_version[a] % 2 else "available"))
                counts["presence"] += 1
            if buf.tell() > 4_000_000:
                flush(conn)
        flush(conn)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE events_event")  # hint bits set here, not by whichever run reads first
    return counts


def publish_backlog() -> tuple[str, int, float]:
    """A fresh topic of PARTITIONS partitions with the whole store on it, through the relay; (topic, epoch, s)."""
    from django.conf import settings
    from django.db import connection

    from events.relay import Relay

    settings.KAFKA_EVENTS_TOPIC = topic = eb.new_topic("scale")
    settings.KAFKA_EVENTS_PARTITIONS = PARTITIONS
    t0 = time.monotonic()
    relay = Relay()
    relay.connect()  # creates the topic, queues the history in the outbox (a new broker epoch)
    try:
        while relay.publish_batch():
            pass
    finally:
        relay.close()
    with connection.cursor() as cur:
        cur.execute("SELECT broker_epoch FROM events_relay_state WHERE id = 1")
        (epoch,) = cur.fetchone()
        cur.execute("SELECT count(*) FROM events_outbox")
        if cur.fetchone()[0]:
            raise RuntimeError("the relay left events in the outbox")
    return topic, epoch, time.monotonic() - t0


# --- projectors: one run -------------------------------------------------------------------------------------


def reset_projections(epoch: int) -> None:
    """Every read model empty, no positions, no applied versions; every projection `rebuilding`, so that runners
    which start wait (PAUSED) until the run begins, on the relay's epoch (no reset of their own)."""
    from django.db import connection

    from events.projection import all_projections

    names = [p.name for p in all_projections()]
    with connection.cursor() as cur:
        for p in all_projections():
            p.reset()
        cur.execute("TRUNCATE events_projection_stream, events_projection_checkpoint, events_dead_letter")
        cur.execute(
            "INSERT INTO events_projection_state (name, status, broker_epoch, applied_total) "
            "SELECT n, 'rebuilding', %s, 0 FROM unnest(%s::text[]) AS t(n) "
            "ON CONFLICT (name) DO UPDATE SET status = 'rebuilding', broker_epoch = EXCLUDED.broker_epoch, "
            "applied_total = 0, last_applied_at = NULL, last_event_recorded_at = NULL",
            [epoch, names],
        )
        cur.execute("VACUUM ANALYZE events_projection_stream")
        cur.execute("CHECKPOINT")


ONE, SHARDS, PER_PROJECTION = "1", "2", "P"  # process layouts of figures 1 and 2
LAYOUTS = {ONE: "1 process", SHARDS: "2 processes (--shard 0/2, 1/2)", PER_PROJECTION: "1 process per projection"}


def projector_run(b: Bench, topic: str, epoch: int, names: list[str], layout: str, total: int) -> dict:
    """run_projector processes in `layout` over the backlog; time from `live` to every projection applied all."""
    from django.db import connection

    from events.runner import partition_owners

    reset_projections(epoch)
    env = dict(os.environ, DATABASE_URL=b.url, KAFKA_EVENTS_TOPIC=topic, KAFKA_EVENTS_PARTITIONS=str(PARTITIONS),
               LOG_LEVEL="WARNING", DEBUG="false", PYTHONUNBUFFERED="1")
    tag = f"{len(names)}p-{layout}-{int(time.time() * 1000) % 100000}"
    if layout == PER_PROJECTION:
        argvs = [[name] for name in names]
    else:
        count = 2 if layout == SHARDS else 1
        argvs = [[*names, "--shard", f"{i}/{count}"] for i in range(count)]
    procs = [Proc(f"projector-{tag}-{i}", [sys.executable, "manage.py", "run_projector", *argv], env, b.tmp)
             for i, argv in enumerate(argvs)]
    try:
        deadline = time.monotonic() + 120
        while sum(len(partition_owners(n)) for n in names) < len(names) * PARTITIONS:
            for p in procs:
                p.check()
            if time.monotonic() > deadline:
                raise RuntimeError("the projectors did not claim every partition within 120 s")
            time.sleep(0.1)
        time.sleep(1.0)  # every runner past its first (paused) step, its consumer connected
        cpu0 = [rb._cpu_seconds(p.proc.pid) for p in procs]
        busy0, load0 = rb._machine_busy_seconds(), os.getloadavg()[0]
        with connection.cursor() as cur:
            cur.execute("UPDATE events_projection_state SET status = 'live' WHERE name = ANY(%s)", [names])
        t0 = time.monotonic()
        done: dict[str, float] = {}
        deadline = t0 + b.args.projector_timeout
        while len(done) < len(names):
            with connection.cursor() as cur:
                cur.execute("SELECT name, applied_total FROM events_projection_state WHERE name = ANY(%s)", [names])
                for name, applied in cur.fetchall():
                    if applied >= total and name not in done:
                        done[name] = time.monotonic() - t0
            for p in procs:
                p.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the projectors had not applied the backlog after {b.args.projector_timeout} s")
            time.sleep(0.05)
        elapsed = max(done.values())
        cpu = sum(rb._cpu_seconds(p.proc.pid) - c for p, c in zip(procs, cpu0, strict=True))
        busy, load1 = rb._machine_busy_seconds() - busy0, os.getloadavg()[0]
    finally:
        for p in procs:
            p.stop()
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM events_dead_letter")
        (dead,) = cur.fetchone()
    if dead:
        raise RuntimeError(f"{dead} events dead-lettered in the run with {LAYOUTS[layout]}")
    return {"layout": layout, "processes": len(procs), "elapsed": elapsed, "rate": total / elapsed, "done": done,
            "cpu": cpu, "busy": busy / elapsed / (os.cpu_count() or 1), "load": (load0, load1)}


def _bare_read(topic: str, parts: list[int], expected: int, out) -> None:
    """Child process: read `parts` of the topic from the start with a consumer set up like the runners' and decode
    every message, applying nothing; report (records, seconds)."""
    from kafka import TopicPartition

    consumer = eb.kafka_consumer_like_projector()
    try:
        consumer.assign([TopicPartition(topic, p) for p in parts])
        consumer.seek_to_beginning()
        got, t0 = 0, time.monotonic()
        while got < expected and time.monotonic() - t0 < 600:
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    json.loads(r.value)
                got += len(records)
        out.send((got, time.monotonic() - t0))
    finally:
        consumer.close()


def bare_consumers(topic: str, processes: int) -> dict:
    """What any runner does first, alone: `processes` processes split the partitions (as --shard does) and read
    and decode the whole backlog. Baseline for the broker and the client: no database, nothing applied."""
    import multiprocessing as mp

    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT partition, last_offset + 1 FROM events_relay_partition")
        ends = dict(cur.fetchall())
    shards = [[p for p in range(PARTITIONS) if p % processes == i] for i in range(processes)]
    ctx = mp.get_context("fork")
    pipes, procs = [], []
    t0 = time.monotonic()
    for parts in shards:
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_bare_read, args=(topic, parts, sum(ends.get(p, 0) for p in parts), send))
        proc.start()
        pipes.append(recv)
        procs.append(proc)
    results = [r.recv() for r in pipes]
    for proc in procs:
        proc.join(30)
    elapsed = time.monotonic() - t0
    got = sum(g for g, _ in results)
    return {"records": got, "elapsed": elapsed, "rate": got / elapsed}


def read_model_sums(names: list[str]) -> dict[str, str]:
    from events.checksum import checksum
    from events.projection import get

    return {n: checksum(get(n)).digest for n in names}


def _order(rounds: int) -> list[int]:
    """1 and 2 processes alternating (1, 2, 2, 1, 1, 2, ...): a drift of the machine hits both alike."""
    return ([1, 2, 2, 1] * rounds)[: 2 * rounds]


def measure_projectors(b: Bench) -> None:
    import django
    from django.core.management import call_command

    a = b.args
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from events.projection import all_projections
    from routing.models import Queue

    for k in range(10):  # the facts read each queue's service-level threshold
        Queue.objects.create(name=f"q{k}", service_level_seconds=random.Random(k).choice([15, 20, 30, 60]))
    log(f"projectors: filling {a.events:,} events ({a.customers:,} customers, 200 agents)")
    t0 = time.monotonic()
    counts = fill_backlog(a.events, a.customers, 200, seed=1)
    total = counts["events"]
    t_fill = time.monotonic() - t0
    topic, epoch, t_pub = publish_backlog()
    b.detail(f"figures 1-2 set-up: {total:,} events ({counts['customers']:,} customers registered, "
             f"{counts['interactions']:,} contacts with their lifecycle and two messages each, {counts['presence']:,} "
             f"presence changes) written in {t_fill:.0f} s, published by the relay to a topic of {PARTITIONS} "
             f"partitions in {t_pub:.0f} s ({total / t_pub:,.0f}/s)")
    from django.db import connections

    bare = {1: [], 2: []}
    for processes in _order(a.rounds):
        connections.close_all()  # forked children must not share this process's database connection
        r = bare_consumers(topic, processes)
        bare[processes].append(r)
        log(f"[0] bare consumers, {processes} process(es): {r['records']:,} records in {r['elapsed']:.1f} s "
            f"({r['rate']:,.0f}/s)")
    one, two = (sum(r["rate"] for r in bare[k]) / len(bare[k]) for k in (1, 2))
    b.add(Row("0", f"bare kafka-python consumers reading and decoding the backlog ({PARTITIONS} partitions), "
              "records/s with 2 processes", two, "1 process", one, "info", None, two / one))
    b.detail("figure 0 (the broker and the client alone, nothing applied), records/s: 1 process "
             + ", ".join(f"{r['rate']:,.0f}" for r in bare[1]) + "; 2 processes "
             + ", ".join(f"{r['rate']:,.0f}" for r in bare[2]))
    every = [p.name for p in all_projections()]
    sets = [("1", "every projection", every, [ONE, SHARDS, PER_PROJECTION]),
            ("2", "customers.timeline alone", ["customers.timeline"], [ONE, SHARDS])]
    for section, label, names, layouts in sets:
        runs: dict[str, list] = {k: [] for k in layouts}
        sums: dict[str, dict] = {}
        order = (layouts + layouts[::-1]) * a.rounds
        for layout in order[: len(layouts) * a.rounds]:  # 1, 2, P, P, 2, 1: a drift of the machine hits all alike
            log(f"[{section}] {label}: {LAYOUTS[layout]} over {total:,} events")
            r = projector_run(b, topic, epoch, names, layout, total)
            runs[layout].append(r)
            log(f"    {r['rate']:,.0f} events/s ({r['elapsed']:.1f} s); projector CPU {r['cpu']:.0f} s, machine "
                f"{r['busy']:.0%} busy, load {r['load'][0]:.1f} -> {r['load'][1]:.1f}")
            if len(names) > 1 and layout not in sums:
                sums[layout] = read_model_sums(names)
        rate = {k: sum(r["rate"] for r in v) / len(v) for k, v in runs.items()}
        for layout in layouts[1:]:
            b.add(Row(section, f"projector, {label}, {total:,} events on {PARTITIONS} partitions, events/s with "
                      f"{LAYOUTS[layout]}", rate[layout], LAYOUTS[ONE], rate[ONE], "info", None,
                      rate[layout] / rate[ONE]))
        for layout in layouts:
            for r in runs[layout]:
                slowest = max(r["done"], key=r["done"].get)
                b.detail(f"figure {section}, {LAYOUTS[layout]}: {r['rate']:,.0f} events/s, every projection done in "
                         f"{r['elapsed']:.1f} s (last: {slowest}); projector CPU {r['cpu']:.0f} s "
                         f"({r['cpu'] / r['elapsed']:.2f} cores), the machine {r['busy']:.0%} busy, load average "
                         f"{r['load'][0]:.1f} -> {r['load'][1]:.1f}"
                         + ("; done: " + ", ".join(f"{n} {s:.1f} s" for n, s in sorted(r["done"].items(),
                                                                                     key=lambda x: x[1]))
                            if len(names) > 1 else ""))
        if sums:
            differ = sorted({n for k in sums for n in names if sums[k][n] != sums[ONE][n]})
            b.detail(f"figure {section}: the read models of the first run of each layout are "
                     + ("identical (events.checksum of every projection)" if not differ else
                        "DIFFERENT: " + ", ".join(differ)))
            b.add(Row(section, "projections whose read models differ between the layouts (events.checksum)", None,
                      "-", None, "0", not differ, note=str(len(differ))))


# --- routing: one run, in a child process on its own copy of the set-up --------------------------------------------


def routing_setup(a: argparse.Namespace) -> dict:
    """Child: the base database for every routing run (copied per run): queues, agents offline, the backlog."""
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from routing.models import Work

    t0 = time.monotonic()
    queues = rb.make_queues(seed=1)
    agents = rb.make_agents(a.agents, seed=2, presence="offline")
    customers = rb.register_customers(a.route_customers)
    items = rb.plan(a.backlog, queues, customers, seed=20)
    from django.db import connections

    connections.close_all()
    t_backlog = rb.create_backlog(items, 2, 25)
    waiting = Work.objects.filter(status=Work.WAITING).count()
    rb.purge_routing_queue()
    connections.close_all()
    return {"agents": len(agents), "queues": len(queues), "waiting": waiting, "backlog_seconds": t_backlog,
            "seconds": time.monotonic() - t0}


def _start_workers(k: int, url: str, logdir: Path, tag: str) -> list[Proc]:
    from contactcenter.celery import app

    env = dict(os.environ, DATABASE_URL=url, DEBUG="false", LOG_LEVEL="WARNING")
    procs = [Proc(f"worker-{tag}-{i}", [sys.executable, "-m", "celery", "-A", "contactcenter", "worker", "-Q",
                                        rb.ROUTING_QUEUE, "-P", "solo", "-n", f"routing{i}-{tag}@%h",
                                        "--without-gossip", "--without-mingle", "--without-heartbeat", "-l",
                                        "WARNING"], env, logdir) for i in range(k)]
    names = {f"routing{i}-{tag}" for i in range(k)}
    deadline = time.monotonic() + 90
    while True:
        for p in procs:
            p.check()
        up = {name.split("@")[0] for r in (app.control.ping(timeout=1.0) or []) for name in r}
        if names <= up:
            return procs
        if time.monotonic() > deadline:
            raise RuntimeError("routing workers did not answer:\n" + "\n".join(p.tail() for p in procs))


def _offers(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM events_event WHERE event_type = %s", [rb.OFFERED]).fetchone()[0]


def routing_run(a: argparse.Namespace) -> dict:
    """Child: k routing workers on this database (a fresh copy of the set-up); offers/s and the safety counts."""
    import django

    django.setup()
    from django.db import connections

    from routing import services
    from routing.models import Agent, Work
    from routing.services import agent_presence_set

    url = os.environ["DATABASE_URL"]
    ctx = type("Ctx", (), {"url": url})()
    agents = list(Agent.objects.order_by("id").values_list("user__username", flat=True))
    t_quiet = 0.0
    if a.mode == "drain":  # every agent available before any worker runs: the workers alone set the pace
        t0 = time.monotonic()
        with rb.quiet_setup():
            def run(part):
                try:
                    for name in part:
                        agent_presence_set(agent_id=name, presence="available")
                finally:
                    connections.close_all()

            threads = [threading.Thread(target=run, args=(agents[k::2],)) for k in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        t_quiet = time.monotonic() - t0
    rb.purge_routing_queue()
    services._redis().delete(services.DISPATCH_REQUESTED)
    logdir = Path(a.logdir)
    procs = _start_workers(a.workers, url, logdir, f"{a.mode}{a.workers}")
    cpu0 = [rb._cpu_seconds(p.proc.pid) for p in procs]
    busy0, load0 = rb._machine_busy_seconds(), os.getloadavg()[0]
    t_start = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    stop = threading.Event()
    trigger = None
    if a.mode == "arrive":  # shift start, as bench-routing's figure 2: each arrival asks for a dispatch
        order = list(agents)
        random.Random(21).shuffle(order)
        for name in order:
            agent_presence_set(agent_id=name, presence="available")
    else:
        def requests():
            while not stop.is_set():
                services._send_dispatch()  # coalesced: queues a task only when none is waiting
                stop.wait(TRIGGER_EVERY)

        trigger = threading.Thread(target=requests, name="bench-trigger", daemon=True)
        trigger.start()
    t_arrivals = time.monotonic() - t0
    last, changed = -1, time.monotonic()
    while True:  # settled: no new offer for 3 s (and, for arrivals, no task left)
        n = _offers(url)
        now = time.monotonic()
        if n != last:
            last, changed = n, now
        quiet = now - changed >= 3.0 and (a.mode == "drain" or rb.routing_backlog() == 0)
        if quiet or now - t0 > a.window:
            break
        time.sleep(0.25)
    cut = time.monotonic() - t0 > a.window
    stop.set()
    if trigger:
        trigger.join(5)
    cpu = [rb._cpu_seconds(p.proc.pid) - c for p, c in zip(procs, cpu0, strict=True)]
    busy, load1 = rb._machine_busy_seconds() - busy0, os.getloadavg()[0]
    elapsed = time.monotonic() - t0
    rb.stop_workers(procs)
    rb.purge_routing_queue()
    first, end, n, served = rb.sql(ctx, """
        SELECT min(recorded_at), max(recorded_at), count(*), count(DISTINCT data ->> 'agent_id')
        FROM events_event WHERE event_type = %s""", [rb.OFFERED])[0]
    span = (end - t_start).total_seconds() if end else float("nan")
    per_sec = rb.sql(ctx, """SELECT floor(extract(epoch FROM recorded_at - %s))::int AS s, count(*)
                             FROM events_event WHERE event_type = %s GROUP BY 1 ORDER BY 1""", [t_start, rb.OFFERED])
    passes = rb.sql(ctx, "SELECT count(DISTINCT recorded_at) FROM events_event WHERE event_type = %s",
                    [rb.OFFERED])[0][0]
    params = {"offered": rb.OFFERED, "declined": rb.DECLINED}
    safety = {"double offers": rb.sql(ctx, rb.DOUBLE_OFFERS_SQL, params)[0][0],
              "over capacity now": rb.sql(ctx, rb.WORK_OVERRUNS_SQL)[0][0],
              "ever over capacity": rb.sql(ctx, rb.EVENT_OVERRUNS_SQL, params)[0][0],
              "voice rule": rb.sql(ctx, rb.VOICE_RULE_SQL)[0][0],
              "out of step": rb.sql(ctx, rb.OUT_OF_STEP_SQL)[0][0]}
    errors = 0
    for p in procs:
        try:
            errors += sum("raised unexpected" in ln for ln in p.log_path.read_text(errors="replace").splitlines())
        except OSError:
            pass
    safety["task errors"] = errors
    left = Work.objects.filter(status=Work.WAITING).count()
    connections.close_all()
    return {"mode": a.mode, "workers": a.workers, "offers": n, "agents_served": served, "span": span,
            "rate": n / span if n else 0.0, "first": (first - t_start).total_seconds() if first else None,
            "peak": max((c for _, c in per_sec), default=0), "per_sec": [c for _, c in per_sec], "passes": passes,
            "left": left, "cut": cut, "arrivals": t_arrivals, "quiet_setup": t_quiet, "safety": safety,
            "cpu": cpu, "busy": busy / elapsed / (os.cpu_count() or 1), "load": (load0, load1)}


def _child(b: Bench, url: str, argv: list[str]) -> dict:
    out = b.tmp / f"child-{uuid.uuid4().hex[:8]}.json"
    env = dict(os.environ, DATABASE_URL=url)
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--out", str(out), "--logdir", str(b.tmp)]
    proc = subprocess.run(cmd, env=env, cwd=REPO)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"child {' '.join(argv)} failed with exit code {proc.returncode}")
    return json.loads(out.read_text())


def measure_routing(b: Bench) -> None:
    import psycopg

    a = b.args
    base = f"{b.dbname}_route"
    with psycopg.connect(b.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{base}"')
    b.route_dbs.append(base)
    log(f"routing: set-up in {base}: {a.agents:,} agents (offline), {a.backlog:,} waiting")
    setup = _child(b, eb.db_url_with_name(b.admin_url, base),
                   ["--child", "routing-setup", "--agents", str(a.agents), "--backlog", str(a.backlog),
                    "--route-customers", str(a.route_customers)])
    b.detail(f"figures 3-4 set-up (bench/routing_bench.py's): {setup['queues']} queues, {setup['agents']:,} agents "
             f"offline, {setup['waiting']:,} waiting interactions ({setup['backlog_seconds']:.0f} s to create); "
             "each run gets its own copy of this database (CREATE DATABASE ... TEMPLATE), so every run starts "
             "from the same state")
    plan = [("3", "arrive", [1, 2] * a.routing_rounds), ("4", "drain", [2, 1] * a.routing_rounds)]
    results: list[dict] = []
    for section, mode, order in plan:
        runs = {1: [], 2: []}
        for k in order:
            name = f"{b.dbname}_r{len(results)}"
            with psycopg.connect(b.admin_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{base}"')
            b.route_dbs.append(name)
            log(f"[{section}] routing, {mode}: {k} worker(s) on {name}")
            try:
                r = _child(b, eb.db_url_with_name(b.admin_url, name),
                           ["--child", "routing-run", "--mode", mode, "--workers", str(k), "--window",
                            str(a.window)])
            finally:
                _drop(b, name)
            log(f"    {r['offers']:,} offers in {r['span']:.1f} s = {r['rate']:,.0f}/s; safety {r['safety']}")
            runs[k].append(r)
            results.append(r)
        one, two = (sum(r["rate"] for r in runs[k]) / len(runs[k]) for k in (1, 2))
        what = ("shift start: 1,000 agents set available one by one" if mode == "arrive" else
                "drain: agents available first, a dispatch request every 20 ms")
        b.add(Row(section, f"routing offers/s, {what}, 2 workers", two, "1 worker", one, "info", None, two / one))
        for k in (1, 2):
            for r in runs[k]:
                cpu = ", ".join(f"{c:.1f} s" for c in r["cpu"])
                b.detail(f"figure {section}, {k} worker{'s' if k > 1 else ''}: {r['offers']:,} offers to "
                         f"{r['agents_served']:,} agents in {r['passes']:,} dispatch passes, {r['span']:.1f} s from "
                         f"the start to the last offer ({r['rate']:,.0f}/s, busiest second {r['peak']}); "
                         + (f"setting the agents available took {r['arrivals']:.1f} s; " if mode == "arrive" else "")
                         + f"{r['left']:,} still waiting" + (" (cut at the window)" if r["cut"] else "")
                         + f"; worker CPU {cpu}, the machine {r['busy']:.0%} busy, load average "
                         f"{r['load'][0]:.1f} -> {r['load'][1]:.1f}")
    labels = list(results[0]["safety"])
    for label in labels:
        values = [r["safety"][label] for r in results]
        b.add(Row("5", f"routing safety over all {len(results)} runs: {label}", None, "-", None, "0",
                  not any(values), note=str(sum(values))))


def _drop(b: Bench, name: str) -> None:
    import psycopg

    with psycopg.connect(b.admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if name in b.route_dbs:
        b.route_dbs.remove(name)


# --- report ----------------------------------------------------------------------------------------------------

HOW = """\
### How each figure is measured

Every figure runs the processes a deployment runs, started by the benchmark, all on this one machine
with PostgreSQL (fsync on), Redis and the Kafka broker. The figure is the ratio: the figure with more
processes over the one-process figure of the same run, the runs alternating (one, two, two, one; for
figure 1: one, two, per projection, per projection, two, one); each is the mean of its runs.

0. **The broker and the client alone**: 1 process, or 2 processes taking the partitions as
   `--shard 0/2` and `1/2` would, read the backlog of figure 1 from the start with a kafka-python
   consumer set up like the runners' and decode every message, applying nothing (no database). What
   every runner of figure 1 has to do first; the limit of figures 1 and 2 when it is as slow as they are.
1. **Projectors, every projection.** Set-up (not measured): events written with COPY as the store
   writes them (personal fields encrypted): a `CustomerRegistered` per customer (2,000), then contacts
   of those customers through their lifecycle (created, queued, offered, accepted, two messages,
   sometimes held, ended, wrapped up; 6 % abandoned; 15 % answer a survey) and agents' presence
   changes, about 100,000 events in all; `events.relay.Relay` publishes them to a new topic of 8
   partitions. Each run: every read model emptied, the projections marked `rebuilding`, then
   `python manage.py run_projector` (1 process), `run_projector --shard 0/2` and `--shard 1/2` (2
   processes), or `run_projector NAME` for each of the 5 projections (5 processes) started; once
   every (projection, partition) is claimed (`events.runner.partition_owners`) the projections are
   set `live` and the clock starts; it stops when every projection's `applied_total` reached the
   number of events. Rate = events / that time. A process runs one thread per projection it serves,
   each with its own Kafka consumer. After the first run of each layout the read models are summed
   with `events.checksum`; they must be equal.
2. **Projectors, `customers.timeline` alone**: the same with `run_projector customers.timeline`.
3. **Routing at shift start**: bench/routing_bench.py's set-up (1,000 agents with 5 of 10 skills,
   20 queues, 10,000 waiting interactions) in a database that each run copies (`CREATE DATABASE ...
   TEMPLATE`), so both runs start from the same state; 1 or 2 routing workers (`celery ... -Q routing
   -P solo`) start, then the bench sets the 1,000 agents available one by one (each asks for a
   dispatch, as in bench-routing's figure 2). Rate = offers / (last offer's `recorded_at` - start).
4. **Routing draining a backlog**: the same, but every agent is available before the workers start
   (no dispatch asked meanwhile); then a dispatch is requested every 20 ms (coalesced as in
   production: a task is queued only when none is waiting), as a steady stream of arrivals would.
   The run ends when no offer was added for 3 s.
5. **Safety**, after each routing run, over that run's events: bench-routing's figure 3 queries
   (two offers of one interaction without a decline between, agent x channel over capacity now or
   ever in event order, the voice rule, Work rows out of step) and tasks that raised in the workers.

"CPU" and "busy": CPU time from /proc of the measured processes, and of the whole machine over the run;
"load average" is the machine's 1-minute load at the start and the end of the run (other work on the
machine shows there).
"""


def write_docs(b: Bench, info: dict, elapsed: float) -> None:
    m, s = info["machine"], info["server"]
    lines = [
        START_MARK,
        "## Results: `make bench-scale`",
        "",
        "Generated by `bench/scale_bench.py`; rerun `make bench-scale` to replace this section. What the figures "
        "mean for running more than one of each process: [SCALING.md](SCALING.md).",
        "",
        f"- Date: {info['date']}",
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} memory, Linux {m['kernel']}, Python {m['python']}",
        f"- PostgreSQL {s['server_version']} (fsync={s['fsync']}, synchronous_commit={s['synchronous_commit']}), "
        "Redis, the Kafka broker (Tansu), the measured processes and the bench all on the same machine",
        f"- Code: commit {info['revision']}",
        "- Command: `make bench-scale` (`python -m contactcenter.devstack bench bench/scale_bench.py`)",
        f"- Run time: {elapsed / 60:.1f} min",
        "",
    ]
    t = rb.table(b.rows)
    lines.append("| " + " | ".join(t[0]) + " |")
    lines.append("| " + " | ".join("---:" if i in (2, 4, 5) else "---" for i in range(len(t[0]))) + " |")
    for r in t[1:]:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    lines.append("")
    if b.details:
        lines += ["Details of this run:", ""] + [f"- {d}" for d in b.details] + [""]
    lines += [HOW, END_MARK]
    section = "\n".join(lines)
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    if START_MARK in text and END_MARK in text:
        pre, rest = text.split(START_MARK, 1)
        text = pre + section + rest.split(END_MARK, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    DOCS.write_text(text)
    log(f"wrote the bench-scale section of {DOCS.relative_to(REPO)}")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a short run with less of everything (no docs)")
    p.add_argument("--events", type=int, help="projector backlog (default 100,000, quick 20,000)")
    p.add_argument("--customers", type=int, help="customers in the projector backlog (default 2,000, quick 500)")
    p.add_argument("--rounds", type=int, help="projector runs of each kind per figure (default 2, quick 1)")
    p.add_argument("--projector-timeout", type=float, default=900.0)
    p.add_argument("--agents", type=int, help="routing agents (default 1,000, quick 200)")
    p.add_argument("--backlog", type=int, help="routing: waiting interactions (default 10,000, quick 1,000)")
    p.add_argument("--route-customers", type=int, default=500)
    p.add_argument("--routing-rounds", type=int, default=1, help="routing runs of each kind per figure")
    p.add_argument("--window", type=float, default=90.0, help="longest routing run, in seconds")
    p.add_argument("--only", choices=("projectors", "routing"), help="one half only (no docs)")
    p.add_argument("--docs", choices=("auto", "yes", "no"), default="auto")
    # internal: the routing set-up and runs are child processes on their own databases
    p.add_argument("--child", choices=("routing-setup", "routing-run"), help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=("arrive", "drain"), help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--logdir", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.events = a.events or (20_000 if a.quick else 100_000)
    a.customers = a.customers or (500 if a.quick else 2_000)
    a.rounds = a.rounds or (1 if a.quick else 2)
    a.agents = a.agents or (200 if a.quick else 1000)
    a.backlog = a.backlog or (1000 if a.quick else 10_000)
    if a.quick:
        a.route_customers = min(a.route_customers, 100)
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        result = routing_setup(args) if args.child == "routing-setup" else routing_run(args)
        Path(args.out).write_text(json.dumps(result, default=str))
        return 0
    started = time.monotonic()
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url or not os.environ.get("REDIS_URL"):
        print("set DATABASE_URL, REDIS_URL and KAFKA_BOOTSTRAP_SERVERS, or run `make bench-scale`", file=sys.stderr)
        return 2
    b = Bench(args=args, admin_url=admin_url, tmp=Path(tempfile.mkdtemp(prefix="scale-bench-")))
    b.route_dbs = []
    info = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": eb.machine(),
            "revision": rb.git_revision()}
    ok = True
    try:
        eb.create_database(b)
        info["server"] = s = eb.server_settings(b.url)
        log(f"PostgreSQL {s['server_version']}: fsync={s['fsync']}, synchronous_commit={s['synchronous_commit']}; "
            f"logs in {b.tmp}")
        if args.only != "routing":
            measure_projectors(b)
        if args.only != "projectors":
            measure_routing(b)
    except BaseException:
        ok = False
        traceback.print_exc()
    finally:
        for name in list(getattr(b, "route_dbs", [])):
            try:
                _drop(b, name)
            except Exception:
                traceback.print_exc()
        try:
            eb.drop_database(b)
        except Exception:
            traceback.print_exc()
    elapsed = time.monotonic() - started
    print()
    print(f"Scaling benchmark, {info['date']}, {info['machine']['nproc']} CPUs ({info['machine']['cpu']}), "
          f"run time {elapsed / 60:.1f} min" + (" [--quick]" if args.quick else "") + f", code {info['revision']}")
    print()
    rb.print_table(b.rows)
    for d in b.details:
        print(f"  {d}")
    print()
    durable = "server" in info and info["server"]["fsync"] == "on" and info["server"]["synchronous_commit"] != "off"
    write = args.docs == "yes" or (args.docs == "auto" and ok and not args.quick and durable and not args.only
                                   and args.events == 100_000 and args.agents == 1000 and args.backlog == 10_000)
    if write:
        write_docs(b, info, elapsed)
    else:
        log("docs/BENCHMARKS.md not updated (quick, partial, failed or non-durable run; --docs yes forces it)")
    failed = [r for r in b.rows if r.passed is False]
    if failed:
        print("FAILED: " + "; ".join(f"#{r.section} {r.figure}" for r in failed))
    return 0 if ok and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
