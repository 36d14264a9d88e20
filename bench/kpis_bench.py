#!/usr/bin/env python
"""KPI benchmark: the facts projection replaying 500,000 events, and a report over 90 days x 200 agents.

Run it with `make bench-kpis` (throw-away PostgreSQL with real fsync), or by hand:

    DATABASE_URL=... python bench/kpis_bench.py [--quick]

Like the other benchmarks it creates a database `bench_<random>`, migrates it,
measures and drops it; a full run (not --quick) against a server with fsync on
rewrites the `bench-kpis` section of docs/BENCHMARKS.md.

Figures:
 1. replay of quality.interaction_facts over 500,000 events (90 days, 200 agents), events/s
                                 vs reading the same events as envelopes, nothing applied    (info)
 2. report `GET /api/v1/reports/kpis` as kpis.report, 90 days x 200 agents, p50/p99 for aht, fcr and
    service_level, grouped by agent (p99 < 200 ms) and by agent and day (info: 17,700 rows)
                                 vs the bare SQL behind it (psycopg)
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import random
import statistics
import sys
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

import events_bench as eb  # noqa: E402
from events_bench import Bench, Row, log, percentile  # noqa: E402

DOCS = REPO / "docs" / "BENCHMARKS.md"
START_MARK = "<!-- bench-kpis:results:start -->"
END_MARK = "<!-- bench-kpis:results:end -->"
DAYS, AGENTS, QUEUES = 90, 200, 10
END = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def setup_schema() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from routing.models import Queue

    for k in range(QUEUES):
        Queue.objects.create(name=f"q{k}", service_level_seconds=random.Random(k).choice([15, 20, 30, 60]))
    log("migrated; 10 queues")


def interaction_events(rnd: random.Random, start: dt.datetime, agents: list[str]):
    """One interaction's events with their times: mostly answered and resolved, some abandoned, some surveyed."""
    from interactions import events as iev
    from quality.events import SurveyAnswered

    t = start
    out = [(t, iev.InteractionCreated(channel=rnd.choice(["chat", "voice", "email", "sms"]), direction="inbound",
                                      case_id=uuid.uuid4())),
           (t, iev.InteractionQueued(queue=f"q{rnd.randrange(QUEUES)}"))]
    wait = rnd.expovariate(1 / 25)
    if rnd.random() < 0.06:
        out.append((t + dt.timedelta(seconds=wait), iev.InteractionAbandoned(waited_seconds=int(wait))))
        return out, None
    agent = rnd.choice(agents)
    t += dt.timedelta(seconds=wait)
    out += [(t, iev.InteractionOffered(agent_id=agent)), (t + dt.timedelta(seconds=2),
                                                           iev.InteractionAccepted(agent_id=agent))]
    t += dt.timedelta(seconds=2 + rnd.expovariate(1 / 240))
    if rnd.random() < 0.2:
        out.append((t, iev.InteractionHeld()))
        t += dt.timedelta(seconds=rnd.expovariate(1 / 40))
        out.append((t, iev.InteractionResumed()))
        t += dt.timedelta(seconds=rnd.expovariate(1 / 60))
    out.append((t, iev.InteractionEnded(reason="resolved")))
    t += dt.timedelta(seconds=rnd.expovariate(1 / 45))
    out.append((t, iev.InteractionWrappedUp(disposition=rnd.choice(["billing", "tech", "sales", "returns"]))))
    survey = None
    if rnd.random() < 0.15:
        survey = (t + dt.timedelta(minutes=10), SurveyAnswered(interaction_id=uuid.UUID(int=0), csat=rnd.randint(1, 5)))
    return out, survey


