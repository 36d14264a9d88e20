"""`make trust`: the fault and load scenarios of issue 8, with figures, written to docs/TRUST.md.

    make trust                                   # the full run, about 20-25 minutes
    TRUST_INGEST_SECONDS=120 make trust          # a shorter sustained ingest (docs are then not written)
    TRUST_ONLY=7,8 make trust                    # some scenarios only
    python -m trust.run --help                   # every duration and rate (each also a TRUST_* variable)

The runner starts its own throw-away stack in a temporary directory (trust.stack: the embedded PostgreSQL
with real fsync, Redis and the Tansu broker behind a fault proxy; two daphne web processes, two routing
workers, the default-queue worker, beat, the relay and the projector) and then:

  during a sustained ingest of signed webhooks (1), one after the other:
    2  Kafka unreachable (partition at the proxy)     3  relay and projector kill -9 mid-batch
    2b the broker restarted empty                      5  PostgreSQL restart
    6  Redis restart (waiting work, open sockets)
  after it: the ledger and convergence check (1), then
    7  duplicate and out-of-order webhooks   4  routing workers kill -9 mid-decision, 8 racing
    8  a thousand agent sockets with pushes

It never uses the services of DATABASE_URL / REDIS_URL / KAFKA_BOOTSTRAP_SERVERS: it has to stop and
start them. Not part of `make test` (CI).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import resource
import secrets
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import events_bench as eb  # noqa: I001  (bench/ on sys.path: trust/__init__.py)
from events_bench import log

from trust import faults, scenarios
from trust.common import HEAD_SQL, Db, Row, catch_up, make_agents, make_queue
from trust.ingest import INGEST_QUEUE, PROVIDER, Ingest, configure
from trust.sockets import Client, Fleet
from trust.stack import REPO, Stack

DOCS = REPO / "docs" / "TRUST.md"
LAST_RUN = Path(tempfile.gettempdir()) / "contactcenter-trust-last-run.json"  # for --render
INGEST_FAULTS = [("2", faults.broker_partition), ("3", faults.kill_relay_and_projector),
                 ("2b", faults.broker_restart), ("5", faults.database_restart), ("6", None)]
ALL = ["1", "2", "3", "2b", "5", "6", "7", "4", "8"]  # the order they run in
REPORT_ORDER = ["1", "2", "2b", "3", "4", "5", "6", "7", "8"]


@dataclass
class Ctx:
    args: argparse.Namespace
    stack: Stack
    db: Db
    ingest: Ingest | None = None
    rows: list[Row] = field(default_factory=list)
    voice_agents: list[str] = field(default_factory=list)
    expected_503: int = 0


def _env(name: str, default):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return type(default)(raw)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = p.add_argument
    add("--ingest-seconds", type=float, default=_env("TRUST_INGEST_SECONDS", 600.0),
        help="length of the sustained ingest (TRUST_INGEST_SECONDS; at least as long as its faults take)")
    add("--rate", type=float, default=_env("TRUST_INGEST_RATE", 20.0), help="webhooks per second (TRUST_INGEST_RATE)")
    add("--warmup", type=float, default=_env("TRUST_WARMUP_SECONDS", 30.0), help="ingest before the first fault")
    add("--broker-down", type=float, default=_env("TRUST_BROKER_DOWN_SECONDS", 60.0), help="scenario 2 partition")
    add("--broker-restart-down", type=float, default=_env("TRUST_BROKER_RESTART_DOWN_SECONDS", 15.0),
        help="scenario 2b: how long the broker stays stopped")
    add("--kill-down", type=float, default=_env("TRUST_KILL_DOWN_SECONDS", 5.0),
        help="scenario 3: how long relay and projector stay dead")
    add("--kill-delay", type=float, default=_env("TRUST_KILL_DELAY_SECONDS", 0.2),
        help="scenario 3: latency added to every Kafka round trip around the kill")
    add("--pg-down", type=float, default=_env("TRUST_PG_DOWN_SECONDS", 10.0), help="scenario 5")
    add("--pg-stop-mode", choices=("fast", "immediate"), default=_env("TRUST_PG_STOP_MODE", "fast"),
        help="scenario 5: pg_ctl stop mode (immediate: a crash, WAL replay at start)")
    add("--redis-down", type=float, default=_env("TRUST_REDIS_DOWN_SECONDS", 10.0), help="scenario 6")
    add("--redis-agents", type=int, default=_env("TRUST_REDIS_AGENTS", 20), help="scenario 6: agents and sockets")
    add("--race-workers", type=int, default=_env("TRUST_RACE_WORKERS", 8), help="scenario 4")
    add("--race-agents", type=int, default=_env("TRUST_RACE_AGENTS", 40))
    add("--race-capacity", type=int, default=_env("TRUST_RACE_CAPACITY", 3))
    add("--race-work", type=int, default=_env("TRUST_RACE_WORK", 300))
    add("--race-seconds", type=float, default=_env("TRUST_RACE_SECONDS", 20.0), help="scenario 4 churn")
    add("--visibility-timeout", type=int, default=_env("TRUST_VISIBILITY_TIMEOUT", 30),
        help="CELERY_VISIBILITY_TIMEOUT of the stack (production default 3600)")
    add("--restore-interval", type=int, default=_env("TRUST_UNACKED_RESTORE_INTERVAL", 5),
        help="CELERY_UNACKED_RESTORE_INTERVAL of the stack")
    add("--sockets", type=int, default=_env("TRUST_SOCKETS", 1000), help="scenario 8")
    add("--pushes", type=int, default=_env("TRUST_PUSHES", 2), help="scenario 8: pushes per socket")
    add("--dup-messages", type=int, default=_env("TRUST_DUP_MESSAGES", 100), help="scenario 7")
    add("--dup-races", type=int, default=_env("TRUST_DUP_RACES", 20))
    add("--dup-calls", type=int, default=_env("TRUST_DUP_CALLS", 30))
    add("--customers", type=int, default=_env("TRUST_CUSTOMERS", 300))
    add("--recover-timeout", type=float, default=_env("TRUST_RECOVER_TIMEOUT", 180.0),
        help="longest wait for any recovery")
    add("--only", default=_env("TRUST_ONLY", ""), help="comma-separated scenarios (TRUST_ONLY), default all")
    add("--docs", choices=("auto", "yes", "no"), default=_env("TRUST_DOCS", "auto"),
        help="auto: write docs/TRUST.md after a complete run with the full 10-minute ingest")
    add("--keep", action="store_true", default=bool(_env("TRUST_KEEP", "")),
        help="keep the stack's directory (data, logs) afterwards")
    add("--render", metavar="JSON", help=f"only write docs/TRUST.md again from a saved run (each run saves {LAST_RUN})")
    a = p.parse_args(argv)
    a.only = [s.strip() for s in a.only.split(",") if s.strip()] or list(ALL)
    unknown = set(a.only) - set(ALL)
    if unknown:
        p.error(f"unknown scenarios {sorted(unknown)}; known: {', '.join(ALL)}")
    return a


def raise_fd_limit() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # inherited by the web processes we start
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# --- the run ------------------------------------------------------------------------------------------------------


def fixtures(ctx: Ctx) -> list[dict]:
    import django

    django.setup()
    import intake_bench as ib

    # The ingest's work waits in a queue nobody is staffed for, so it never meets the agents of 4, 6 and 8.
    make_queue(INGEST_QUEUE, channels=[], skill="trust-unstaffed", min_proficiency=5)
    make_queue("trust-redis", channels=["chat"], skill="trust-redis")
    ctx.voice_agents = [ag["name"] for ag in make_agents("voice", 5, skill=None, capacity={"voice": 100})]
    return ib.register_customers(ctx.args.customers)


def ingest_phase(ctx: Ctx, customers: list[dict]) -> None:
    a = ctx.args
    redis_fleet = redis_agents = None
    if "6" in a.only:
        redis_agents = make_agents("redis", a.redis_agents, skill="trust-redis", capacity={"chat": 1},
                                   presence="break")
        clients = [Client(ag["name"], ag["token"], ctx.stack.web_ports[i % len(ctx.stack.web_ports)])
                   for i, ag in enumerate(redis_agents)]
        redis_fleet = Fleet(clients, parallel=10).start()
        if not redis_fleet.wait_connected(len(clients), 60):
            log(f"scenario 6: only {redis_fleet.connected()}/{len(clients)} sockets connected")
    ctx.ingest = Ingest(customers, ctx.stack.web_ports, rate=a.rate)
    ctx.ingest.start()
    t_start = ctx.ingest.started_at
    log(f"scenario 1: ingest at {a.rate:g}/s for at least {a.ingest_seconds:.0f} s")
    time.sleep(a.warmup)
    for n, fn in INGEST_FAULTS:
        if n not in a.only:
            continue
        log(f"--- scenario {n} (ingest running for {time.monotonic() - t_start:.0f} s)")
        try:
            row = faults.redis_restart(ctx, redis_fleet, redis_agents) if n == "6" else fn(ctx)
        except Exception:
            row = Row(n, f"scenario {n}", "-", "-", "-", error=traceback.format_exc(limit=6))
            log(f"scenario {n} failed:\n{row.error}")
            restore(ctx)
        ctx.expected_503 += row.data.get("expected_503", 0)
        ctx.rows.append(row)
    if redis_fleet is not None:
        redis_fleet.stop()
    left = a.ingest_seconds - (time.monotonic() - t_start)
    if left > 0:
        log(f"scenario 1: {left:.0f} s of ingest left")
        time.sleep(left)
    ctx.ingest.stop()
    t_end = ctx.ingest.stopped_at
    log("scenario 1: ingest stopped; waiting for the relay and projectors, then checking the ledger")
    head = ctx.db.value(HEAD_SQL)
    caught = catch_up(ctx.db, head, a.recover_timeout)
    ledger = scenarios.verify_ledger(ctx)
    conv = scenarios.convergence(ctx)
    row1 = scenarios.sustained_ingest_row(ctx, t_start, t_end, caught, ledger, conv, ctx.expected_503)
    for r in ctx.rows:  # what each fault's window acknowledged, against the ledger
        if r.acked_ids:
            ids = set(r.acked_ids)
            r.lost = len(ids & ledger["lost"])
            r.duplicated = len(ids & ledger["duplicated"])
            r.check("nothing acknowledged in its window was lost or recorded twice", r.lost == 0 and r.duplicated == 0)
    ctx.rows.insert(0, row1)


def restore(ctx: Ctx) -> None:
    """After a scenario failed half-way: heal the proxy and make sure every service runs again."""
    s = ctx.stack
    s.proxy.heal()
    s.proxy.delay(0)
    for service in (s.pg, s.redis, s.kafka):
        try:
            service.start()
        except Exception as exc:
            log(f"restore: {service.name}: {exc}")
    for name in ("relay", "projector"):
        if s.procs[name].proc.poll() is not None:
            s.start(name)


def render(path: str) -> int:
    saved = json.loads(Path(path).read_text())
    args = argparse.Namespace(**saved["args"])
    ctx = Ctx(args, None, None, rows=[Row(**r) for r in saved["rows"]])
    write_docs(ctx, saved["info"], saved["elapsed"])
    return 0


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.render:
        return render(a.render)
    limits = raise_fd_limit()
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="contactcenter-trust-"))
    secret = secrets.token_hex(16)
    configure(secret)
    stack = Stack(base, env={"WEBHOOK_SECRETS": f"{PROVIDER}={secret}",
                             "CELERY_VISIBILITY_TIMEOUT": str(a.visibility_timeout),
                             "CELERY_UNACKED_RESTORE_INTERVAL": str(a.restore_interval)})
    info = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": eb.machine(),
            "revision": eb.git_revision(), "fd_limit": limits[0]}
    ctx = Ctx(a, stack, Db(""))
    ok = True
    try:
        log(f"stack in {base} (open-file limit {limits[0]})")
        stack.start_services()
        ctx.db = Db(stack.database_url)
        stack.migrate()
        customers = fixtures(ctx)
        info["server"] = eb.server_settings(stack.database_url)
        stack.start_all()
        log(f"stack up: web on {stack.web_ports}, Kafka through the proxy on {stack.proxy.port}")
        if any(n in a.only for n in ("1", "2", "3", "2b", "5", "6")):
            ingest_phase(ctx, customers)
        for n, fn in (("7", scenarios.duplicates_and_order), ("4", scenarios.routing_race),
                      ("8", scenarios.socket_storm)):
            if n not in a.only:
                continue
            log(f"--- scenario {n}")
            from django.db import connections

            connections.close_all()  # the runner's own session did not survive scenario 5's database restart
            try:
                ctx.rows.append(fn(ctx))
            except Exception:
                row = Row(n, f"scenario {n}", "-", "-", "-", error=traceback.format_exc(limit=6))
                log(f"scenario {n} failed:\n{row.error}")
                ctx.rows.append(row)
    except BaseException:
        ok = False
        traceback.print_exc()
    finally:
        try:
            info["exits"] = [(e.name, e.code) for e in stack.exits]
            stack.down()
        except Exception:
            traceback.print_exc()
        ctx.db.close()
    elapsed = time.monotonic() - started
    print_summary(ctx, elapsed)
    try:
        LAST_RUN.write_text(json.dumps({"args": vars(a), "info": info, "elapsed": elapsed,
                                        "rows": [dataclasses.asdict(r) for r in ctx.rows]}, default=str))
    except (OSError, TypeError) as exc:
        log(f"could not save the run to {LAST_RUN}: {exc}")
    complete = ok and set(a.only) == set(ALL) and a.ingest_seconds >= 600
    if a.docs == "yes" or (a.docs == "auto" and complete):
        write_docs(ctx, info, elapsed)
    else:
        log("docs/TRUST.md not updated (partial or shortened run; --docs yes or TRUST_DOCS=yes forces it)")
    if a.keep:
        log(f"kept {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    failed = [r for r in ctx.rows if r.passed is False]
    return 0 if ok and not failed else 1


# --- report -------------------------------------------------------------------------------------------------------


def _cell(v) -> str:
    return "-" if v is None else f"{v:,}" if isinstance(v, int) else str(v)


def _result(r: Row) -> str:
    return {True: "PASS", False: "FAIL", None: "info"}[r.passed]


def _order(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: REPORT_ORDER.index(r.n) if r.n in REPORT_ORDER else 99)


def print_summary(ctx: Ctx, elapsed: float) -> None:
    print()
    print(f"make trust: {len(ctx.rows)} scenarios in {elapsed / 60:.1f} min")
    for r in _order(ctx.rows):
        print(f"  {r.n:>2} {_result(r):4} {r.title}: acked {_cell(r.acked)}, lost {_cell(r.lost)}, duplicated "
              f"{_cell(r.duplicated)}, unexpected 5xx {_cell(r.unexpected_5xx)}, recover {r.recover}; "
              + "; ".join(r.figures))
        for what, good in r.checks.items():
            if not good:
                print(f"       FAILED: {what}")
        if r.error:
            print("       ERROR: " + r.error.strip().splitlines()[-1])


INTRO = """\
# Trust: fault and load scenarios

