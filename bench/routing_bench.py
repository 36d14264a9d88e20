#!/usr/bin/env python
"""Routing benchmark: decisions, offers per second and safety with two racing routing workers.

Run it with `make bench-routing` (throw-away PostgreSQL with real fsync, Redis
and the Tansu Kafka broker), or by hand against running services:

    DATABASE_URL=... REDIS_URL=... python bench/routing_bench.py [--quick]

Like bench/intake_bench.py (and with bench/events_bench.py's helpers) it never
touches existing data: it creates a database `bench_<random>`, migrates it,
measures and drops it. Every figure is printed beside a baseline measured in
the same run; a full run (not --quick) against a server with fsync on rewrites
the `bench-routing` section of docs/BENCHMARKS.md.

With 1,000 agents (random skills, capacity voice 1 / chat 3 / email 2 / social 2 / sms 3)
and 20 queues (1-2 required skills at a minimum proficiency 1-3, one channel each):
 4. one `work_route` decision, in process, sequential, p50/p99
                                  vs the bare SQL query for the candidate agents           (info)
 1. queued -> offered latency (InteractionQueued -> InteractionOffered, recorded_at) with 2 Celery
    routing workers, interactions created at 50/s for 20 s (and at 5/s for 10 s), p50/p99; also
    creation committed -> offer decided (the offer's occurred_at)
                                  vs the in-process work_route of figure 4                (p99 < 50 ms)
 2. offers/s with 2 workers: 10,000 waiting interactions, then 1,000 agents become available
    (route_agent) while every waiting one is triggered (route_interaction); a 60 s window
                                  vs sequential in-process work_route (figure 4)          (>= 300/s)
 3. safety: double offers, capacity overruns (Work rows now, and outstanding offers over the whole
    event history), the voice rule                                                        (all 0)
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import multiprocessing as mp
import os
import random
import statistics
import subprocess
import sys
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

import events_bench as eb  # noqa: E402  (shared helpers: database set-up, table, machine info)
from events_bench import Bench, Proc, Row, log, percentile  # noqa: E402

DOCS = REPO / "docs" / "BENCHMARKS.md"
START_MARK = "<!-- bench-routing:results:start -->"
END_MARK = "<!-- bench-routing:results:end -->"
SKILLS = ["billing", "technical", "sales", "returns", "shipping", "accounts", "mobile", "internet", "tv",
          "retention"]
CAPACITY = {"voice": 1, "chat": 3, "email": 2, "social": 2, "sms": 3}
# One channel per queue: 6 chat, 5 email, 4 sms, 3 social and 2 voice queues; interactions are spread evenly
# over the queues, so the mix is 30% chat, 25% email, 20% sms, 15% social, 10% voice.
QUEUE_CHANNELS = ["chat"] * 6 + ["email"] * 5 + ["sms"] * 4 + ["social"] * 3 + ["voice"] * 2
QUEUES = 20
AGENT_SKILLS = 5  # of the 10, each at proficiency 1-5
WORKERS = 2
OFFER_TIMEOUT = 3600  # nobody accepts in the bench: no offer may time out during the run
ROUTING_QUEUE = "routing"
OFFERED, DECLINED, QUEUED = ("interactions.InteractionOffered", "interactions.OfferDeclined",
                             "interactions.InteractionQueued")


# --- code under test ---------------------------------------------------------------------------------------


def code_fingerprint() -> str:
    """sha1 of routing/ and interactions/ (*.py): the workers import the code when they start."""
    h = hashlib.sha1()
    for d in ("routing", "interactions"):
        for path in sorted((REPO / d).rglob("*.py")):
            h.update(str(path.relative_to(REPO)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "routing", "interactions", "customers",
                                "events", "contactcenter"], cwd=REPO, capture_output=True, text=True,
                               timeout=10).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    dirty = sorted({ln[3:].split("/")[0] for ln in dirty if ln.strip()})
    return (rev or "unknown") + (f" with uncommitted changes in {', '.join(d + '/' for d in dirty)}" if dirty else "")


# --- set-up ----------------------------------------------------------------------------------------------


def setup_schema() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    log("migrated")


def make_queues(seed: int) -> dict[str, dict]:
    """20 queues, one channel each, 1-2 required skills at a minimum proficiency of 1-3; two want German."""
    from routing.models import Queue, QueueSkill, Skill

    rnd = random.Random(seed)
    Skill.objects.bulk_create([Skill(name=s) for s in SKILLS])
    out = {}
    for k in range(QUEUES):
        channel = QUEUE_CHANNELS[k]
        language = "de" if k in (3, 12) else ""
        skills = rnd.sample(SKILLS, 1 if (language or k % 2 == 0) else 2)
        need = {s: (1 if language else rnd.choice([1, 2, 2, 3])) for s in skills}
        name = f"q{k:02d}-{channel}-{'-'.join(skills)}"
        Queue.objects.create(name=name, channels=[channel], language=language, priority=1 if k % 5 == 0 else 0,
                             offer_timeout_seconds=OFFER_TIMEOUT,
                             tie_break="lowest_occupancy" if k % 3 == 0 else "longest_idle")
        QueueSkill.objects.bulk_create([QueueSkill(queue_id=name, skill_id=s, min_proficiency=m)
                                        for s, m in need.items()])
        out[name] = {"channel": channel, "language": language, "skills": need}
    return out


def make_agents(n: int, seed: int, presence: str) -> list[str]:
    """n agents with 5 of the 10 skills at proficiency 1-5, English (a quarter German too), default capacity.

    Users are bulk-created with an unusable password (hashing 1,000 passwords would take minutes).
    """
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    from routing.models import Agent, AgentSkill

    rnd = random.Random(seed)
    User = get_user_model()
    names = [f"agent{i:04d}" for i in range(n)]
    users = User.objects.bulk_create([User(username=u, password=make_password(None)) for u in names])
    now = timezone.now()
    agents = Agent.objects.bulk_create([
        Agent(user=u, languages=["en", "de"] if rnd.random() < 0.25 else ["en"], capacity=dict(CAPACITY),
              presence=presence, presence_since=now, idle_since=now - dt.timedelta(seconds=rnd.randrange(600)))
        for u in users])
    AgentSkill.objects.bulk_create([AgentSkill(agent=a, skill_id=s, proficiency=rnd.randint(1, 5))
                                    for a in agents for s in rnd.sample(SKILLS, AGENT_SKILLS)])
    return names


def register_customers(n: int) -> list[uuid.UUID]:
    from customers.services import customer_register
    from events.store import Metadata

    return [customer_register(display_name=f"Customer {i}", email=f"customer{i}@example.com",
                              meta=Metadata()).customer_id for i in range(n)]


def create_waiting(customer_id: uuid.UUID, queue: str, channel: str) -> uuid.UUID:
    from events.store import Metadata
    from interactions.services import interaction_create

    return interaction_create(channel=channel, direction="inbound", meta=Metadata(), customer_id=customer_id,
                              queue=queue).interaction.id


def plan(n: int, queues: dict, customers: list, seed: int) -> list[tuple]:
    """n (customer, queue, channel): queues in turn (shuffled), customers at random."""
    rnd = random.Random(seed)
    names = sorted(queues)
    out = [(rnd.choice(customers), names[i % len(names)], queues[names[i % len(names)]]["channel"])
           for i in range(n)]
    rnd.shuffle(out)
    return out


def _create_chunk(args) -> tuple[int, float]:
    """Process-pool worker for the backlog: creates its share, `batch` interactions per transaction."""
    items, batch = args
    import django

    django.setup()
    from django.db import connections, transaction

    from routing import realtime, services

    # Set-up only (this process): no wallboard pushes and no routing triggers, which would be purged anyway
    # (no agent is available and no worker runs); the rows and events written are the same.
    realtime.push_after_commit = lambda messages_fn: None
    services.request_dispatch = lambda: None
    t0 = time.monotonic()
    for k in range(0, len(items), batch):
        with transaction.atomic():
            for cid, queue, channel in items[k:k + batch]:
                create_waiting(uuid.UUID(cid), queue, channel)
    connections.close_all()
    return len(items), time.monotonic() - t0


def create_backlog(items: list[tuple], processes: int, batch: int) -> float:
    from django.db import connections

    connections.close_all()
    chunks = [([(str(c), q, ch) for c, q, ch in items[k::processes]], batch) for k in range(processes)]
    t0 = time.monotonic()
    with mp.get_context("spawn").Pool(processes) as pool:
        list(pool.imap_unordered(_create_chunk, chunks))
    return time.monotonic() - t0


# --- workers and their queue ------------------------------------------------------------------------------


def purge_routing_queue() -> int:
    """Drop routing tasks queued while no worker ran (triggers of set-up steps, offer expiries)."""
    from contactcenter.celery import app

    with app.connection_for_write() as conn:
        return conn.default_channel.queue_purge(ROUTING_QUEUE) or 0


def routing_backlog() -> int:
    from contactcenter.celery import app

    with app.connection_for_write() as conn:
        return conn.default_channel.client.llen(ROUTING_QUEUE)


def start_workers(b: Bench, tag: str) -> list[Proc]:
    env = dict(os.environ, DATABASE_URL=b.url, DEBUG="false", LOG_LEVEL="WARNING")
    procs = []
    for k in range(WORKERS):
        pool = ["-P", "solo"] if b.args.pool == "solo" else ["-c", "1"]
        cmd = [sys.executable, "-m", "celery", "-A", "contactcenter", "worker", "-Q", ROUTING_QUEUE, *pool,
               "-n", f"routing{k}-{tag}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
               "-l", "WARNING"]
        procs.append(Proc(f"worker-{k}-{tag}", cmd, env, b.tmp))
    b.procs.extend(procs)
    from contactcenter.celery import app

    deadline = time.monotonic() + 90
    names = {f"routing{k}-{tag}" for k in range(WORKERS)}
    while True:
        for p in procs:
            p.check()
        replies = app.control.ping(timeout=1.0) or []
        up = {name.split("@")[0] for r in replies for name in r}
        if names <= up:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("routing workers did not answer:\n" + "\n".join(p.tail() for p in procs))
    b.worker_fingerprints.append(code_fingerprint())
    log(f"started {WORKERS} routing workers ({tag}); logs in {b.tmp}")
    return procs


def stop_workers(procs: list[Proc]) -> None:
    """SIGTERM (warm shutdown), then SIGKILL to the worker's own process group (its prefork child too)."""
    import signal

    for p in procs:
        if p.proc.poll() is None:
            p.proc.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.proc.wait(20)
        except subprocess.TimeoutExpired:
            log(f"{p.name} did not stop in 20 s; killing its process group")
        try:
            os.killpg(p.proc.pid, signal.SIGKILL)  # start_new_session: the group is the worker and its child
        except (ProcessLookupError, PermissionError):
            pass
        p.stop()


