#!/usr/bin/env python
"""Intake benchmark: customer touches through the real ASGI server, and the first timeline page.

Run it with `make bench-intake` (throw-away PostgreSQL with real fsync, Redis and
the Tansu Kafka broker), or by hand against running services:

    DATABASE_URL=... REDIS_URL=... KAFKA_BOOTSTRAP_SERVERS=... python bench/intake_bench.py [--quick]

Like bench/events_bench.py (whose helpers it reuses) it never touches existing
data: it creates a database `bench_<random>`, migrates it, measures and drops
it. Every figure is printed beside a baseline measured in the same run; a full
run (not --quick) against a server with fsync on rewrites the
`bench-intake` section of docs/BENCHMARKS.md.

Figures:
 1. touches/s accepted by the signed webhooks (2 daphne processes), channel mix
    50% chat / 20% sms / 15% email / 10% voice / 5% social, paced at 300/s for 20 s,
    with p50/p99 response time          vs events.store.append of the equivalent MessageRecorded
                                           (one per transaction, 1 writer)   (>= 300/s, p99 < 100 ms)
 2. first timeline page (100 entries) of a customer with 10,000 touches, through the API, p50/p99
                                        vs the raw SQL query behind it (psycopg)           (p99 < 30 ms)
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import random
import secrets
import socket
import statistics
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
START_MARK = "<!-- bench-intake:results:start -->"
END_MARK = "<!-- bench-intake:results:end -->"
PROVIDER = "bench"
SECRET = secrets.token_hex(16)
MIX = [("chat", 50), ("sms", 20), ("email", 15), ("voice", 10), ("social", 5)]
WEB_PROCESSES = 2
TIMELINE_TOUCHES = 10_000
PAGE = 100  # TimelinePagination.page_size


# --- set-up ----------------------------------------------------------------------------------------


def setup_schema(b: Bench) -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    log("migrated")


def register_customers(n: int) -> list[dict]:
    """n customers, each with a phone, an email and an instagram handle linked (so every channel finds them)."""
    from customers.identity import identity
    from customers.services import customer_register
    from events.store import Metadata

    out = []
    for i in range(n):
        phone = f"+1415{5_000_000 + i:07d}"
        email = f"customer{i}@example.com"
        handle = f"bench_customer_{i}"
        r = customer_register(display_name=f"Customer {i}", email=email, phone=phone, meta=Metadata(),
                              identities=[identity("social", handle, provider="instagram")])
        out.append({"id": r.customer_id, "phone": phone, "email": email, "handle": handle})
    return out


def api_token() -> str:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_user(username="bench-agent", password=secrets.token_hex(8))
    return Token.objects.create(user=user).key


def start_servers(b: Bench) -> tuple[list[Proc], list[int]]:
    env = dict(os.environ, DATABASE_URL=b.url, DEBUG="false", ALLOWED_HOSTS="127.0.0.1",
               SECURE_SSL_REDIRECT="false", WEBHOOK_SECRETS=f"{PROVIDER}={SECRET}", LOG_LEVEL="WARNING",
               DB_CONN_MAX_AGE=str(b.args.conn_max_age))
    procs, ports = [], []
    for k in range(WEB_PROCESSES):
        port = eb_free_port()
        cmd = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "contactcenter.asgi:application"]
        procs.append(Proc(f"web-{k}", cmd, env, b.tmp))
        ports.append(port)
    deadline = time.monotonic() + 60
    for proc, port in zip(procs, ports, strict=True):
        while True:
            proc.check()
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/healthz", headers={"Host": "127.0.0.1"})
                c.getresponse().read()
                c.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{proc.name} did not answer:\n{proc.tail()}") from None
                time.sleep(0.2)
    log(f"started {WEB_PROCESSES} daphne processes on ports {ports}")
    return procs, ports


def eb_free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- figure 1: the touch mix ---------------------------------------------------------------------------

_TEXT = ["Hi, my invoice for last month looks wrong, can you check?", "Where is my order? Tracking says 'delayed' 📦",
         "I'd like to change my plan to the family bundle.", "Thanks, that solved it!",
         "Can someone call me back tomorrow morning?", "The app logs me out every time I open it."]


class Mix:
    """Builds the n payloads of the run, in order: (channel, body dict, equivalent message for the baseline)."""

    def __init__(self, customers: list[dict], seed: int, run: str):
        self.c = customers
        self.rnd = random.Random(seed)
        self.run = run
        self.emails: dict[int, list[str]] = {}  # customer -> Message-IDs sent so far (for replies)
        self.voice_k = 0
        self.calls: list[int] = []  # the customer of each call, by call number
        self.lag = 10  # a call's next event comes 10 voice slots (~1 s at 30 voice/s) after the previous one
        self.extra = 0
        self.channels = [ch for ch, w in MIX for _ in range(w)]

    def build(self, n: int) -> list[tuple[str, dict]]:
        out = []
        for i in range(n):
            ch = self.channels[self.rnd.randrange(100)]
            out.append((ch, getattr(self, ch)(i)))
        return out

    def _base(self, i: int) -> dict:
        return {"provider_message_id": f"{self.run}-{i}", "body": self.rnd.choice(_TEXT)}

    def chat(self, i):
        k = self.rnd.randrange(len(self.c))
        d = self._base(i)
        d.update(conversation_id=f"{self.run}-chat-{k}-{self.rnd.randrange(3)}",
                 **{"from": {"kind": "phone", "value": self.c[k]["phone"]}})
        return d

    def sms(self, i):
        k = self.rnd.randrange(len(self.c))
        d = self._base(i)
        d["from"] = {"kind": "phone", "value": self.c[k]["phone"]}
        return d

    def social(self, i):
        k = self.rnd.randrange(len(self.c))
        d = self._base(i)
        d.update(kind="dm", **{"from": {"kind": "social", "value": "@" + self.c[k]["handle"],
                                        "provider": "instagram"}})
        return d

    def email(self, i):
        k = self.rnd.randrange(len(self.c))
        d = self._base(i)
        mid = f"<{self.run}-{i}@mail.example.com>"
        sent = self.emails.setdefault(k, [])
        d.update(message_id=mid, subject="About my account", to=["support@example.com"],
                 **{"from": {"kind": "email", "value": self.c[k]["email"]}})
        if sent and self.rnd.random() < 0.5:
            d["in_reply_to"] = sent[-1]  # half are replies in an existing thread
        sent.append(mid)
        return d

    def voice(self, i):
        """Calls ring, are answered ~1 s later and end ~1 s after that (10 voice slots apart)."""
        k, self.voice_k = self.voice_k, self.voice_k + 1
        phase, m = k % 3, k // 3
        d = {"provider_message_id": f"{self.run}-{i}"}
        if phase == 1 and m >= self.lag:
            call = m - self.lag
            d.update(event="answered", agent_id=f"agent-{call % 40}")
        elif phase == 2 and m >= 2 * self.lag:
            call = m - 2 * self.lag
            d.update(event="ended", reason="resolved", duration_seconds=60 + call % 300)
        else:
            call = m if phase == 0 else f"x{k}"  # before the first calls can be answered: more ringing
            cust = self.rnd.randrange(len(self.c))
            if phase == 0:
                self.calls.append(cust)
            d.update(event="ringing", queue="support", **{"from": {"kind": "phone", "value": self.c[cust]["phone"]}})
        d["conversation_id"] = f"{self.run}-call-{call}"
        return d


def signed(ch: str, body: dict, ts: str) -> tuple[str, bytes, dict]:
    raw = json.dumps(body, ensure_ascii=False).encode()
    sig = hmac.new(SECRET.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
    return (f"/api/v1/webhooks/{ch}/{PROVIDER}/", raw,
            {"Content-Type": "application/json", "X-Timestamp": ts, "X-Signature": sig, "Host": "127.0.0.1"})


def paced_http(requests: list, ports: list[int], rate: float, threads: int):
    """Send request i at start + i/rate (thread i % threads, port i % len(ports)), each thread with its own
    keep-alive connections; returns (results [(status, latency, late)], start, end)."""
    n = len(requests)
    results: list = [None] * n
    start = time.monotonic() + 0.2

    def worker(w: int) -> None:
        conns: dict[int, http.client.HTTPConnection] = {}
        for i in range(w, n, threads):
            port = ports[i % len(ports)]
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            method, path, raw, headers = requests[i]
            t0 = time.monotonic()
            try:
                c = conns.get(port)
                if c is None:
                    c = conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                c.request(method, path, body=raw, headers=headers)
                r = c.getresponse()
                r.read()
                status = r.status
            except (OSError, http.client.HTTPException) as exc:
                conns.pop(port, None)
                status = f"error {type(exc).__name__}"
            t1 = time.monotonic()
            results[i] = (status, t1 - t0, t0 - due, t1)
        for c in conns.values():
            c.close()

    pool = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return results, start, max(r[3] for r in results)


def baseline_appends(items: list[tuple[str, dict]], customers: list[dict]) -> tuple[int, float]:
    """The same touches as MessageRecorded events appended straight to the store, one per transaction."""
    from django.db import transaction

    from events import store
    from events.store import Metadata
    from interactions.events import MessageRecorded

    by_phone = {c["phone"]: c["id"] for c in customers}
    by_email = {c["email"]: c["id"] for c in customers}
    by_handle = {"@" + c["handle"]: c["id"] for c in customers}
    streams: dict = {}
    versions: dict = {}
    prepared = []
    for ch, d in items:
        f = d.get("from") or {"value": next(iter(by_phone))}
        cid = by_phone.get(f["value"]) or by_email.get(f["value"]) or by_handle.get(f["value"])
        key = (ch, d.get("conversation_id") or f["value"])
        sid = streams.setdefault(key, uuid.uuid4())
        body = d.get("body") or f"voice {d.get('event')}"
        ev = MessageRecorded(direction="inbound", body=body, provider_message_id=d["provider_message_id"] + "-b",
                             provider=PROVIDER, kind=d.get("kind"), subject=d.get("subject"),
                             sender=f["value"] if ch == "email" else None, recipients=d.get("to", []))
        prepared.append((sid, cid, ev, Metadata(channel=ch)))
    from django.db import connection

    connection.ensure_connection()
    t0 = time.monotonic()
    for sid, cid, ev, meta in prepared:
        with transaction.atomic():
            v = versions.get(sid, 0)
            store.append(stream_type="interaction", stream_id=sid, customer_id=cid, events=[ev], expected_version=v,
                         meta=meta)
            versions[sid] = v + 1
    return len(prepared), time.monotonic() - t0


def _cpu_seconds(pid: int) -> float:
    """CPU time of a server process and its worker processes (gunicorn forks its workers)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # the process or its child
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return total