Generated by `make trust` (`python -m trust.run`, code in `trust/`); rerun it to replace this file.
Each scenario injects one fault (or load) into a running stack and counts what a client and the database
saw. A row's figures: **acknowledged** is what the API answered 2xx (the webhook deliveries exposed to the
fault, or the scenario's own commands); **lost** is acknowledged but missing afterwards (event store, Kafka
topic, customer timeline); **duplicated** is more than one effect of one delivery or command; **unexpected
5xx** leaves out the 503 + Retry-After that PostgreSQL's absence is meant to produce; **time to recover** is
measured from the moment the fault ended.
"""


NOTES = """\
- The stack is the one `make run` starts, on throw-away data; the runner owns every service so it can stop
  it. Kafka clients reach the broker only through trust/proxy.py (the broker advertises the proxy's port).
  A process that exits on its own is started again at once by the runner's supervisor (as docker-compose's
  `restart: unless-stopped` would) and counted as a failure of the scenario it happened in.
- Scenario 5 found that the relay and the projector exited when PostgreSQL restarted (the relay with a
  traceback, the projector quietly with code 0 once all its threads had died); under `make run` that stops
  the whole stack. They now wait for the database and go on: the relay takes its advisory lock again on a
  new session, a projector drops its Kafka consumer and seeks to its checkpoints again (events/relay.py,
  events/runner.py, events/management/commands/run_relay.py; tests/events/test_convergence.py cuts their
  sessions with `pg_terminate_backend` and checks that every event is still applied once).
