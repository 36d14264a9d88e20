#!/usr/bin/env python
"""Event-store benchmark: our store, relay and projections against baselines measured in the same run.

Run it with `make bench-events` (throw-away PostgreSQL with real fsync, Redis
and the Tansu Kafka broker), or by hand against running services:

    DATABASE_URL=... REDIS_URL=... KAFKA_BOOTSTRAP_SERVERS=... python bench/events_bench.py [--quick]

It never touches existing data: it creates a database `bench_<random>` on the
server of DATABASE_URL, migrates it, measures, and drops it at the end. Every
figure is printed beside a baseline measured in the same run on the same
database, with the ratio, the target and PASS/FAIL; a full run (not --quick)
against a server with fsync on also rewrites the results section of
docs/BENCHMARKS.md.

Figures:
 1. appends/s, one event per transaction, 1 writer      vs plain psycopg INSERT+COMMIT     (>= 0.6)
 2. the same with 8 writer processes                     vs plain psycopg, 8 processes     (>= 0.6)
 3. appends/s, 100 events per transaction                vs plain psycopg executemany      (>= 0.7)
 4. 1-3 against the `eventsourcing` library's PostgreSQL recorder                          (>= 1.5x)
 5. relay throughput to Kafka                            vs bare kafka-python producer     (>= 0.7)
 6. commit-to-projection lag at 200 events/s (p50, p99)  vs bare producer->consumer lag    (p99 < 500 ms)
 7. replay rate of customers.timeline and .directory     vs plain psycopg read + COPY      (>= 20,000/s)
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import multiprocessing as mp
import os
import platform
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ["DJANGO_SETTINGS_MODULE"] = "contactcenter.settings"
os.environ.setdefault("DEBUG", "false")  # production-like: no query log in memory

from events.registry import event, pii  # noqa: E402  (needs no Django setup)

DOCS = REPO / "docs" / "BENCHMARKS.md"
START_MARK = "<!-- bench-events:results:start -->"
END_MARK = "<!-- bench-events:results:end -->"
WRITERS = 8
STREAMS = 1000


# --- the bench event types (registered here, in this process and its workers only) ---------------


@event("bench.CallSampled", version=1, emitted_by="bench/events_bench.py")
@dataclass(frozen=True)
class CallSampled:
    """A quality sample of a call (benchmark only; no personal data)."""

    seq: int
    queue: str
    agent: str
    skill: str
    priority: int
    wait_ms: int
    talk_ms: int
    outcome: str
    tags: tuple
    note: str


@event("bench.CallSampledPersonal", version=1, emitted_by="bench/events_bench.py")
@dataclass(frozen=True)
class CallSampledPersonal:
    """The same sample with the caller's name, a personal field (encrypted per customer)."""

    seq: int
    queue: str
    agent: str
    skill: str
    priority: int
    wait_ms: int
    talk_ms: int
    outcome: str
    tags: tuple
    note: str
    caller_name: str = pii()


_NOTE = "Customer asked about the invoice of last month; agent explained the pro-rata charge and offered a "
_NOTE = (_NOTE * 2)[:112]


def payload(i: int) -> dict:
    """The ~300-byte JSON payload every benchmark writes (same dict for ours, plain SQL and eventsourcing)."""
    return {
        "seq": i, "queue": "billing-en", "agent": f"agent-{i % 97:04d}", "skill": "billing", "priority": i % 5,
        "wait_ms": 1000 + i % 60000, "talk_ms": 30000 + i % 600000, "outcome": "resolved",
        "tags": ["callback", "vip"], "note": _NOTE,
    }


def sample(i: int) -> CallSampled:
    p = payload(i)
    p["tags"] = tuple(p["tags"])
    return CallSampled(**p)


def sample_personal(i: int) -> CallSampledPersonal:
    p = payload(i)
    p["tags"] = tuple(p["tags"])
    return CallSampledPersonal(**p, caller_name=f"Caller Number {i}")


ACTOR_JSON = json.dumps({"type": "system"})
_PLAIN_COLUMNS = ("event_id, event_type, schema_version, stream_type, stream_id, stream_version, customer_id, "
                  "occurred_at, recorded_at, correlation_id, causation_id, actor, channel, data")
PLAIN_INSERT = (f"INSERT INTO bench_plain ({_PLAIN_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now(), %s, %s, %s, %s, %s)")


def plain_row(uuid7, stream_id, version, customer_id, i, now):
    return (uuid7(), CallSampled.event_type, 1, "bench", stream_id, version, customer_id, now, None, None,
            ACTOR_JSON, "", json.dumps(payload(i)))


# --- small helpers -------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def db_url_with_name(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * q // 100))  # ceil
    return ordered[int(rank) - 1]


def fmt_rate(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.0f}/s"


def fmt_ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 1000:,.1f} ms"


@dataclass
class Row:
    """One line of the results table: our figure beside one baseline."""

    section: str
    figure: str
    ours: float | None
    baseline_name: str
    baseline: float | None
    target: str
    passed: bool | None  # None: for information
    ratio: float | None = None
    unit: str = "rate"  # "rate" or "seconds"
    note: str = ""

    def fmt(self, v):
        return fmt_rate(v) if self.unit == "rate" else fmt_ms(v)

    @property
    def result(self) -> str:
        return "info" if self.passed is None else ("PASS" if self.passed else "FAIL")