def _machine_busy_seconds() -> float:
    # All CPUs, all processes: user + nice + system + irq + softirq + steal, from /proc/stat.
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (values[0] + values[1] + values[2] + values[5] + values[6] + values[7]) / os.sysconf("SC_CLK_TCK")


def measure_intake(b: Bench, customers: list[dict], ports: list[int], procs: list[Proc]) -> None:
    a = b.args
    n = int(a.rate * a.seconds)
    log(f"figure 1: {n} webhook deliveries at {a.rate:.0f}/s over {len(ports)} web processes, "
        f"{a.threads} client threads")
    # Warm-up (not measured): every channel through every process, then the measured run.
    warm = Mix(customers, seed=1, run="warm").build(a.warmup)
    ts = str(int(time.time()))
    reqs = [("POST", *signed(ch, d, ts)) for ch, d in warm]
    res, _, _ = paced_http(reqs, ports, rate=100, threads=a.threads)
    bad = [r[0] for r in res if not (isinstance(r[0], int) and r[0] < 300)]
    log(f"  warm-up: {len(res)} requests, {len(bad)} not 2xx")
    if bad:
        log(f"  warm-up statuses: {sorted(set(map(str, bad)))}")

    items = Mix(customers, seed=2, run="run").build(n)
    ts = str(int(time.time()))
    reqs = [("POST", *signed(ch, d, ts)) for ch, d in items]
    cpu0 = [_cpu_seconds(p.proc.pid) for p in procs], os.times(), _machine_busy_seconds()
    res, start, end = paced_http(reqs, ports, rate=a.rate, threads=a.threads)
    cpu1 = [_cpu_seconds(p.proc.pid) for p in procs], os.times(), _machine_busy_seconds()
    server_cpu = sum(cpu1[0]) - sum(cpu0[0])
    client_cpu = (cpu1[1].user + cpu1[1].system) - (cpu0[1].user + cpu0[1].system)
    machine_cpu = cpu1[2] - cpu0[2]
    ok = [r for r in res if isinstance(r[0], int) and 200 <= r[0] < 300]
    lat = [r[1] for r in ok]
    late = [r[2] for r in res]
    statuses: dict = {}
    for r in res:
        statuses[str(r[0])] = statuses.get(str(r[0]), 0) + 1
    rate = len(ok) / (end - start)
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    by_channel = {}
    for (ch, _), r in zip(items, res, strict=True):
        by_channel.setdefault(ch, []).append(r[1])

    log("  baseline: the same touches appended straight to the store (MessageRecorded, 1 per transaction)")
    bn, bt = baseline_appends(items, customers)
    base = bn / bt
    b.add(Row("1", f"touches/s accepted via webhooks at {a.rate:.0f}/s offered", rate,
              "store.append, 1 writer", base, f">= {a.rate * 0.98:.0f}/s", rate >= a.rate * 0.98, ratio=rate / base))
    b.add(Row("1", "webhook response time p50", p50, "-", None, "info", None, unit="seconds"))
    b.add(Row("1", "webhook response time p99", p99, "-", None, "< 100 ms", p99 < 0.100, unit="seconds"))
    b.detail(f"figure 1: {n} deliveries offered in {a.seconds:.0f} s; statuses {statuses}; "
             f"accepted {len(ok)} in {end - start:.2f} s (a 409 is a voice event that overtook the previous "
             "event of its call, still queued behind the backlog)")
    b.detail("figure 1 by channel (p50 / p99 ms): " + ", ".join(
        f"{ch} {len(v)}: {percentile(v, 50) * 1000:.1f} / {percentile(v, 99) * 1000:.1f}"
        for ch, v in sorted(by_channel.items())))
    b.detail(f"figure 1 client: sends later than scheduled by p50 {percentile(late, 50) * 1000:.1f} ms, "
             f"p99 {percentile(late, 99) * 1000:.1f} ms, max {max(late) * 1000:.1f} ms "
             "(a large value means the client threads were all waiting on responses)")
    b.detail(f"figure 1 CPU per request: web processes {server_cpu / len(res) * 1000:.2f} ms, load generator "
             f"{client_cpu / len(res) * 1000:.2f} ms, everything else (PostgreSQL, system) "
             f"{(machine_cpu - server_cpu - client_cpu) / len(res) * 1000:.2f} ms; the machine was "
             f"{machine_cpu / (end - start) / (os.cpu_count() or 1):.0%} busy")
    b.detail(f"figure 1 baseline: {bn} MessageRecorded appends (encrypted body, per-customer key) in {bt:.2f} s")