- The celery visibility timeout is lowered for the run (production default 3600 s) so that a killed
  routing task's redelivery can be seen within it; the beat's sweep (`ROUTING_SWEEP_SECONDS`, 5 s) or the
  next dispatch request recovers routing first, in production as here.
- Socket reconnection times include the clients' backoff (0.5 s doubling to 30 s while the server refuses
  tickets), as the README asks clients to do.
- The embedded broker (Tansu 0.6) creates a topic that does not exist, with 4 partitions, as soon as a
  consumer fetches from it (a metadata request does not, with kafka-python's `allow_auto_create_topics=False`),
  and it has no CreatePartitions. After it restarts empty, live consumers' fetches re-create
  `contactcenter.events` with 4 partitions, and the relay must replace it with its 8. Scenario 2b found the
  relay losing that race for minutes (38 new epochs in 3 minutes in one run, the whole history queued again
  each time, nothing republished meanwhile): it bumped the epoch, a slow statement, between deleting the topic
  and creating it again. It now bumps the epoch first and deletes and creates back to back, retrying at once
  (events/relay.py; tests/events/test_convergence.py restarts a broker under a fetching consumer). Apache
  Kafka does not create topics on Fetch.
- A duplicate on the Kafka topic is allowed (at-least-once); the projections' per-stream versions make it
  harmless, which the ledger and the checksums check."""


def write_docs(ctx: Ctx, info: dict, elapsed: float) -> None:
    a = ctx.args
    m, s = info["machine"], info.get("server", {})
    lines = [INTRO,
             f"- Date: {info['date']}",
             f"- Command: `make trust` (`python -m trust.run`), ingest {a.ingest_seconds / 60:.0f} min at {a.rate:g}/s; "
             f"run time {elapsed / 60:.1f} min",
             f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} memory, Linux {m['kernel']}, Python {m['python']}; "
             f"open-file limit {info['fd_limit']}",
             f"- Stack: PostgreSQL {s.get('server_version', '?')} (fsync={s.get('fsync', '?')}, "
             f"synchronous_commit={s.get('synchronous_commit', '?')}), Redis, Tansu behind trust/proxy.py, 2 daphne, "
             "2 routing workers (solo), the default-queue worker, beat, relay, projector; all on this machine; "
             f"CELERY_VISIBILITY_TIMEOUT={a.visibility_timeout}, CELERY_UNACKED_RESTORE_INTERVAL={a.restore_interval}",
             f"- Code: commit {info['revision']}",
             "",
             "| # | scenario | injected | expected | acknowledged | lost | duplicated | unexpected 5xx | time to recover "
             "| other figures | result |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- | --- |"]
    for r in _order(ctx.rows):
        cells = [r.n, r.title, r.injected, r.expected, _cell(r.acked), _cell(r.lost), _cell(r.duplicated),
                 _cell(r.unexpected_5xx), r.recover, "; ".join(r.figures) or "-", _result(r)]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    lines += ["", "## What did not hold", ""]
    failures = [(r, what) for r in _order(ctx.rows) for what, good in r.checks.items() if not good]
    errors = [r for r in _order(ctx.rows) if r.error]
    if not failures and not errors:
        lines.append("Nothing: every check of every scenario held.")
    for r, what in failures:
        lines.append(f"- Scenario {r.n} ({r.title}): {what}. See its details below.")
    for r in errors:
        lines.append(f"- Scenario {r.n} could not finish: `{r.error.strip().splitlines()[-1]}`")
    lines += ["", "## How each figure is measured", ""]
    for r in _order(ctx.rows):
        lines += [f"**{r.n}. {r.title}.** {r.how}", ""]
        if r.checks:
            lines += ["Checks: " + "; ".join(f"{w} ({'held' if g else 'FAILED'})" for w, g in r.checks.items()) + ".", ""]
    lines += ["## Notes", "", NOTES, "", "## Details of this run", ""]
    for r in _order(ctx.rows):
        lines.append(f"**{r.n}. {r.title}**")
        lines.append("")
        lines += [f"- {d}" for d in r.details] or ["- -"]
        if r.error:
            lines += ["", "```", r.error.strip(), "```"]
        lines.append("")
    if info.get("exits"):
        lines += [f"Processes that exited unexpectedly and were restarted: {info['exits']}.", ""]
    lines += ["Rerun: `make trust` (about 20 minutes). Every duration and rate is settable: "
              "`python -m trust.run --help`, e.g. `TRUST_INGEST_SECONDS=120 make trust` for a short run "
              "(which does not rewrite this file unless `TRUST_DOCS=yes`).", ""]
    DOCS.write_text("\n".join(lines))
    log(f"wrote {DOCS.relative_to(REPO)}")


if __name__ == "__main__":
    sys.exit(main())