@dataclass
class Bench:
    args: argparse.Namespace
    admin_url: str
    url: str = ""
    dbname: str = ""
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="events-bench-")))
    es_params: dict = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "-"
        log(f"  => {row.figure}: ours {row.fmt(row.ours)} | {row.baseline_name} {row.fmt(row.baseline)} | "
            f"ratio {ratio} | target {row.target} | {row.result}")

    def detail(self, text: str) -> None:
        self.details.append(text)
        log(f"     {text}")


# --- database set-up -----------------------------------------------------------------------------


def create_database(b: Bench) -> None:
    import psycopg

    b.dbname = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(b.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{b.dbname}"')
    b.url = db_url_with_name(b.admin_url, b.dbname)
    os.environ["DATABASE_URL"] = b.url  # read by settings at django.setup(), here and in every child
    parts = urlsplit(b.url)
    b.es_params = {"dbname": b.dbname, "host": parts.hostname or "127.0.0.1", "port": parts.port or 5432,
                   "user": parts.username or "postgres", "password": parts.password or ""}
    log(f"created database {b.dbname}")


def drop_database(b: Bench) -> None:
    import psycopg

    if not b.dbname:
        return
    try:
        from django.db import connections

        connections.close_all()
    except Exception:
        pass
    with psycopg.connect(b.admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{b.dbname}" WITH (FORCE)')
    log(f"dropped database {b.dbname}")


def setup_schema(b: Bench) -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    import psycopg

    with psycopg.connect(b.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_plain (LIKE events_event INCLUDING ALL)")
        conn.execute("CREATE TABLE bench_replay_copy (LIKE events_event INCLUDING ALL)")
        conn.execute("CREATE SCHEMA es_bench")
    if not b.args.skip_peer:
        ds, rec = es_recorder(b.es_params)
        rec.create_table()
        ds.close()
    log("migrated; created bench_plain, bench_replay_copy and the eventsourcing tables (schema es_bench)")


def es_recorder(params: dict):
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    ds = PostgresDatastore(**params, schema="es_bench", pool_size=1)
    return ds, PostgresApplicationRecorder(ds, events_table_name="stored_events")


def reset_tables(url: str) -> None:
    """Empty every table a measurement writes, then CHECKPOINT so each run starts from the same state."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE (schemaname = 'public' AND "
            "(tablename LIKE 'events\\_%' OR tablename LIKE 'customers\\_%' OR tablename LIKE 'bench\\_%')) "
            "OR schemaname = 'es_bench'").fetchall()]
        conn.execute("TRUNCATE " + ", ".join(tables))
        conn.execute("CHECKPOINT")


def code_fingerprint() -> str:
    """A hash of the code under test, to tell when it changed while the benchmark ran."""
    import hashlib

    h = hashlib.sha1()
    for d in ("events", "customers", "contactcenter", "bench"):
        for path in sorted((REPO / d).rglob("*.py")):
            h.update(str(path.relative_to(REPO)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "events", "customers", "contactcenter"],
                               cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev or "unknown") + (" with uncommitted changes to events/, customers/ or contactcenter/" if dirty else "")


def server_settings(url: str) -> dict:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        out = {}
        for name in ("server_version", "fsync", "synchronous_commit", "full_page_writes", "shared_buffers",
                     "wal_sync_method"):
            out[name] = conn.execute(f"SHOW {name}").fetchone()[0]
        return out


# --- the write workloads (run in this process for 1 writer, in WRITERS processes for 8) -----------


def streams_for(n: int) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    from events.store import uuid7

    return [uuid7() for _ in range(n)], [uuid7() for _ in range(n)]


def run_writes(mode: str, streams: list, customers: list, n: int, batch: int, ctx: dict) -> tuple[int, float, float]:
    """Append `n` events, `batch` per transaction, round-robin over `streams`; returns (events, t0, t1).

    Modes: "ours", "ours-pii" (events with an encrypted personal field), "plain", "es" (eventsourcing).
    The timed part is the loop only: connections are open before it starts.
    """
    from events.store import uuid7

    versions = [0] * len(streams)
    txns = n // batch
    if mode in ("ours", "ours-pii"):
        from django.db import connection, transaction

        from events import store

        make = sample if mode == "ours" else sample_personal
        connection.ensure_connection()
        if ctx.get("barrier"):
            ctx["barrier"].wait()
        t0 = time.monotonic()
        seq = 0
        for t in range(txns):
            k = t % len(streams)
            events = [make(seq + j) for j in range(batch)]
            seq += batch
            with transaction.atomic():
                store.append(stream_type="bench", stream_id=streams[k], customer_id=customers[k], events=events,
                             expected_version=versions[k])
            versions[k] += batch
        t1 = time.monotonic()
    elif mode == "plain":
        import psycopg

        conn = psycopg.connect(os.environ["DATABASE_URL"])
        if ctx.get("barrier"):
            ctx["barrier"].wait()
        t0 = time.monotonic()
        seq = 0
        for t in range(txns):
            k = t % len(streams)
            now = dt.datetime.now(dt.UTC)
            if batch == 1:
                versions[k] += 1
                conn.execute(PLAIN_INSERT, plain_row(uuid7, streams[k], versions[k], customers[k], seq, now))
            else:
                rows = [plain_row(uuid7, streams[k], versions[k] + j + 1, customers[k], seq + j, now)
                        for j in range(batch)]
                versions[k] += batch
                with conn.cursor() as cur:
                    cur.executemany(PLAIN_INSERT, rows)
            seq += batch
            conn.commit()
        t1 = time.monotonic()
        conn.close()
    elif mode == "es":
        from eventsourcing.persistence import StoredEvent

        ds, rec = ctx.get("es") or es_recorder(ctx["es_params"])
        rec.max_notification_id()  # opens the pool's connection before timing
        if ctx.get("barrier"):
            ctx["barrier"].wait()
        t0 = time.monotonic()
        seq = 0
        for t in range(txns):
            k = t % len(streams)
            stored = [StoredEvent(originator_id=streams[k], originator_version=versions[k] + j + 1,
                                  topic="bench.events_bench:CallSampled", state=json.dumps(payload(seq + j)).encode())
                      for j in range(batch)]
            rec.insert_events(stored)
            versions[k] += batch
            seq += batch
        t1 = time.monotonic()
        if not ctx.get("es"):
            ds.close()
    else:
        raise ValueError(mode)
    return txns * batch, t0, t1


def _writer_main(conn, barrier, es_params: dict, skip_peer: bool) -> None:
    """A writer process: its own django.setup(), then runs the workloads the parent sends."""
    import django

    django.setup()
    es = None if skip_peer else es_recorder(es_params)
    ctx = {"barrier": barrier, "es": es}
    conn.send(("ready", os.getpid()))
    while True:
        cmd = conn.recv()
        if cmd is None:
            break
        mode, streams, customers, n, batch = cmd
        try:
            conn.send(("ok", run_writes(mode, streams, customers, n, batch, ctx)))
        except BaseException:
            conn.send(("error", traceback.format_exc()))
            try:
                barrier.abort()
            except Exception:
                pass
    if es:
        es[0].close()


class WriterPool:
    """WRITERS persistent processes (spawned), started once and reused for every 8-writer measurement."""

    def __init__(self, b: Bench):
        ctx = mp.get_context("spawn")
        self.barrier = ctx.Barrier(WRITERS + 1)
        self.conns, self.procs = [], []
        for i in range(WRITERS):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_writer_main, args=(child, self.barrier, b.es_params, b.args.skip_peer),
                            name=f"bench-writer-{i}", daemon=True)
            p.start()
            self.conns.append(parent)
            self.procs.append(p)
        for c in self.conns:  # every writer has done its django.setup(): nothing else competes for the CPU
            if not c.poll(180):
                raise RuntimeError("a writer process did not start within 180 s")
            status, _ = c.recv()
            if status != "ready":
                raise RuntimeError(f"writer process failed to start: {status}")

    def run(self, mode: str, streams: list, customers: list, n_total: int, batch: int) -> tuple[int, float]:
        per = n_total // WRITERS
        for i, c in enumerate(self.conns):
            c.send((mode, streams[i::WRITERS], customers[i::WRITERS], per, batch))
        self.barrier.wait(timeout=120)  # every writer has its connection open
        results = []
        for c in self.conns:
            status, value = c.recv()
            if status != "ok":
                raise RuntimeError(f"writer failed:\n{value}")
            results.append(value)
        self.barrier.reset()
        total = sum(r[0] for r in results)
        elapsed = max(r[2] for r in results) - min(r[1] for r in results)
        return total, elapsed

    def close(self) -> None:
        for c in self.conns:
            try:
                c.send(None)
            except Exception:
                pass
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.terminate()


def median(values: list[float]) -> float:
    return statistics.median(values)


def measure_writes(b: Bench, pool: WriterPool | None) -> None:
    a = b.args
    modes = ["plain", "ours"] + ([] if a.skip_peer else ["es"])
    streams, customers = streams_for(STREAMS)
    plans = [
        ("1", "appends/s, 1 event/txn, 1 writer", 1, a.n_single, 1),
        ("2", f"appends/s, 1 event/txn, {WRITERS} writers", WRITERS, a.n_concurrent, 1),
        ("3", "appends/s, 100 events/txn, 1 writer", 1, a.n_batched, 100),
    ]
    # Warm-up (not measured): every code path, connection and cache, and the WAL segments the runs recycle.
    for mode in modes:
        reset_tables(b.url)
        run_writes(mode, streams, customers, 500, 1, {"es_params": b.es_params})
        run_writes(mode, streams[500:], customers[500:], 5000, 100, {"es_params": b.es_params})
    for section, title, writers, n, batch in plans:
        if section not in a.only:
            continue
        log(f"[{section}] {title}: {n:,} events per run, {a.rounds} round(s), modes {', '.join(modes)}")
        rates: dict[str, list[float]] = {m: [] for m in modes}
        for rnd in range(a.rounds):
            order = modes if rnd % 2 == 0 else list(reversed(modes))
            for mode in order:
                reset_tables(b.url)
                if writers == 1:
                    count, t0, t1 = run_writes(mode, streams, customers, n, batch, {"es_params": b.es_params})
                    elapsed = t1 - t0
                else:
                    count, elapsed = pool.run(mode, streams, customers, n, batch)
                rate = count / elapsed
                log(f"    round {rnd + 1} {mode:6s} {count:,} events in {elapsed:.2f}s = {rate:,.0f}/s")
                rates[mode].append(rate)
        mid = {m: median(v) for m, v in rates.items()}
        b.detail(f"#{section} rounds (events/s): " + "; ".join(
            f"{m} {', '.join(f'{r:,.0f}' for r in v)}" for m, v in rates.items()))
        ratio = mid["ours"] / mid["plain"]
        target = 0.7 if batch > 1 else 0.6
        base_name = f"plain psycopg{f', {WRITERS} processes' if writers > 1 else ''}"
        b.add(Row(section, title, mid["ours"], base_name, mid["plain"], f">= {target}", ratio >= target, ratio))
        if "es" in mid:
            r = mid["ours"] / mid["es"]
            b.add(Row("4", f"{title} (peer)", mid["ours"], "eventsourcing 9.5.6", mid["es"], ">= 1.5", r >= 1.5, r))
        if section == "1":
            # For information: the same with a personal-data field (encrypted with the customer's key).
            reset_tables(b.url)
            count, t0, t1 = run_writes("ours-pii", streams, customers, n, 1, {})
            rate = count / (t1 - t0)
            b.add(Row("1", "appends/s, 1 event/txn, with an encrypted personal field", rate, "plain psycopg",
                      mid["plain"], "info", None, rate / mid["plain"]))


# --- 5. relay throughput -------------------------------------------------------------------------


def fill_store(n: int, customers: int, *, batch: int = 100, registered: bool = False, txn_appends: int = 10) -> None:
    """Append n events fast: `batch` per append, `txn_appends` appends per transaction, customers round-robin.

    With `registered`, each customer's first event is a customers.CustomerRegistered on its customer stream
    (personal data encrypted), the rest are bench events on a bench stream of that customer.
    """
    from django.db import transaction

    from customers.events import CustomerRegistered
    from events import store

    cust = [store.uuid7() for _ in range(customers)]
    bench_streams = [store.uuid7() for _ in range(customers)]
    versions = [0] * customers
    done = 0
    if registered:
        for start in range(0, customers, 100):
            with transaction.atomic():
                for k in range(start, min(customers, start + 100)):
                    store.append(stream_type="customer", stream_id=cust[k], customer_id=cust[k], expected_version=0,
                                 events=[CustomerRegistered(display_name=f"Customer {k}", email=f"c{k}@example.com",
                                                            phone=None, preferred_channel="chat")])
        done = customers
    k = 0
    while done < n:
        with transaction.atomic():
            for _ in range(txn_appends):
                size = min(batch, n - done)
                if size <= 0:
                    break
                store.append(stream_type="bench", stream_id=bench_streams[k], customer_id=cust[k],
                             events=[sample(done + j) for j in range(size)], expected_version=versions[k])
                versions[k] += size
                done += size
                k = (k + 1) % customers


def kafka_producer_like_relay():
    """A bare KafkaProducer with the settings of events/kafka.py producer()."""
    from django.conf import settings
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=list(settings.KAFKA_BOOTSTRAP_SERVERS), client_id="bench-bare-producer",
        enable_idempotence=True, acks="all", linger_ms=5, batch_size=256 * 1024, compression_type=None,
        allow_auto_create_topics=False, max_block_ms=10_000, delivery_timeout_ms=30_000,
        request_timeout_ms=10_000, reconnect_backoff_max_ms=2_000,
    )


def kafka_consumer_like_projector():
    """A bare KafkaConsumer with the settings of events/kafka.py consumer()."""
    from django.conf import settings
    from kafka import KafkaConsumer

    return KafkaConsumer(
        bootstrap_servers=list(settings.KAFKA_BOOTSTRAP_SERVERS), client_id="bench-bare-consumer", group_id=None,
        enable_auto_commit=False, auto_offset_reset="earliest", allow_auto_create_topics=False,
        max_poll_records=settings.PROJECTOR_BATCH_SIZE, fetch_max_wait_ms=100,
        request_timeout_ms=10_000, reconnect_backoff_max_ms=2_000,
    )


def new_topic(prefix: str) -> str:
    return f"bench.{prefix}.{int(time.time())}.{secrets.token_hex(3)}"


def create_topic(topic: str) -> None:
    from django.conf import settings

    from events import kafka

    admin = kafka.admin_client()
    try:
        kafka.create_topic(admin, topic, settings.KAFKA_EVENTS_PARTITIONS)
    finally:
        admin.close()


def measure_relay(b: Bench) -> None:
    from django.conf import settings
    from django.db import connection

    from events.relay import Relay

    n = b.args.n_relay
    log(f"[5] relay throughput: {n:,} events, {b.args.relay_rounds} round(s)")
    reset_tables(b.url)
    fill_store(n, 2000)
    with connection.cursor() as cur:
        cur.execute("SELECT coalesce(customer_id, stream_id)::text, row_to_json(e)::text FROM events_event e "
                    "ORDER BY position")
        messages = [(k.encode(), v.encode()) for k, v in cur.fetchall()]
    avg = sum(len(v) for _, v in messages) / len(messages)
    b.detail(f"relay: {len(messages):,} messages, {avg:.0f} bytes average value (row_to_json of events_event)")
    ours_rates: list[float] = []
    bare_rates: list[float] = []
    for rnd in range(b.args.relay_rounds):
        for which in (("bare", "ours") if rnd % 2 == 0 else ("ours", "bare")):
            if which == "ours":
                # A fresh topic: the relay creates it and queues the whole history in the outbox (new epoch).
                settings.KAFKA_EVENTS_TOPIC = new_topic("relay")
                relay = Relay()
                relay.connect()
                with connection.cursor() as cur:
                    cur.execute("CHECKPOINT")
                    cur.execute("SELECT count(*) FROM events_outbox")
                    queued = cur.fetchone()[0]
                t0 = time.monotonic()
                published = 0
                while (got := relay.publish_batch()):
                    published += got
                elapsed = time.monotonic() - t0
                relay.close()
                with connection.cursor() as cur:
                    cur.execute("SELECT count(*) FROM events_outbox")
                    left = cur.fetchone()[0]
                if published != queued or left:
                    raise RuntimeError(f"relay published {published} of {queued}, {left} left in the outbox")
                rate = published / elapsed
                ours_rates.append(rate)
            else:
                topic = new_topic("bare")
                create_topic(topic)
                producer = kafka_producer_like_relay()
                producer.partitions_for(topic)  # metadata before timing, as the relay's connect() does
                t0 = time.monotonic()
                futures = [producer.send(topic, key=k, value=v) for k, v in messages]
                producer.flush(timeout=60)
                for f in futures:
                    f.get(timeout=0)
                elapsed = time.monotonic() - t0
                producer.close(timeout=5)
                rate = len(messages) / elapsed
                bare_rates.append(rate)
            log(f"    round {rnd + 1} {which:5s} {rate:,.0f}/s ({elapsed:.2f}s)")
    best_ours, best_bare = median(ours_rates), median(bare_rates)
    ratio = best_ours / best_bare
    b.detail("#5 rounds (events/s): ours " + ", ".join(f"{r:,.0f}" for r in ours_rates)
             + "; bare " + ", ".join(f"{r:,.0f}" for r in bare_rates))
    b.add(Row("5", "relay to Kafka, events/s", best_ours, "bare kafka-python producer", best_bare, ">= 0.7",
              ratio >= 0.7, ratio))


# --- 6. commit-to-projection lag -----------------------------------------------------------------


class Proc:
    def __init__(self, name: str, cmd: list[str], env: dict, logdir: Path):
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class Poller(threading.Thread):
    """Every ~2 ms, on its own connection: which of the committed positions are in customers_timelineentry now.

    Each poll asks only for positions above the lowest committed one not seen yet, so it stays cheap.
    """

    def __init__(self, url: str, floor: int = 0, interval: float = 0.002):
        super().__init__(name="bench-poller", daemon=True)
        self.url = url
        self.floor = floor
        self.interval = interval
        self.committed: deque[int] = deque()  # positions as their commits return, fed by the writers
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.polls = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        import heapq

        import psycopg

        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                unseen: list[int] = []  # heap of committed positions not seen yet
                top = self.floor
                while not self.stop.is_set():
                    while self.committed:
                        p = self.committed.popleft()
                        top = max(top, p)
                        if p not in self.seen:
                            heapq.heappush(unseen, p)
                    while unseen and unseen[0] in self.seen:
                        heapq.heappop(unseen)
                    floor = unseen[0] - 1 if unseen else top
                    rows = conn.execute("SELECT position FROM customers_timelineentry WHERE position > %s",
                                        [floor], prepare=True).fetchall()
                    now = time.monotonic()
                    self.polls += 1
                    for (p,) in rows:
                        self.seen.setdefault(p, now)
                    time.sleep(self.interval)
        except BaseException as exc:  # reported by the caller
            self.error = exc


def paced(rate: float, seconds: float, action, threads: int = 1) -> tuple[int, float]:
    """Call action(i) on a fixed schedule (i / rate seconds after the start) for `seconds`.

    With threads > 1, call i runs on thread i % threads, so one slow call does not hold up the next
    (as with concurrent API requests); returns (calls, elapsed).
    """
    total = int(rate * seconds)
    start = time.monotonic() + 0.05
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            for i in range(w, total, threads):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                action(i)
        except BaseException as exc:
            errors.append(exc)
        finally:
            if threads > 1:
                from django.db import connection

                connection.close()

    if threads == 1:
        worker(0)
    else:
        pool = [threading.Thread(target=worker, args=(w,), name=f"bench-paced-{w}") for w in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    if errors:
        raise errors[0]
    return total, time.monotonic() - start


def measure_lag(b: Bench) -> None:
    from customers.services import customer_register
    from events.store import Metadata

    rate, seconds = b.args.lag_rate, b.args.lag_seconds
    log(f"[6] commit-to-projection lag: {rate}/s for {seconds:.0f}s, run_relay + run_projector customers.timeline")
    reset_tables(b.url)
    topic = new_topic("lag")
    env = {**os.environ, "DATABASE_URL": b.url, "KAFKA_EVENTS_TOPIC": topic, "LOG_LEVEL": "WARNING",
           "DEBUG": "false", "PYTHONUNBUFFERED": "1"}
    procs = [Proc("relay", [sys.executable, "manage.py", "run_relay"], env, b.tmp),
             Proc("projector", [sys.executable, "manage.py", "run_projector", "customers.timeline"], env, b.tmp)]
    poller = None
    meta = Metadata(channel="chat")
    try:
        import psycopg

        # Ready: the relay made the topic, and a few warm-up registrations reach the timeline.
        with psycopg.connect(b.url, autocommit=True) as conn:
            deadline = time.monotonic() + 60
            while True:
                for p in procs:
                    p.check()
                row = conn.execute("SELECT topic FROM events_relay_state WHERE id = 1").fetchone()
                if row and row[0] == topic:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("relay did not create its topic within 60 s")
                time.sleep(0.1)
            warm = [customer_register(display_name=f"Warm {i}", email=None, meta=meta).positions[0]
                    for i in range(20)]
            while conn.execute("SELECT count(*) FROM customers_timelineentry WHERE position = ANY(%s)",
                               [warm]).fetchone()[0] < len(warm):
                for p in procs:
                    p.check()
                if time.monotonic() > deadline:
                    raise RuntimeError("warm-up events did not reach the timeline within 60 s")
                time.sleep(0.05)
        committed: dict[int, float] = {}
        poller = Poller(b.url, floor=max(warm))
        poller.start()

        def register(i: int) -> None:
            res = customer_register(display_name=f"Bench Customer {i}", email=f"bench{i}@example.com",
                                    phone=None, preferred_channel="chat", meta=meta)
            committed[res.positions[0]] = time.monotonic()
            poller.committed.append(res.positions[0])

        count, elapsed = paced(rate, seconds, register, threads=b.args.lag_writers)
        achieved = count / elapsed
        deadline = time.monotonic() + 30
        while any(p not in poller.seen for p in committed) and time.monotonic() < deadline:
            time.sleep(0.05)
        poller.stop.set()
        poller.join(5)
        if poller.error:
            raise poller.error
        for p in procs:
            p.check()
        lags = [poller.seen[p] - t for p, t in committed.items() if p in poller.seen]
        missing = len(committed) - len(lags)
    finally:
        if poller:
            poller.stop.set()
        for p in procs:
            p.stop()
    b.detail(f"lag: {count:,} customer_register() calls from {b.args.lag_writers} threads, {rate}/s offered, "
             f"{achieved:.0f}/s achieved; {poller.polls:,} polls "
             f"({poller.polls / max(elapsed, 1e-9):.0f}/s), {missing} never seen within 30 s; "
             f"max {max(lags) * 1000:.0f} ms")
    if missing:
        b.detail(f"lag: {missing} events did not reach the projection: counted as failures")

    base = bare_kafka_lag(rate, seconds)
    p50, p99 = percentile(lags, 50), percentile(lags, 99)
    ok = not missing and p99 < 0.5
    at = f"{rate}/s" if achieved >= 0.95 * rate else f"{rate}/s offered, {achieved:.0f}/s achieved"
    b.add(Row("6", f"commit-to-projection lag p50 at {at}", p50, "bare producer->consumer", base[0],
              "info", None, None, unit="seconds"))
    b.add(Row("6", f"commit-to-projection lag p99 at {at}", p99, "bare producer->consumer", base[1],
              "p99 < 500 ms", ok, None, unit="seconds"))


def bare_kafka_lag(rate: float, seconds: float) -> tuple[float, float]:
    """Produce->consume latency of a bare kafka-python pair at the same rate (same client settings)."""
    from kafka import TopicPartition

    topic = new_topic("lagbare")
    create_topic(topic)
    producer = kafka_producer_like_relay()
    consumer = kafka_consumer_like_projector()
    parts = sorted(consumer.partitions_for_topic(topic) or [])
    consumer.assign([TopicPartition(topic, p) for p in parts])
    sent: dict[int, float] = {}
    got: dict[int, float] = {}
    stop = threading.Event()
    value = json.dumps({"data": payload(0), "pad": "x" * 500}).encode()  # about the size of a relayed event

    def consume() -> None:
        while not stop.is_set():
            polled = consumer.poll(timeout_ms=500)
            now = time.monotonic()
            for recs in polled.values():
                for r in recs:
                    got.setdefault(int(r.headers[0][1]), now)

    t = threading.Thread(target=consume, name="bench-bare-consumer", daemon=True)
    t.start()
    try:
        # Warm-up: the consumer sees messages before the measured run starts.
        for i in range(-20, 0):
            producer.send(topic, key=str(i).encode(), value=value, headers=[("i", str(i).encode())])
        producer.flush()
        deadline = time.monotonic() + 30
        while len(got) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)

        def send(i: int) -> None:
            producer.send(topic, key=str(uuid.uuid4()).encode(), value=value, headers=[("i", str(i).encode())])
            sent[i] = time.monotonic()

        paced(rate, seconds, send)
        producer.flush()
        deadline = time.monotonic() + 30
        while any(i not in got for i in sent) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        t.join(5)
        producer.close(timeout=5)
        consumer.close()
    lags = [got[i] - s for i, s in sent.items() if i in got]
    return percentile(lags, 50), percentile(lags, 99)


# --- 7. replay -----------------------------------------------------------------------------------


def measure_replay(b: Bench) -> None:
    import psycopg
    from django.db import connection

    from events.projection import get
    from events.replay import replay

    n = b.args.n_replay
    log(f"[7] replay: filling {n:,} events over 2,000 customers")
    reset_tables(b.url)
    t0 = time.monotonic()
    fill_store(n, 2000, batch=33, registered=True)
    log(f"    filled in {time.monotonic() - t0:.1f}s")
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE events_event")  # hint bits set here, not by whichever reads first
        cur.execute("CHECKPOINT")
        cur.execute("SELECT count(*) FROM events_event")
        total = cur.fetchone()[0]

    # Baseline: plain psycopg reads every row in position order (5,000 at a time) and COPYs them into a
    # table of the same shape, one transaction per batch.
    from psycopg.types.string import TextLoader

    t0 = time.monotonic()
    copied = 0
    with psycopg.connect(b.url) as conn:
        for oid_name in ("json", "jsonb"):
            conn.adapters.register_loader(oid_name, TextLoader)
        last = 0
        while True:
            rows = conn.execute(f"SELECT {_PLAIN_COLUMNS}, position FROM events_event WHERE position > %s "
                                "ORDER BY position LIMIT 5000", [last]).fetchall()
            if not rows:
                break
            with conn.cursor().copy(f"COPY bench_replay_copy ({_PLAIN_COLUMNS}, position) FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)
            conn.commit()
            copied += len(rows)
            last = rows[-1][-1]
    base_rate = copied / (time.monotonic() - t0)
    log(f"    baseline read+COPY {copied:,} rows: {base_rate:,.0f}/s")

    for name in ("customers.timeline", "customers.directory"):
        with connection.cursor() as cur:
            cur.execute("CHECKPOINT")
        t0 = time.monotonic()
        applied = replay(get(name), progress=False)
        elapsed = time.monotonic() - t0
        rate = total / elapsed
        log(f"    replay {name}: {total:,} events ({applied:,} applied) in {elapsed:.2f}s = {rate:,.0f}/s")
        b.add(Row("7", f"replay {name}, events/s", rate, "plain psycopg read + COPY", base_rate, ">= 20,000/s",
                  rate >= 20_000, rate / base_rate))
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM customers_timelineentry")
        timeline = cur.fetchone()[0]
        cur.execute("SELECT count(*), sum(event_count) FROM customers_customerprofile")
        profiles, counted = cur.fetchone()
    b.detail(f"replay: {total:,} events -> {timeline:,} timeline entries, {profiles:,} profiles "
             f"counting {counted or 0:,} events")
    if timeline != total or profiles != 2000:
        raise RuntimeError("replay did not produce the expected read models")


# --- report --------------------------------------------------------------------------------------


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, AttributeError):
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "memory": mem, "python": platform.python_version(),
            "kernel": platform.release()}


def table(rows: list[Row]) -> list[str]:
    head = ["#", "figure", "ours", "baseline", "baseline value", "ratio", "target", "result"]
    body = [[r.section, r.figure, r.fmt(r.ours), r.baseline_name, r.fmt(r.baseline),
             "-" if r.ratio is None else f"{r.ratio:.2f}", r.target, r.result] for r in rows]
    return [head, *body]


def print_table(rows: list[Row]) -> None:
    t = table(rows)
    widths = [max(len(str(line[i])) for line in t) for i in range(len(t[0]))]
    right = {2, 4, 5}
    out = io.StringIO()
    for n, line in enumerate(t):
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        out.write("  ".join(cells).rstrip() + "\n")
        if n == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")
    print(out.getvalue(), flush=True)


HOW = """\
### How each figure is measured

All write figures use a bench event type (`bench.CallSampled`, registered by the script, no personal
data) with a JSON payload of about 300 bytes and a customer id. After an unmeasured warm-up of every
path, each figure is measured in 4 rounds; every run starts from emptied tables after a `CHECKPOINT`,
ours and its baselines run one after the other and swap order every round, and the median of the
rounds is reported (all rounds are listed under "Details of this run").

1. **Appends, 1 event per transaction, 1 writer.** Ours: `events.store.append()` of one event inside
   `django.db.transaction.atomic()`, round-robin over 1,000 streams with the expected version tracked
   (the first pass creates the streams); it checks the expected version and writes the event and its
   outbox row.
   Baseline: plain psycopg `INSERT` of a row of the same columns and values + `COMMIT` into
   `bench_plain` (`CREATE TABLE bench_plain (LIKE events_event INCLUDING ALL)`, so the same indexes).
   The extra line appends an event with an encrypted personal field (per-customer key: one key
   lookup per append), for information.
2. **The same with 8 writers.** 8 spawned processes (each with its own `django.setup()` and
   connection), each round-robin over its own 125 of the 1,000 streams, started together at a
   barrier; rate = all events / (last finish - first start). The baseline runs in the same 8
   processes.
3. **100 events per transaction.** Ours: one `append()` of 100 events to one stream per
   transaction. Baseline: psycopg `executemany` of 100 rows (pipelined) + `COMMIT`.
4. **Peer: `eventsourcing` 9.5.6.** Its `PostgresApplicationRecorder` (psycopg 3) in its own schema
   `es_bench` on the same database, `insert_events()` with `StoredEvent`s (state = the same JSON
   payload as bytes, serialised in the timed loop like ours), one or 100 per call, same streams and
   the same 1/8 processes. Its recorder takes an `EXCLUSIVE` table lock per insert (to keep
   notification ids in commit order), so its writers serialise.
5. **Relay.** The store is filled with the events (2,000 customers), `events.relay.Relay` is given a
   fresh topic; after `connect()` (which creates the topic and queues the history in the outbox) it
   is timed calling `publish_batch()` until the outbox is empty (select, send, wait for every ack,
   delete the outbox rows). Baseline: a bare kafka-python `KafkaProducer` with the relay's settings
   (`acks='all'`, idempotent, `linger_ms=5`, `batch_size=256 KiB`) sending the same keys and values
   (`row_to_json(e)::text`, read beforehand) to another fresh topic with the same partition count,
   then `flush()`. 2 rounds each, alternating order; the median (of two: the mean) is reported.
6. **Commit-to-projection lag.** `manage.py run_relay` and `manage.py run_projector
   customers.timeline` run as separate processes on the bench database and a fresh topic.
   `customers.services.customer_register()` (a new customer: key, encrypted event, customer row) is
   called on a fixed schedule of 200/s for 20 s, spread over 4 threads so that one slow commit does
   not delay the next call (as with concurrent API requests); the monotonic time right after each
   commit is recorded, and a thread polls `customers_timelineentry` every ~2 ms on its own
   connection (positions above the lowest one not seen yet); lag = first seen - committed. Baseline: a bare kafka-python producer/consumer pair
   (the relay's producer settings, the projector's consumer settings, no consumer group) at the
   same rate for the same time; lag = consumed - sent.
7. **Replay.** The store is filled with one `customers.CustomerRegistered` per customer (2,000,
   personal data encrypted) and bench events for those customers (33 per append); then
   `events.replay.replay(get(NAME), progress=False)` is timed for `customers.timeline` and
   `customers.directory` (rate = events in the store / time). Baseline: plain psycopg reading the
   same rows in position order, 5,000 at a time, and `COPY`ing each batch into a table of the same
   shape, one transaction per batch. The target is absolute.
"""


def write_docs(b: Bench, info: dict, elapsed: float) -> None:
    m = info["machine"]
    s = info["server"]
    lines = [
        START_MARK,
        "## Results: `make bench-events`",
        "",
        "Generated by `bench/events_bench.py`; rerun `make bench-events` to replace this section.",
        "",
        f"- Date: {info['date']}",
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} memory, Linux {m['kernel']}, Python {m['python']}",
        f"- PostgreSQL {s['server_version']} (fsync={s['fsync']}, synchronous_commit={s['synchronous_commit']}, "
        f"full_page_writes={s['full_page_writes']}, shared_buffers={s['shared_buffers']}), Redis and the Kafka "
        "broker (Tansu) on the same machine; `make bench-events` starts them fresh (embedded, real fsync)",
        f"- Code: commit {info['revision']}",
        "- Command: `make bench-events` "
        "(`python -m contactcenter.devstack bench bench/events_bench.py`)",
        f"- Run time: {elapsed / 60:.1f} min (the whole benchmark, services started beforehand)",
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
    if DOCS.exists():
        text = DOCS.read_text()
        if START_MARK in text and END_MARK in text:
            pre, rest = text.split(START_MARK, 1)
            post = rest.split(END_MARK, 1)[1]
            text = pre + section + post
        else:
            text = text.rstrip() + "\n\n" + section + "\n"
    else:
        text = ("# Benchmarks\n\nMeasured figures of the event store, the outbox relay and the projections, "
                "each beside a baseline measured in the same run.\n\n" + section + "\n")
    DOCS.write_text(text)
    log(f"wrote the results section of {DOCS.relative_to(REPO)}")


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small counts for a smoke run (docs are not written)")
    p.add_argument("--rounds", type=int, help="rounds per write/relay figure (default 4, quick 1)")
    p.add_argument("--skip-peer", action="store_true", help="leave out the eventsourcing comparison")
    p.add_argument("--only", default="1,2,3,5,6,7", help="comma-separated figures to run (default all)")
    p.add_argument("--docs", choices=("auto", "yes", "no"), default="auto",
                   help="write docs/BENCHMARKS.md: auto = full run with fsync on only")
    a = p.parse_args(argv)
    q = a.quick
    a.rounds = a.rounds or (1 if q else 4)
    a.n_single = 1000 if q else 4000
    a.n_concurrent = 2000 if q else 6000
    a.n_batched = 5000 if q else 25000
    a.n_relay = 5000 if q else 50000
    a.relay_rounds = 1 if q else 2
    a.lag_rate = 200
    a.lag_seconds = 4.0 if q else 20.0
    a.lag_writers = 4
    a.n_replay = 20000 if q else 200000
    a.only = {s.strip() for s in a.only.split(",") if s.strip()}
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    if not args.skip_peer:
        try:
            import eventsourcing.postgres  # noqa: F401
        except ImportError:
            print("eventsourcing is not installed: pip install -r requirements-bench.txt "
                  "(or pass --skip-peer to leave out the comparison)", file=sys.stderr)
            return 2
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url or not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        print("set DATABASE_URL, REDIS_URL and KAFKA_BOOTSTRAP_SERVERS, or run `make bench-events`", file=sys.stderr)
        return 2
    b = Bench(args=args, admin_url=admin_url)
    pool = None
    info = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
            "revision": git_revision()}
    fingerprint = code_fingerprint()
    ok = True
    try:
        create_database(b)
        setup_schema(b)
        info["server"] = server_settings(b.url)
        s = info["server"]
        log(f"PostgreSQL {s['server_version']}: fsync={s['fsync']}, synchronous_commit={s['synchronous_commit']}")
        if s["fsync"] != "on" or s["synchronous_commit"] == "off":
            log("WARNING: this server does not flush commits to disk: figures are not representative")
        if "2" in args.only:
            pool = WriterPool(b)  # started once (and waited for), reused by every 8-writer run
        if args.only & {"1", "2", "3"}:
            measure_writes(b, pool)
        if pool:
            pool.close()
            pool = None
        if "5" in args.only:
            measure_relay(b)
        if "6" in args.only:
            measure_lag(b)
        if "7" in args.only:
            measure_replay(b)
    except BaseException:
        ok = False
        traceback.print_exc()
    finally:
        if pool:
            pool.close()
        try:
            drop_database(b)
        except Exception:
            traceback.print_exc()
    elapsed = time.monotonic() - started
    if code_fingerprint() != fingerprint:
        ok = False
        log("WARNING: the code under test changed while the benchmark ran: figures are not trustworthy")
    print()
    print(f"Event-store benchmark, {info['date']}, {info['machine']['nproc']} CPUs ({info['machine']['cpu']}), "
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
    write = args.docs == "yes" or (args.docs == "auto" and ok and not args.quick and durable
                                   and args.only == {"1", "2", "3", "5", "6", "7"})
    if write:
        write_docs(b, info, elapsed)
    else:
        log("docs/BENCHMARKS.md not updated (quick, partial, failed or non-durable run; --docs yes forces it)")
    failed = [r for r in b.rows if r.passed is False]
    if failed:
        print("FAILED targets: " + "; ".join(f"#{r.section} {r.figure}" for r in failed))
    return 0 if ok and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