# --- figure 2: the timeline page ------------------------------------------------------------------------


def fill_timeline(n: int) -> uuid.UUID:
    from django.db import transaction

    from customers.services import customer_register
    from events import store
    from events.projection import get
    from events.replay import replay
    from events.store import Metadata
    from interactions.events import MessageRecorded

    cid = customer_register(display_name="Busy Customer", email="busy@example.com", meta=Metadata()).customer_id
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    channels = [ch for ch, w in MIX if ch != "voice"]
    batch, k = 100, 0
    rnd = random.Random(3)
    while k < n:
        sid = store.uuid7()
        ch = channels[(k // batch) % len(channels)]
        evs = [MessageRecorded(direction=rnd.choice(["inbound", "outbound"]), body=rnd.choice(_TEXT),
                               provider_message_id=f"tl-{k + j}", provider=PROVIDER) for j in range(batch)]
        with transaction.atomic():
            store.append(stream_type="interaction", stream_id=sid, customer_id=cid, events=evs, expected_version=0,
                         meta=Metadata(channel=ch), occurred_at=t0 + dt.timedelta(minutes=k // batch * 30))
        k += batch
    t = time.monotonic()
    applied = replay(get("customers.timeline"), progress=False)
    log(f"  filled {n} touches for customer {cid}; replayed customers.timeline ({applied} events) "
        f"in {time.monotonic() - t:.1f} s")
    return cid


TIMELINE_SQL = ("SELECT position, customer_id, event_id, event_type, stream_type, stream_id, occurred_at, channel, "
                "actor, data, personal_fields FROM customers_timelineentry WHERE customer_id = %s "
                "ORDER BY occurred_at, position LIMIT %s")


def measure_timeline(b: Bench, token: str, port: int) -> None:
    import psycopg

    a = b.args
    log(f"figure 2: first timeline page, customer with {TIMELINE_TOUCHES:,} touches, {a.timeline_requests} requests")
    cid = fill_timeline(TIMELINE_TOUCHES)
    with psycopg.connect(b.url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE customers_timelineentry")
        entries = conn.execute("SELECT count(*) FROM customers_timelineentry WHERE customer_id = %s",
                               [cid]).fetchone()[0]
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + TIMELINE_SQL,
                                                    [cid, PAGE + 1]).fetchall())
    path = f"/api/v1/customers/{cid}/timeline/"
    headers = {"Authorization": f"Bearer {token}", "Host": "127.0.0.1", "Accept": "application/json"}
    http_conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    sql_conn = psycopg.connect(b.url, autocommit=True)

    def api_once() -> float:
        t0 = time.monotonic()
        http_conn.request("GET", path, headers=headers)
        r = http_conn.getresponse()
        body = r.read()
        t1 = time.monotonic()
        if r.status != 200:
            raise RuntimeError(f"timeline answered {r.status}: {body[:300]!r}")
        return t1 - t0

    def sql_once() -> float:
        t0 = time.monotonic()
        rows = sql_conn.execute(TIMELINE_SQL, [cid, PAGE + 1], prepare=True).fetchall()
        t1 = time.monotonic()
        assert len(rows) == PAGE + 1
        return t1 - t0

    first = json.loads((lambda: (http_conn.request("GET", path, headers=headers),
                                 http_conn.getresponse().read())[1])())
    for _ in range(30):  # warm-up
        api_once()
        sql_once()
    api, sql = [], []
    rounds = 3
    for r in range(rounds):  # alternate which goes first
        order = [(api, api_once), (sql, sql_once)]
        for out, fn in (order if r % 2 == 0 else order[::-1]):
            for _ in range(a.timeline_requests // rounds):
                out.append(fn())
    http_conn.close()
    sql_conn.close()
    b.add(Row("2", "timeline first page p50 (API)", percentile(api, 50), "raw SQL p50", percentile(sql, 50),
              "info", None, unit="seconds"))
    b.add(Row("2", "timeline first page p99 (API)", percentile(api, 99), "raw SQL p99", percentile(sql, 99),
              "< 30 ms", percentile(api, 99) < 0.030, unit="seconds"))
    b.detail(f"figure 2: {entries:,} timeline entries for the customer; page of {len(first.get('results', []))} "
             f"entries; {len(api)} API requests and {len(sql)} SQL queries; API mean "
             f"{statistics.mean(api) * 1000:.1f} ms, SQL mean {statistics.mean(sql) * 1000:.2f} ms")
    plan_line = next((ln.strip() for ln in plan.splitlines() if "Index" in ln), plan.splitlines()[0].strip())
    b.detail(f"figure 2 query plan: {plan_line}")


# --- report --------------------------------------------------------------------------------------------

HOW = """\
### How each figure is measured

1. **Touches through the webhooks.** 300 customers are registered first, each with a phone, an email
   and an Instagram handle, so every channel resolves to the same pool. The run sends
   `POST /api/v1/webhooks/{channel}/bench/` with the HMAC signature (`X-Timestamp`, `X-Signature`), a
   unique `provider_message_id` each, in the mix 50% chat messages (one of 3 sessions per customer;
   the first message starts the session), 20% SMS (a conversation per number), 15% email (half of
   them replies to the customer's previous email, `In-Reply-To`), 10% voice events (calls ring, are
   answered ~1 s later and end ~1 s after that) and 5% Instagram DMs. The server is what a deployment
   runs: 2 `daphne` processes (`python -m daphne contactcenter.asgi:application`, DEBUG=false) on two
   ports, the client alternating between them. HTTP runs through Django's WSGI handler in a thread
   pool (see contactcenter/asgi.py) and takes database connections from the pool (`DB_POOL_MAX_SIZE`,
   `DB_CONN_MAX_AGE=0`). The client is a bounded pool of threads with
   `http.client` keep-alive connections; request i is sent at start + i/300 s (paced, 20 s), and its
   latency is its response time (from sending to the full answer; time a request waited in the
   client for a free thread is listed separately as "sends later than scheduled"). After an unmeasured
   warm-up, the rate is the 2xx answers / (last answer - scheduled start). "CPU per request" is the CPU
   time (/proc) of the web processes, of the load generator and of the whole machine over the run,
   divided by the requests. Baseline: the same touches as the equivalent
   `interactions.MessageRecorded` (encrypted body, with the customer id) appended with
   `events.store.append` straight to the store, one per transaction, by one writer as fast as it can.
   The rate target is 98% of the offered 300/s.
2. **First timeline page.** A customer gets 10,000 `MessageRecorded` events (100 interactions of 100
   messages, batched appends), and `customers.timeline` is rebuilt with `events.replay.replay`. Then
   `GET /api/v1/customers/{id}/timeline/` (first page, 100 entries, Bearer token of a created user)
   is sent 300 times on one keep-alive connection to one of the daphne processes, idle otherwise.
   Each page decrypts its 100 message bodies (they are kept encrypted in the timeline). Baseline: the query behind the page with psycopg (`... WHERE customer_id = %s ORDER BY occurred_at,
   position LIMIT 101`, prepared), 300 times; the two alternate in 3 rounds after 30 warm-up requests each.
"""


def write_docs(b: Bench, info: dict, elapsed: float) -> None:
    m, s = info["machine"], info["server"]
    lines = [
        START_MARK,
        "## Results: `make bench-intake`",
        "",
        "Generated by `bench/intake_bench.py`; rerun `make bench-intake` to replace this section.",
        "",
        f"- Date: {info['date']}",
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} memory, Linux {m['kernel']}, Python {m['python']}",
        f"- PostgreSQL {s['server_version']} (fsync={s['fsync']}, synchronous_commit={s['synchronous_commit']}), "
        "Redis, Kafka (Tansu), the 2 daphne processes and the load generator all on the same machine",
        f"- Code: commit {info['revision']}",
        "- Command: `make bench-intake` (`python -m contactcenter.devstack bench bench/intake_bench.py`)",
        f"- Run time: {elapsed / 60:.1f} min",
        "",
    ]
    t = eb.table(b.rows)
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
    log(f"wrote the bench-intake section of {DOCS.relative_to(REPO)}")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short run (docs are not written)")
    p.add_argument("--rate", type=float, default=300.0, help="offered webhook deliveries per second")
    p.add_argument("--seconds", type=float, help="length of the paced run (default 20, quick 5)")
    p.add_argument("--threads", type=int, default=48, help="client threads (each with keep-alive connections)")
    p.add_argument("--customers", type=int, default=300)
    p.add_argument("--only", default="1,2")
    p.add_argument("--conn-max-age", type=int, default=0,
                   help="DB_CONN_MAX_AGE of the web processes (default 0, as Django advises under ASGI: with the "
                        "settings' default of 60 every request opens a connection that is kept, until "
                        "PostgreSQL refuses more)")
    p.add_argument("--docs", choices=("auto", "yes", "no"), default="auto")
    a = p.parse_args(argv)
    a.seconds = a.seconds or (5.0 if a.quick else 20.0)
    a.warmup = 300 if a.quick else 600
    a.timeline_requests = 90 if a.quick else 300
    a.only = {s.strip() for s in a.only.split(",") if s.strip()}
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url:
        print("set DATABASE_URL, REDIS_URL and KAFKA_BOOTSTRAP_SERVERS, or run `make bench-intake`", file=sys.stderr)
        return 2
    b = Bench(args=args, admin_url=admin_url)
    info = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": eb.machine(),
            "revision": eb.git_revision()}
    procs: list[Proc] = []
    ok = True
    try:
        eb.create_database(b)
        setup_schema(b)
        info["server"] = s = eb.server_settings(b.url)
        log(f"PostgreSQL {s['server_version']}: fsync={s['fsync']}, synchronous_commit={s['synchronous_commit']}")
        customers = register_customers(args.customers)
        token = api_token()
        from django.db import connections

        connections.close_all()
        procs, ports = start_servers(b)
        if "1" in args.only:
            measure_intake(b, customers, ports, procs)
        if "2" in args.only:
            measure_timeline(b, token, ports[0])
        for proc in procs:
            proc.check()
    except BaseException:
        ok = False
        traceback.print_exc()
        for proc in procs:
            log(f"{proc.name} log tail:\n{proc.tail()}")
    finally:
        for proc in procs:
            proc.stop()
        try:
            eb.drop_database(b)
        except Exception:
            traceback.print_exc()
    elapsed = time.monotonic() - started
    print()
    print(f"Intake benchmark, {info['date']}, {info['machine']['nproc']} CPUs ({info['machine']['cpu']}), "
          f"run time {elapsed / 60:.1f} min" + (" [--quick]" if args.quick else "") + f", code {info['revision']}")
    if "server" in info:
        s = info["server"]
        print(f"PostgreSQL {s['server_version']} fsync={s['fsync']} synchronous_commit={s['synchronous_commit']}")
    print()
    eb.print_table(b.rows)
    for d in b.details:
        print(f"  {d}")
    print()
    durable = "server" in info and info["server"]["fsync"] == "on" and info["server"]["synchronous_commit"] != "off"
    write = args.docs == "yes" or (args.docs == "auto" and ok and not args.quick and durable
                                   and args.only == {"1", "2"} and args.rate == 300.0)
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