def _cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (a prefork worker runs tasks in a child)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _machine_busy_seconds() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (values[0] + values[1] + values[2] + values[5] + values[6] + values[7]) / os.sysconf("SC_CLK_TCK")


class Cpu:
    def __init__(self, procs: list[Proc]):
        self.procs = procs
        self.w0 = [_cpu_seconds(p.proc.pid) for p in procs]
        self.o0 = os.times()
        self.m0 = _machine_busy_seconds()
        self.t0 = time.monotonic()

    def done(self) -> dict:
        w = [_cpu_seconds(p.proc.pid) - c for p, c in zip(self.procs, self.w0, strict=True)]
        o = os.times()
        return {"workers": w, "bench": (o.user + o.system) - (self.o0.user + self.o0.system),
                "machine": _machine_busy_seconds() - self.m0, "seconds": time.monotonic() - self.t0}


def cpu_text(c: dict, offers: int) -> str:
    per = ", ".join(f"{w:.1f} s" for w in c["workers"])
    return (f"CPU: workers {per} ({sum(c['workers']) / max(offers, 1) * 1000:.1f} ms per offer), bench process "
            f"{c['bench']:.1f} s, everything else (PostgreSQL, Redis, system) "
            f"{c['machine'] - sum(c['workers']) - c['bench']:.1f} s; the machine was "
            f"{c['machine'] / c['seconds'] / (os.cpu_count() or 1):.0%} busy over {c['seconds']:.0f} s")