def fill(n_events: int, seed: int = 1) -> int:
    """Write `n_events` (about) straight into events_event with COPY, as the store would write them (its
    payload encoding, personal fields encrypted); no outbox rows (nothing is relayed). Returns the count."""
    import psycopg

    from events import registry, store

    rnd = random.Random(seed)
    agents = [f"agent{i:03d}" for i in range(AGENTS)]
    customers = [uuid.uuid4() for _ in range(20_000)]
    span = dt.timedelta(days=DAYS).total_seconds()
    key_cache: dict = {}
    written = 0
    buf = io.StringIO()
    actor = json.dumps({"type": "system"})
    cols = ("event_id, event_type, schema_version, stream_type, stream_id, stream_version, customer_id, "
            "occurred_at, recorded_at, actor, channel, data")
    url = os.environ["DATABASE_URL"]

    def row(stream_type, stream_id, version, customer, at, event):
        et = registry.type_of(event)
        data = store._stored_data(et, event, customer, key_cache)
        vals = [str(store.uuid7()), et.name, str(et.version), stream_type, str(stream_id), str(version),
                str(customer), at.isoformat(), at.isoformat(), actor, "", data]
        buf.write("\t".join(v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n") for v in vals) + "\n")

    with psycopg.connect(url) as conn:
        while written < n_events:
            customer = rnd.choice(customers)
            start = END - dt.timedelta(seconds=rnd.random() * span)
            iid = uuid.uuid4()
            events, survey = interaction_events(rnd, start, agents)
            for version, (at, event) in enumerate(events, start=1):
                row("interaction", iid, version, customer, at, event)
            written += len(events)
            if survey:
                at, answer = survey
                row("survey", uuid.uuid4(), 1, customer, at, type(answer)(interaction_id=iid, csat=answer.csat))
                written += 1
            if buf.tell() > 4_000_000:
                with conn.cursor().copy(f"COPY events_event ({cols}) FROM STDIN") as cp:
                    cp.write(buf.getvalue())
                buf.seek(0)
                buf.truncate()
        if buf.tell():
            with conn.cursor().copy(f"COPY events_event ({cols}) FROM STDIN") as cp:
                cp.write(buf.getvalue())
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE events_event")  # hint bits set here, not by whichever reads first
    return written


def measure_replay(b: Bench) -> None:
    from django.db import connection

    from events.projection import get
    from events.replay import replay
    from events.store import iter_all

    n = b.args.events
    log(f"[1] filling {n:,} events (90 days, {AGENTS} agents)")
    t0 = time.monotonic()
    total = fill(n)
    log(f"    filled {total:,} in {time.monotonic() - t0:.1f} s")
    t0 = time.monotonic()
    read = 0
    for batch in iter_all(batch_size=5000):
        for env in batch:
            _ = env.data  # decoded, decrypted and upcast, as a projection would see it
        read += len(batch)
    base = read / (time.monotonic() - t0)
    with connection.cursor() as cur:
        cur.execute("CHECKPOINT")
    t0 = time.monotonic()
    applied = replay(get("quality.interaction_facts"), progress=False)
    elapsed = time.monotonic() - t0
    rate = total / elapsed
    b.add(Row("1", f"replay quality.interaction_facts, {total:,} events, events/s", rate,
              "read as envelopes, nothing applied", base, "info", None, rate / base))
    with connection.cursor() as cur:
        cur.execute("SELECT count(*), count(resolved_at), count(csat), count(repeat_of) FROM quality_interactionfact")
        facts, resolved, surveyed, repeats = cur.fetchone()
        cur.execute("ANALYZE quality_interactionfact")
    b.detail(f"replay: {total:,} events ({applied:,} applied) in {elapsed:.1f} s -> {facts:,} facts, {resolved:,} "
             f"resolved, {surveyed:,} with a CSAT answer, {repeats:,} repeat contacts")


def measure_reports(b: Bench) -> None:
    import psycopg

    from quality import kpis

    start, end = END - dt.timedelta(days=DAYS), END
    runs = b.args.runs
    from django.conf import settings

    conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
    conn.execute("SELECT set_config('work_mem', %s, false)", [settings.KPI_REPORT_WORK_MEM])  # as kpis.report
    for group_by in (["agent"], ["agent", "day"]):
        label = " and ".join(group_by)
        for metric in ("aht", "fcr", "service_level"):
            sql, params = kpis.report_sql(metric, group_by, start, end)
            ours, bare = [], []
            for k in range(runs + 3):
                t0 = time.monotonic()
                rows = kpis.report(metric, group_by, start, end)
                t1 = time.monotonic()
                raw = conn.execute(sql, params, binary=True).fetchall()
                t2 = time.monotonic()
                if k >= 3:  # warm-up
                    ours.append(t1 - t0)
                    bare.append(t2 - t1)
            assert len(rows) == len(raw)
            p50, p99, b50, b99 = (percentile(ours, 50), percentile(ours, 99), percentile(bare, 50),
                                  percentile(bare, 99))
            b.add(Row("2", f"report {metric} by {label}, 90 days, p50", p50, "bare SQL p50", b50, "info", None,
                      p50 / b50, unit="seconds"))
            target = group_by == ["agent"]  # the report: 90 days x 200 agents; by day: 89 times the rows
            b.add(Row("2", f"report {metric} by {label}, 90 days, p99", p99, "bare SQL p99", b99,
                      "< 200 ms" if target else "info", (p99 < 0.200) if target else None, p99 / b99,
                      unit="seconds"))
            b.detail(f"report {metric} by {label}: {len(rows):,} rows per answer, {runs} runs after 3 warm-up; "
                     f"mean {statistics.mean(ours) * 1000:.1f} ms, bare {statistics.mean(bare) * 1000:.1f} ms")
    conn.close()


HOW = """\
### How each figure is measured

Set-up (not measured): 10 queues; events written straight into `events_event` with COPY, encoded as
`events.store` writes them (personal fields encrypted under the customers' keys), no outbox rows:
interactions spread evenly over the 90 days before 2026-11-01, 20,000 customers, 200 agents. Each is
created and queued; 6 % are abandoned (waits exponential, mean 25 s); the rest are offered and
accepted, 20 % held once, ended and wrapped up (talk mean 4 min, after-call work mean 45 s); 15 % of
those get a CSAT answer. About 7.5 events an interaction.

1. **Replay.** `python manage.py replay quality.interaction_facts` as the library call
   (`events.replay.replay`), timed whole: events/s = events in the store / seconds. Baseline: reading
   every event in position order as envelopes with their payloads decoded (`events.store.iter_all`,
   5,000 at a time), applying nothing: what any projection has to do first.
2. **Report.** `quality.kpis.report(metric, group_by, 90 days)` (what the reports API runs, without
   HTTP), for aht, fcr and service_level, grouped by agent (200 rows) and by agent and day (about
   17,700 rows), 30 runs after 3 warm-up; beside it, in the same
   loop, the bare SQL it runs (`quality.kpis.report_sql`) through psycopg with nothing built from the
   rows, with the same `work_mem` (`KPI_REPORT_WORK_MEM`, 64MB) that `report` sets. The first run of
   each also checks both return the same number of rows.
"""


def write_docs(b: Bench, info: dict, elapsed: float) -> None:
    m, s = info["machine"], info["server"]
    lines = [START_MARK, "## Results: `make bench-kpis`", "",
             "Generated by `bench/kpis_bench.py`; rerun `make bench-kpis` to replace this section.", "",
             f"- Date: {info['date']}",
             f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} memory, Linux {m['kernel']}, "
             f"Python {m['python']}",
             f"- PostgreSQL {s['server_version']} (fsync={s['fsync']}, synchronous_commit={s['synchronous_commit']})",
             f"- Code: commit {info['revision']}",
             "- Command: `make bench-kpis` (`python -m contactcenter.devstack bench bench/kpis_bench.py`)",
             f"- Run time: {elapsed / 60:.1f} min", ""]
    t = eb.table(b.rows)
    lines.append("| " + " | ".join(t[0]) + " |")
    lines.append("| " + " | ".join("---:" if i in (2, 4, 5) else "---" for i in range(len(t[0]))) + " |")
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in t[1:]]
    lines.append("")
    if b.details:
        lines += ["Details of this run:", ""] + [f"- {d}" for d in b.details] + [""]
    lines += [HOW, END_MARK]
    section = "\n".join(lines)
    text = DOCS.read_text()
    if START_MARK in text and END_MARK in text:
        pre, rest = text.split(START_MARK, 1)
        text = pre + section + rest.split(END_MARK, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    DOCS.write_text(text)
    log(f"wrote the bench-kpis section of {DOCS.relative_to(REPO)}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="50,000 events, 10 runs (no docs)")
    p.add_argument("--events", type=int, help="events to replay (default 500,000)")
    p.add_argument("--runs", type=int, help="report runs per metric (default 30)")
    p.add_argument("--docs", choices=("auto", "yes", "no"), default="auto")
    args = p.parse_args(argv)
    args.events = args.events or (50_000 if args.quick else 500_000)
    args.runs = args.runs or (10 if args.quick else 30)
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url:
        print("set DATABASE_URL, or run `make bench-kpis`", file=sys.stderr)
        return 2
    started = time.monotonic()
    b = Bench(args=args, admin_url=admin_url)
    info = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": eb.machine(),
            "revision": eb.git_revision()}
    ok = True
    try:
        eb.create_database(b)
        setup_schema()
        info["server"] = eb.server_settings(b.url)
        measure_replay(b)
        measure_reports(b)
    except BaseException:
        ok = False
        traceback.print_exc()
    finally:
        try:
            eb.drop_database(b)
        except Exception:
            traceback.print_exc()
    elapsed = time.monotonic() - started
    print()
    print(f"KPI benchmark, {info['date']}, {info['machine']['nproc']} CPUs, run time {elapsed / 60:.1f} min"
          + (" [--quick]" if args.quick else ""))
    eb.print_table(b.rows)
    for d in b.details:
        print(f"  {d}")
    durable = "server" in info and info["server"]["fsync"] == "on"
    if args.docs == "yes" or (args.docs == "auto" and ok and not args.quick and durable
                              and args.events == 500_000):
        write_docs(b, info, elapsed)
    failed = [r for r in b.rows if r.passed is False]
    if failed:
        print("FAILED targets: " + "; ".join(f"#{r.section} {r.figure}" for r in failed))
    return 0 if ok and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