def wait_until_settled(count_fn, total: int, quiet: float, max_wait: float) -> tuple[int, float]:
    """Poll until everything is offered, or nothing new happened for `quiet` s with no task left in the queue."""
    last, changed, start = -1, time.monotonic(), time.monotonic()
    while True:
        n = count_fn()
        now = time.monotonic()
        if n != last:
            last, changed = n, now
        if n >= total or (now - changed >= quiet and routing_backlog() == 0) or now - start > max_wait:
            return n, now - start
        time.sleep(0.5)


# --- SQL helpers -------------------------------------------------------------------------------------------


def sql(b: Bench, query: str, params=None) -> list[tuple]:
    import psycopg

    with psycopg.connect(b.url, autocommit=True) as conn:
        return conn.execute(query, params or []).fetchall()


def offers_since(b: Bench, position: int) -> int:
    return sql(b, "SELECT count(*) FROM events_event WHERE event_type = %s AND position > %s",
               [OFFERED, position])[0][0]


def last_position(b: Bench) -> int:
    return sql(b, "SELECT coalesce(max(position), 0) FROM events_event")[0][0]


# The bare candidate query (figure 4's baseline): available agents who speak the queue's language, have
# every required skill at its minimum and a free slot on the channel.
CANDIDATES_SQL = """
SELECT a.id, u.username
FROM routing_agent a JOIN auth_user u ON u.id = a.user_id
WHERE a.presence = 'available'
  AND (%(language)s = '' OR a.languages ? %(language)s)
  AND (SELECT count(*) FROM routing_agentskill s
       JOIN unnest(%(skills)s::text[], %(needed)s::int[]) AS r(skill, needed)
         ON s.skill_id = r.skill AND s.proficiency >= r.needed
       WHERE s.agent_id = a.id) = cardinality(%(skills)s::text[])
  AND coalesce((a.capacity ->> %(channel)s)::int, 0) > (
      SELECT count(*) FROM routing_work w
      WHERE w.agent_id = u.username AND w.channel = %(channel)s AND w.status IN ('offered', 'assigned'))
"""


# --- figure 4: one decision vs the bare candidate query --------------------------------------------------


def measure_decision(b: Bench, queues: dict, customers: list) -> dict:
    import psycopg
    from django.db import connection

    from routing.services import work_route

    a = b.args
    n = a.decisions
    warm = 20
    log(f"figure 4: {n} work_route calls in process (after {warm} warm-up) vs the bare candidate query")
    items = plan(n + warm, queues, customers, seed=4)
    created = [(create_waiting(c, q, ch), q, ch) for c, q, ch in items]
    conn = psycopg.connect(b.url, autocommit=True)

    def bare(q: str, ch: str) -> tuple[float, int]:
        spec = queues[q]
        params = {"language": spec["language"], "skills": list(spec["skills"]), "needed": list(spec["skills"].values()),
                  "channel": ch}
        t0 = time.monotonic()
        rows = conn.execute(CANDIDATES_SQL, params, prepare=True).fetchall()
        return time.monotonic() - t0, len(rows)

    def ours(iid) -> tuple[float, bool]:
        t0 = time.monotonic()
        d = work_route(interaction_id=iid)
        return time.monotonic() - t0, bool(d and d.agent_id)

    connection.ensure_connection()
    route_t, sql_t, found, offered = [], [], [], 0
    for k, (iid, q, ch) in enumerate(created):
        if k % 2 == 0:  # alternate which goes first
            ts, nc = bare(q, ch)
            tr, ok = ours(iid)
        else:
            tr, ok = ours(iid)
            ts, nc = bare(q, ch)
        if k >= warm:
            route_t.append(tr)
            sql_t.append(ts)
            found.append(nc)
            offered += ok
    conn.close()
    r50, r99, s50, s99 = (percentile(route_t, 50), percentile(route_t, 99), percentile(sql_t, 50),
                          percentile(sql_t, 99))
    b.add(Row("4", "one work_route decision p50 (in process)", r50, "bare candidate SQL p50", s50, "info", None,
              unit="seconds", ratio=r50 / s50))
    b.add(Row("4", "one work_route decision p99 (in process)", r99, "bare candidate SQL p99", s99, "info", None,
              unit="seconds", ratio=r99 / s99))
    b.detail(f"figure 4: {len(route_t)} decisions, {offered} offered; candidates found by the bare query per "
             f"interaction: median {statistics.median(found):.0f}, min {min(found)}, max {max(found)}; "
             f"work_route mean {statistics.mean(route_t) * 1000:.1f} ms, bare SQL mean "
             f"{statistics.mean(sql_t) * 1000:.2f} ms")
    return {"p50": r50, "p99": r99, "rate": 1 / statistics.mean(route_t)}


# --- figure 1: queued -> offered ------------------------------------------------------------------------------


def paced_run(b: Bench, queues: dict, customers: list, procs: list[Proc], rate: float, seconds: float,
              seed: int, settle: float) -> dict:
    """Create interactions at `rate`/s for `seconds` (2 threads), wait for the workers, read the latencies."""
    from django.utils import timezone

    n = int(rate * seconds)
    items = plan(n, queues, customers, seed=seed)
    created: list = [None] * n
    pos0 = last_position(b)

    def action(i: int) -> None:
        c, q, ch = items[i]
        iid = create_waiting(c, q, ch)
        created[i] = (iid, timezone.now(), ch)  # the creation has committed: the task is on its way

    cpu = Cpu(procs)
    _, elapsed = eb.paced(rate, seconds, action, threads=4)
    _, waited = wait_until_settled(lambda: offers_since(b, pos0), n, 3.0, settle)
    c = cpu.done()
    pending = routing_backlog()
    rows = sql(b, """
        SELECT q.stream_id::text, q.recorded_at, o.recorded_at, o.occurred_at, q.occurred_at
        FROM events_event q
        LEFT JOIN LATERAL (SELECT recorded_at, occurred_at FROM events_event o
                           WHERE o.stream_id = q.stream_id AND o.event_type = %s
                           ORDER BY o.stream_version LIMIT 1) o ON true
        WHERE q.event_type = %s AND q.stream_id = ANY(%s::uuid[])""", [OFFERED, QUEUED, [str(x[0]) for x in created]])
    committed = {str(iid): (t, ch) for iid, t, ch in created}
    # queued -> offered: each event as the store stamped it when appended (occurred_at, the appending process's
    # clock); the offer's is taken after the decision, so the whole decision is inside. (recorded_at is the start
    # of the appending transaction: for the offer, before the dispatcher looked at anything.)
    lat = [(r[3] - r[4]).total_seconds() for r in rows if r[2] is not None]
    lat_tx = [(r[2] - r[1]).total_seconds() for r in rows if r[2] is not None]
    by_channel: dict = {}
    for r in rows:
        if r[2] is not None:
            by_channel.setdefault(committed[r[0]][1], []).append((r[3] - r[4]).total_seconds())
    missed = [r[0] for r in rows if r[2] is None]
    takeable = offerable_left(queues, missed)[0] if missed else 0
    missed_by_channel: dict = {}
    for iid in missed:
        missed_by_channel[committed[iid][1]] = missed_by_channel.get(committed[iid][1], 0) + 1
    return {"n": n, "elapsed": elapsed, "waited": waited, "cpu": c, "lat": lat, "lat_tx": lat_tx,
            "by_channel": by_channel,
            "takeable": takeable, "missed_by_channel": missed_by_channel, "pending": pending,
            "after_commit": [(r[3] - committed[r[0]][0]).total_seconds() for r in rows if r[3] is not None],
            "not_offered": sum(r[2] is None for r in rows)}


def measure_latency(b: Bench, queues: dict, customers: list, procs: list[Proc], base: dict) -> None:
    a = b.args
    warm = plan(60, queues, customers, seed=10)
    for c, q, ch in warm:  # unmeasured: the workers import and connect
        create_waiting(c, q, ch)
        time.sleep(0.05)
    wait_until_settled(lambda: 0, 1, 2.0, 30)
    log(f"figure 1, light load: {int(a.low_rate * a.low_seconds)} interactions at {a.low_rate:.0f}/s")
    low = paced_run(b, queues, customers, procs, a.low_rate, a.low_seconds, seed=11, settle=a.settle)
    n = int(a.rate * a.seconds)
    log(f"figure 1: {n} interactions created at {a.rate:.0f}/s ({WORKERS} routing workers, agents available)")
    r = paced_run(b, queues, customers, procs, a.rate, a.seconds, seed=12, settle=a.settle)
    lat = r["lat"]
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    b.add(Row("1", f"queued -> offered p50 at {a.rate:.0f}/s (2 workers)", p50, "in-process work_route p50",
              base["p50"], "info", None, unit="seconds", ratio=p50 / base["p50"]))
    b.add(Row("1", f"queued -> offered p99 at {a.rate:.0f}/s (2 workers)", p99, "in-process work_route p99",
              base["p99"], "< 50 ms", p99 < 0.050, unit="seconds", ratio=p99 / base["p99"]))
    b.add(Row("1", f"not offered within {a.settle:.0f} s though an available agent could take it", None, "-", None,
              "0", r["takeable"] == 0, note=f"{r['takeable']} of {n} ({r['not_offered']} not offered in all)"))
    d99 = percentile(r["after_commit"], 99)
    b.add(Row("1", f"committed -> offer decided p99 at {a.rate:.0f}/s", d99, "in-process work_route p99",
              base["p99"], "info", None, unit="seconds", ratio=d99 / base["p99"]))
    l50, l99 = percentile(low["lat"], 50), percentile(low["lat"], 99)
    b.add(Row("1", f"queued -> offered p50 at {a.low_rate:.0f}/s (light load)", l50, "in-process work_route p50",
              base["p50"], "info", None, unit="seconds", ratio=l50 / base["p50"]))
    b.add(Row("1", f"queued -> offered p99 at {a.low_rate:.0f}/s (light load)", l99, "in-process work_route p99",
              base["p99"], "info", None, unit="seconds", ratio=l99 / base["p99"]))
    for q in (50, 99):
        v = percentile(low["after_commit"], q)
        b.add(Row("1", f"committed -> offer decided p{q} at {a.low_rate:.0f}/s", v, f"in-process work_route p{q}",
                  base[f"p{q}"], "info", None, unit="seconds", ratio=v / base[f"p{q}"]))
    for label, x in ((f"{a.rate:.0f}/s", r), (f"{a.low_rate:.0f}/s", low)):
        lt = x["lat"] or [float("nan")]
        missed = ", ".join(f"{k} {v}" for k, v in sorted(x["missed_by_channel"].items()))
        b.detail(f"figure 1 at {label}: {x['n']} created in {x['elapsed']:.1f} s, {len(x['lat'])} offered, "
                 f"{x['not_offered']} not offered" + (f" ({missed})" if missed else "") +
                 f"; the workers settled {x['waited']:.1f} s after the last creation with {x['pending']} tasks "
                 f"still queued in Redis; {x['takeable']} of those not offered an available agent could take "
                 f"then; mean {statistics.mean(lt) * 1000:.1f} ms, max {max(lt) * 1000:.1f} ms; creation "
                 f"committed -> offer decided (the offer's occurred_at, before its commit): p50 "
                 f"{percentile(x['after_commit'], 50) * 1000:.1f} ms, p99 "
                 f"{percentile(x['after_commit'], 99) * 1000:.1f} ms")
        b.detail(f"figure 1 at {label}: queued -> start of the offering transaction (both recorded_at, the measure "
                 f"of earlier runs, which leaves the decision out): p50 {percentile(x['lat_tx'], 50) * 1000:.1f} ms, "
                 f"p99 {percentile(x['lat_tx'], 99) * 1000:.1f} ms")
        b.detail(f"figure 1 at {label} by channel (p50 / p99 ms): " + ", ".join(
            f"{ch} {len(v)}: {percentile(v, 50) * 1000:.1f} / {percentile(v, 99) * 1000:.1f}"
            for ch, v in sorted(x["by_channel"].items())))
        b.detail(f"figure 1 at {label} " + cpu_text(x["cpu"], len(x["lat"])))


# --- figure 2: offers per second --------------------------------------------------------------------------------


class quiet_setup:
    """Set-up steps only: no wallboard/agent pushes and no routing triggers from this process meanwhile
    (no worker runs then, and what they would queue is purged anyway); rows and events are the same."""

    def __enter__(self):
        from routing import realtime, services

        self.saved = realtime.push_after_commit, services.request_dispatch
        realtime.push_after_commit = lambda messages_fn: None
        services.request_dispatch = lambda: None

    def __exit__(self, *exc):
        from routing import realtime, services

        realtime.push_after_commit, services.request_dispatch = self.saved


def agents_offline(names: list[str], threads: int = 2) -> float:
    from django.db import connection

    from routing.services import agent_presence_set

    def run(part: list[str]) -> None:
        try:
            for name in part:
                agent_presence_set(agent_id=name, presence="offline")
        finally:
            connection.close()

    t0 = time.monotonic()
    pool = [threading.Thread(target=run, args=(names[k::threads],)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.monotonic() - t0


def measure_throughput(b: Bench, queues: dict, customers: list, agents: list[str], base: dict) -> list[Proc]:
    from django.db import connections
    from django.db.models import Count

    from routing.models import Work
    from routing.services import agent_presence_set

    a = b.args
    log(f"figure 2: all {len(agents)} agents offline (their offers declined), then a backlog up to "
        f"{a.backlog:,} waiting")
    pos = last_position(b)
    with quiet_setup():
        t = agents_offline(agents)
    waiting = Work.objects.filter(status=Work.WAITING).count()
    declined = sql(b, "SELECT count(*) FROM events_event WHERE position > %s AND event_type = %s",
                   [pos, DECLINED])[0][0]
    b.detail(f"figure 2 set-up: {len(agents)} agents set offline in {t:.1f} s (agent_presence_set, 2 threads, "
             f"which declined {declined} offers of figures 1 and 4); {waiting} waiting")
    need = max(0, a.backlog - waiting)
    items = plan(need, queues, customers, seed=20)
    connections.close_all()
    t = create_backlog(items, a.processes, a.batch)
    waiting = Work.objects.filter(status=Work.WAITING).count()
    b.detail(f"figure 2 set-up: {need:,} waiting interactions created in {t:.1f} s ({need / t:.0f}/s; "
             f"interaction_create with customer_id, {a.processes} processes, {a.batch} per transaction); "
             f"{waiting:,} waiting in all")
    purged = purge_routing_queue()
    log(f"  purged {purged} routing tasks queued by the set-up (no worker was running)")
    by_channel_waiting = dict(Work.objects.filter(status=Work.WAITING).values_list("channel")
                              .annotate(n=Count("pk")).values_list("channel", "n"))
    procs = start_workers(b, "fig2")
    ids = [str(i) for i in Work.objects.filter(status=Work.WAITING).order_by("-priority", "enqueued_at")
           .values_list("interaction_id", flat=True)]
    pos0 = last_position(b)
    cpu = Cpu(procs)
    t_start = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    order = list(agents)
    random.Random(21).shuffle(order)
    for name in order:  # shift start: each agent_presence_set asks for a dispatch after its commit (coalesced)
        agent_presence_set(agent_id=name, presence="available")
    t_presence = time.monotonic() - t0
    got, _ = wait_until_settled(lambda: offers_since(b, pos0), len(ids), 3.0,
                                max(1.0, a.window - (time.monotonic() - t0)))
    c = cpu.done()
    waited = time.monotonic() - t0
    cut = waited >= a.window
    stop_workers(procs)  # quiet from here on: the counts below and figure 3 read a settled state
    first, last, n, agents_served = sql(b, """
        SELECT min(recorded_at) FILTER (WHERE event_type = %s), max(recorded_at) FILTER (WHERE event_type = %s),
               count(*) FILTER (WHERE event_type = %s),
               count(DISTINCT data ->> 'agent_id') FILTER (WHERE event_type = %s)
        FROM events_event WHERE position > %s AND event_type IN (%s, 'routing.InteractionRouted')""",
                                        [OFFERED, OFFERED, OFFERED, OFFERED, pos0, OFFERED])[0]
    span = (last - t_start).total_seconds() if last else float("nan")
    rate = n / span if n else 0.0
    per_sec = sql(b, """SELECT floor(extract(epoch FROM recorded_at - %s))::int AS s, count(*)
                        FROM events_event WHERE position > %s AND event_type = %s GROUP BY 1 ORDER BY 1""",
                  [t_start, pos0, OFFERED])
    peak = max((r[1] for r in per_sec), default=0)
    left = Work.objects.filter(status=Work.WAITING).count()
    offered_by_channel = dict(sql(b, "SELECT channel, count(*) FROM events_event WHERE position > %s AND "
                                     "event_type = %s GROUP BY 1", [pos0, OFFERED]))
    b.add(Row("2", f"offers/s, {WORKERS} workers, {len(ids):,} waiting, {len(agents):,} agents", rate,
              "work_route in process, sequential", base["rate"], ">= 300/s", rate >= 300, ratio=rate / base["rate"]))
    passes = sql(b, "SELECT count(DISTINCT recorded_at) FROM events_event WHERE position > %s AND event_type = %s",
                 [pos0, OFFERED])[0][0]
    b.detail(f"figure 2: {n:,} offers to {agents_served:,} agents in {passes:,} dispatch passes (transactions) in "
             f"{span:.1f} s from the first presence change to the last offer; busiest second {peak} offers; "
             f"{len(agents)} agent_presence_set took {t_presence:.1f} s; " + (f"the run was cut at the {a.window:.0f} s window with {left:,} still "
                                        "waiting" if cut else f"{left:,} still waiting when the workers settled "
                                                               f"({waited:.1f} s after the start)"))
    b.detail("figure 2 offered / waiting before, by channel: " + ", ".join(
        f"{ch} {offered_by_channel.get(ch, 0):,}/{by_channel_waiting.get(ch, 0):,}" for ch in CAPACITY))
    b.detail(f"figure 2 first offer {(first - t_start).total_seconds():.2f} s after the start; offers per second "
             "over the run: " + " ".join(str(r[1]) for r in per_sec))
    b.detail("figure 2 " + cpu_text(c, n))
    b.fig2_cut = cut
    return procs


def offerable_left(queues: dict, ids: list[str] | None = None) -> tuple[int, int]:
    """Waiting interactions that some available agent could take now (routing.domain.evaluate: free slot,
    voice rule, language, skills, not declined); and how many are waiting. Grouped by queue, channel and
    who declined, so it is cheap."""
    from routing import domain
    from routing.models import Agent, Work
    from routing.models import Queue
    from routing.services import _loads  # a read-only helper of the code under test

    agents = list(Agent.objects.filter(presence=domain.AVAILABLE).select_related("user").prefetch_related("skills"))
    loads = _loads([x.user.get_username() for x in agents])
    views = [domain.AgentView(agent_id=x.user.get_username(), presence=x.presence,
                              skills={s.skill_id: s.proficiency for s in x.skills.all()},
                              languages=tuple(x.languages or ()), capacity=dict(x.capacity or {}),
                              load=loads.get(x.user.get_username(), {}), voice_with_others=x.voice_with_others,
                              idle_since=x.idle_since) for x in agents]
    groups: dict = {}
    waiting = Work.objects.filter(status=Work.WAITING)
    if ids is not None:
        waiting = waiting.filter(interaction_id__in=ids)
    for w in waiting:
        groups.setdefault((w.queue, w.channel, tuple(w.declined_by)), []).append(w)
    now = dt.datetime.now(dt.UTC)
    could = 0
    for (queue, _, _), works in groups.items():
        found = Queue.objects.filter(name=queue).prefetch_related("skills").first()
        policy = found.policy() if found else domain.QueuePolicy(name=queue)
        view = works[0].view()
        step = domain.step_in_force(policy, (now - works[0].enqueued_at).total_seconds())
        if any(domain.evaluate(policy, view, v, step=step).eligible for v in views):
            could += len(works)
    return could, sum(len(w) for w in groups.values())


# --- figure 3: safety --------------------------------------------------------------------------------------------

DOUBLE_OFFERS_SQL = """
SELECT count(*) FROM (
  SELECT event_type, lag(event_type) OVER (PARTITION BY stream_id ORDER BY stream_version) AS prev
  FROM events_event WHERE event_type IN (%(offered)s, %(declined)s)) s
WHERE event_type = %(offered)s AND prev = %(offered)s
"""
WORK_OVERRUNS_SQL = """
SELECT count(*) FROM (
  SELECT w.agent_id, w.channel, count(*) AS n, min(coalesce((a.capacity ->> w.channel)::int, 0)) AS cap
  FROM routing_work w JOIN auth_user u ON u.username = w.agent_id JOIN routing_agent a ON a.user_id = u.id
  WHERE w.status IN ('offered', 'assigned') GROUP BY 1, 2) x
WHERE n > cap
"""
VOICE_RULE_SQL = """
SELECT count(*) FROM (
  SELECT w.agent_id FROM routing_work w JOIN auth_user u ON u.username = w.agent_id
  JOIN routing_agent a ON a.user_id = u.id
  WHERE w.status IN ('offered', 'assigned') AND NOT a.voice_with_others
  GROUP BY 1 HAVING bool_or(w.channel = 'voice') AND bool_or(w.channel <> 'voice')) x
"""
EVENT_OVERRUNS_SQL = """
WITH d AS (
  SELECT position, data ->> 'agent_id' AS agent, channel,
         CASE WHEN event_type = %(offered)s THEN 1 ELSE -1 END AS delta
  FROM events_event WHERE event_type IN (%(offered)s, %(declined)s)),
r AS (SELECT agent, channel, sum(delta) OVER (PARTITION BY agent, channel ORDER BY position) AS outstanding
      FROM d),
m AS (SELECT agent, channel, max(outstanding) AS peak FROM r GROUP BY 1, 2)
SELECT count(*), coalesce(max(m.peak), 0)
FROM m JOIN auth_user u ON u.username = m.agent JOIN routing_agent a ON a.user_id = u.id
WHERE m.peak > coalesce((a.capacity ->> m.channel)::int, 0)
"""
OUT_OF_STEP_SQL = """
SELECT count(*) FROM routing_work w JOIN interactions_interaction i ON i.id = w.interaction_id
WHERE NOT ((w.status = 'waiting' AND i.status = 'queued' AND w.agent_id IS NULL)
        OR (w.status = 'offered' AND i.status = 'offered' AND w.agent_id = i.agent_id)
        OR (w.status = 'assigned' AND i.status IN ('active', 'held') AND w.agent_id = i.agent_id))
"""


def measure_safety(b: Bench) -> None:
    params = {"offered": OFFERED, "declined": DECLINED}
    doubles = sql(b, DOUBLE_OFFERS_SQL, params)[0][0]
    work_over = sql(b, WORK_OVERRUNS_SQL)[0][0]
    voice = sql(b, VOICE_RULE_SQL)[0][0]
    ev_over, _ = sql(b, EVENT_OVERRUNS_SQL, params)[0]
    out_of_step = sql(b, OUT_OF_STEP_SQL)[0][0]
    offers, declines, streams = sql(b, """SELECT count(*) FILTER (WHERE event_type = %s),
                                                count(*) FILTER (WHERE event_type = %s), count(DISTINCT stream_id)
                                         FROM events_event WHERE event_type IN (%s, %s)""",
                                    [OFFERED, DECLINED, OFFERED, DECLINED])[0]
    in_hand = sql(b, "SELECT count(*), count(DISTINCT agent_id) FROM routing_work "
                     "WHERE status IN ('offered', 'assigned')")[0]
    for label, v in (("double offers (two InteractionOffered, no OfferDeclined between)", doubles),
                     ("agent x channel over capacity now (Work rows)", work_over),
                     ("agent x channel ever over capacity (offers - declines, event order)", ev_over),
                     ("agents holding a call and other work (voice rule)", voice),
                     ("Work rows out of step with their interaction", out_of_step)):
        b.add(Row("3", label, None, "-", None, "0", v == 0, note=str(v)))
    b.detail(f"figure 3: over the whole run, {offers:,} offers and {declines:,} declines on {streams:,} "
             f"interactions; {in_hand[0]:,} offers outstanding now, held by {in_hand[1]:,} agents")


def measure_task_errors(b: Bench) -> None:
    """Routing tasks that raised in the workers (from their logs): a failed task is a lost decision."""
    errors, first = 0, ""
    for p in b.procs:
        try:
            lines = p.log_path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for ln in lines:
            if "raised unexpected" in ln:
                errors += 1
                first = first or ln.strip()
    b.add(Row("3", "routing tasks that raised in the workers", None, "-", None, "0", errors == 0, note=str(errors)))
    if first:
        b.detail(f"figure 3: first task error in the worker logs: {first[:300]}")


# --- report -----------------------------------------------------------------------------------------------------

HOW = """\
### How each figure is measured

Set-up (not measured): 10 skills; 20 queues, one channel each (6 chat, 5 email, 4 sms, 3 social, 2
voice), 1 or 2 required skills at a minimum proficiency of 1-3, two queues want German, a few have
priority 1 or the `lowest_occupancy` tie-break; the offer timeout is set to 1 hour (nobody accepts
an offer in the bench, so none may time out during the run). 1,000 agents (users bulk-created), each
with 5 of the 10 skills at proficiency 1-5, English (a quarter German too), capacity voice 1, chat
3, email 2, social 2, sms 3 (the voice rule applies: a call excludes other work). 500 customers are
registered (`customer_register`); interactions are created with `interaction_create(customer_id=...,
queue=...)` spread evenly over the queues, so the mix is 30% chat, 25% email, 20% sms, 15% social,
10% voice. Routing workers are 2 processes of `python -m celery -A contactcenter worker -Q routing
-P solo --without-gossip --without-mingle --without-heartbeat` (the solo pool, as the README runs
them; `--pool prefork` runs them with one prefork child each instead, for comparison); beat (the
periodic sweep) does not run, so every decision comes from a trigger: whatever may make routing
possible (an interaction queued, an agent available, a slot freed) asks for a dispatch after its
commit, and the requests coalesce into one queued `routing.tasks.dispatch` task, which routes in
passes of up to 100 offers (one transaction each) until a pass offers nothing. Whatever a set-up step
queues while no worker runs is purged from Redis before the workers start.

4. **One decision** (runs first: figures 1 and 2 use it as their baseline). With the agents
   available and no worker running, 220 interactions are created; for each,
   `routing.services.work_route()` is timed in the bench process (a dispatch pass limited to that
   interaction, one transaction: lock, candidates, decision, offer, and its after-commit pushes and
   expiry task), and so is the bare candidate query
   with psycopg (prepared; available agents who speak the queue's language, have every required
   skill at its minimum, and a free slot on the channel counted from `routing_work`), the two
   alternating which goes first; the first 20 are a warm-up. Ratio = ours / baseline.
1. **Queued -> offered.** 2 workers running, every agent available with free slots; after 60
   unmeasured interactions, interactions are created by the bench process at 50/s for 20 s (4
   threads, paced), and before that, for comparison, at 5/s for 10 s (light load). Latency per
   interaction = `occurred_at` of its first `interactions.InteractionOffered` - `occurred_at` of its
   `interactions.InteractionQueued`, both from `events_event`: the time the store stamped each event
   as it appended it (the appending process's clock, same machine). The offer is appended after the
   decision, so the creation's commit, the trigger, the task's delivery and the whole decision are
   inside; only the offer's own commit is not. (Runs before 2026-11-23 used `recorded_at`,
   PostgreSQL's `now()`, the start of the appending transaction, which leaves the decision out; the
   details still give that figure.) Also "committed -> offer decided": from the bench's clock when
   `interaction_create` returned (committed, trigger sent) to the offer's `occurred_at`. Interactions
   not offered 15 s after the last creation are counted (and left out of the percentiles); the target
   counts those an available agent could have taken then (a free slot, the voice rule, language,
   skills), since work nobody can take waits by design. The workers are then stopped and what is
   still queued for them is purged. Baseline: figure 4's in-process `work_route`.
2. **Offers per second.** The workers are stopped; all agents are set offline with
   `agent_presence_set` (2 threads, pushes and triggers off in the bench process meanwhile; this
   declines the offers of figures 1 and 4, which wait again), then waiting interactions are created
   up to 10,000 (2 processes, 25 per transaction, wallboard pushes and routing triggers switched off
   in those set-up processes only; the time is in the details). Then the 2 workers start and the
   1,000 agents are set available one by one (random order; each asks for a dispatch, so both
   workers' dispatch tasks run while agents keep arriving). The run ends when every interaction is
   offered, when no offer was added for 3 s with no task left in Redis, or 60 s after the first
   presence change (the details say which). Rate = offers / (last offer's `recorded_at` - the first presence change).
   10,000 interactions need about all of the agents' 10 non-voice slots each, before skills,
   language and the voice rule count, so not all could be offered anyway; the details say how many
   waited at the end and how many of those an available agent could have taken. Baseline: sequential
   in-process `work_route` (1 / figure 4's mean), one process.
3. **Safety**, with the workers stopped, over the whole event history of figures 4, 1 and 2:
   interactions with two `InteractionOffered` and no `OfferDeclined` between them (stream order);
   agent x channel pairs with more `offered`/`assigned` Work rows than the agent's capacity; agent x
   channel pairs whose outstanding offers (offers - declines, in event position order) ever exceeded
   the capacity; agents holding a call and other work (voice rule); Work rows whose status or agent
   disagree with their interaction's state row; and routing tasks that raised in the workers (lines
   "raised unexpected" in their logs).

"CPU" lines: CPU time from /proc of each worker process (with its child), of the bench process and
of the whole machine over the run.
"""


def write_docs(b: Bench, info: dict, elapsed: float) -> None:
    m, s = info["machine"], info["server"]
    lines = [
        START_MARK,
        "## Results: `make bench-routing`",
        "",
        "Generated by `bench/routing_bench.py`; rerun `make bench-routing` to replace this section.",
        "",
        f"- Date: {info['date']}",
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} memory, Linux {m['kernel']}, Python {m['python']}",
        f"- PostgreSQL {s['server_version']} (fsync={s['fsync']}, synchronous_commit={s['synchronous_commit']}), "
        "Redis, the 2 routing workers and the bench process all on the same machine",
        f"- Code: commit {info['revision']}; routing/ + interactions/ sha1 {info['fingerprint']}",
        "- Command: `make bench-routing` (`python -m contactcenter.devstack bench bench/routing_bench.py`)",
        f"- Run time: {elapsed / 60:.1f} min",
        "",
    ]
    t = table(b.rows)
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
    log(f"wrote the bench-routing section of {DOCS.relative_to(REPO)}")


def table(rows: list[Row]) -> list[list[str]]:
    """events_bench.table, with counts (figure 3) shown in the `ours` column."""
    t = eb.table(rows)
    for line, r in zip(t[1:], rows, strict=True):
        if r.ours is None and r.note:
            line[2] = r.note
    return t


def print_table(rows: list[Row]) -> None:
    t = table(rows)
    widths = [max(len(str(line[i])) for line in t) for i in range(len(t[0]))]
    for n, line in enumerate(t):
        print("  ".join(str(c).rjust(w) if i in (2, 4, 5) else str(c).ljust(w)
                        for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print(flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short run with fewer agents and interactions (no docs)")
    p.add_argument("--agents", type=int, help="default 1,000 (quick 200)")
    p.add_argument("--backlog", type=int, help="waiting interactions for figure 2 (default 10,000, quick 1,000)")
    p.add_argument("--rate", type=float, default=50.0, help="interactions created per second in figure 1")
    p.add_argument("--seconds", type=float, help="length of figure 1's paced run (default 20, quick 5)")
    p.add_argument("--decisions", type=int, help="figure 4's measured work_route calls (default 300, quick 100)")
    p.add_argument("--customers", type=int, default=500)
    p.add_argument("--processes", type=int, default=2, help="processes creating the backlog")
    p.add_argument("--batch", type=int, default=25, help="backlog interactions per transaction")
    p.add_argument("--low-rate", type=float, default=5.0, help="figure 1's light-load rate (for 10 s)")
    p.add_argument("--settle", type=float, help="figure 1: longest wait for offers after the last creation "
                                                "(default 15 s)")
    p.add_argument("--window", type=float, help="figure 2: longest run, in seconds (default 60, quick 40)")
    p.add_argument("--docs", choices=("auto", "yes", "no"), default="auto")
    p.add_argument("--pool", choices=("prefork", "solo"), default="solo",
                   help="the workers' Celery pool: solo (tasks in the worker, as `make run` and the README run "
                        "routing workers; default) or prefork with one child")
    a = p.parse_args(argv)
    a.agents = a.agents or (200 if a.quick else 1000)
    a.backlog = a.backlog or (1000 if a.quick else 10_000)
    a.seconds = a.seconds or (5.0 if a.quick else 20.0)
    a.decisions = a.decisions or (100 if a.quick else 200)
    a.low_seconds = 10.0
    a.settle = a.settle or 15.0
    a.window = a.window or (40.0 if a.quick else 60.0)
    if a.quick:
        a.customers = min(a.customers, 100)
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url or not os.environ.get("REDIS_URL"):
        print("set DATABASE_URL and REDIS_URL, or run `make bench-routing`", file=sys.stderr)
        return 2
    b = Bench(args=args, admin_url=admin_url)
    b.worker_fingerprints = []
    b.fig2_cut = False
    b.procs = []
    info = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": eb.machine(),
            "revision": git_revision(), "fingerprint": code_fingerprint()}
    procs: list[Proc] = []
    ok = True
    try:
        eb.create_database(b)
        setup_schema()
        info["server"] = s = eb.server_settings(b.url)
        log(f"PostgreSQL {s['server_version']}: fsync={s['fsync']}, synchronous_commit={s['synchronous_commit']}")
        t0 = time.monotonic()
        queues = make_queues(seed=1)
        agents = make_agents(args.agents, seed=2, presence="available")
        customers = register_customers(args.customers)
        log(f"set-up: {len(queues)} queues, {len(agents)} agents, {len(customers)} customers in "
            f"{time.monotonic() - t0:.1f} s")
        purge_routing_queue()
        base = measure_decision(b, queues, customers)
        purge_routing_queue()
        procs = start_workers(b, "fig1")
        measure_latency(b, queues, customers, procs, base)
        stop_workers(procs)
        procs = []
        procs = measure_throughput(b, queues, customers, agents, base)
        procs = []
        could, left = offerable_left(queues)
        b.detail(f"figure 2 end: {left:,} interactions still waiting, {could:,} of them takeable by an available "
                 "agent (free slot, voice rule, language, skills)" + (
                     "" if not could else " (the window ended before the workers got to them)" if b.fig2_cut else
                     " (left for the periodic sweep, which does not run in the bench)"))
        measure_safety(b)
        measure_task_errors(b)
    except BaseException:
        ok = False
        traceback.print_exc()
        for proc in b.procs:
            log(f"{proc.name} log tail:\n{proc.tail()}")
    finally:
        stop_workers(b.procs)
        try:
            eb.drop_database(b)
        except Exception:
            traceback.print_exc()
    elapsed = time.monotonic() - started
    changed = {info["fingerprint"], code_fingerprint(), *b.worker_fingerprints} != {info["fingerprint"]}
    if changed:
        b.detail("WARNING: routing/ or interactions/ changed while the benchmark ran (the workers may have run "
                 "other code than the bench process)")
    print()
    print(f"Routing benchmark, {info['date']}, {info['machine']['nproc']} CPUs ({info['machine']['cpu']}), "
          f"run time {elapsed / 60:.1f} min" + (" [--quick]" if args.quick else "") + f", code {info['revision']}")
    if "server" in info:
        s = info["server"]
        print(f"PostgreSQL {s['server_version']} fsync={s['fsync']} synchronous_commit={s['synchronous_commit']}")
    print()
    print_table(b.rows)
    for d in b.details:
        print(f"  {d}")
    print()
    durable = "server" in info and info["server"]["fsync"] == "on" and info["server"]["synchronous_commit"] != "off"
    write = args.docs == "yes" or (args.docs == "auto" and ok and not args.quick and durable and not changed
                                   and args.agents == 1000 and args.backlog == 10_000 and args.rate == 50.0
                                   and args.pool == "solo")
    if write:
        write_docs(b, info, elapsed)
    else:
        log("docs/BENCHMARKS.md not updated (quick, partial, failed, non-durable or changed-code run; "
            "--docs yes forces it)")
    failed = [r for r in b.rows if r.passed is False]
    if failed:
        print("FAILED targets: " + "; ".join(f"#{r.section} {r.figure}" for r in failed))
    return 0 if ok and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
