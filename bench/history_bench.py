#!/usr/bin/env python
"""History benchmark, time-travel half (issue 9): an `as_of` timeline for a customer with 10,000 touches.

Run it with `make bench-history` (throw-away PostgreSQL with real fsync), or by hand:

    DATABASE_URL=... python bench/history_bench.py [--quick]

Like the other benchmarks it creates a database `bench_<random>`, migrates it,
measures and drops it; a full run (not --quick) against a server with fsync on
rewrites the `bench-history` section of docs/BENCHMARKS.md.

Figures:
 1. the first timeline page (100 entries) of a customer with 10,000 touches, `as_of` a random instant,
    p50/p99 (p99 < 100 ms)        vs the live timeline's first page (the projection), same run
 2. the customer's context `as_of` a random instant (folds up to all 10,000 events), p50 and events/s (info)
                                  vs the live context
The what-if simulation half of `make bench-history` comes with that feature.
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
START_MARK = "<!-- bench-history:results:start -->"
END_MARK = "<!-- bench-history:results:end -->"
DAYS = 365
END = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
START = END - dt.timedelta(days=DAYS)


def setup_schema() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    log("migrated")


def touch_events(rnd: random.Random):
    """One contact: created, queued, two messages (personal: encrypted), offered, accepted, ended, wrapped up."""
    from interactions import events as iev

    channel = rnd.choice(["chat", "voice", "email", "sms", "social"])
    agent = f"agent{rnd.randrange(50):02d}"
    return [iev.InteractionCreated(channel=channel, direction="inbound", case_id=uuid.uuid4()),
            iev.InteractionQueued(queue="support"),
            iev.MessageRecorded(direction="inbound", body="my parcel has not arrived"),
            iev.InteractionOffered(agent_id=agent), iev.InteractionAccepted(agent_id=agent),
            iev.MessageRecorded(direction="outbound", body="let me check that for you"),
            iev.InteractionEnded(reason="resolved"), iev.InteractionWrappedUp(disposition="done")]


def fill(touches: int, others: int, seed: int = 1) -> tuple[uuid.UUID, int]:
    """The customer (registered through the service, so their key exists) with `touches` events spread over a
    year, recorded when they occurred, among `others` events of 2,000 other customers; COPY, as the store
    encodes them. Returns (customer, events written)."""
    import psycopg

    from customers.services import customer_register
    from events import registry, store
    from events.store import Metadata

    rnd = random.Random(seed)
    ours = customer_register(display_name="Ten Thousand", email="busy@example.com", meta=Metadata()).customer_id
    crowd = [customer_register(display_name=f"c{i}", meta=Metadata()).customer_id for i in range(200)]
    key_cache: dict = {}
    buf = io.StringIO()
    actor = json.dumps({"type": "system"})
    cols = ("event_id, event_type, schema_version, stream_type, stream_id, stream_version, customer_id, "
            "occurred_at, recorded_at, actor, channel, data")
    rows = []

    def contacts(customer, n_events):
        written = 0
        while written < n_events:
            iid, at = uuid.uuid4(), START + dt.timedelta(seconds=rnd.random() * DAYS * 86400)
            events = touch_events(rnd)
            channel = events[0].channel
            for version, event in enumerate(events, start=1):
                at += dt.timedelta(seconds=rnd.expovariate(1 / 30))
                rows.append((at, iid, version, customer, channel, event))
            written += len(events)
        return written

    total = contacts(ours, touches) + sum(contacts(rnd.choice(crowd), 8) for _ in range(others // 8))
    rows.sort(key=lambda r: r[0])  # recorded in time order, as a live system would
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        # Registered (through the service, for their keys) before the year of touches began.
        conn.execute("UPDATE events_event SET occurred_at = %s, recorded_at = %s WHERE stream_type = 'customer'",
                     [START - dt.timedelta(days=1), START - dt.timedelta(days=1)])
        for at, iid, version, customer, channel, event in rows:
            et = registry.type_of(event)
            data = store._stored_data(et, event, customer, key_cache)
            vals = [str(store.uuid7()), et.name, str(et.version), "interaction", str(iid), str(version),
                    str(customer), at.isoformat(), at.isoformat(), actor, channel, data]
            buf.write("\t".join(v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
                                for v in vals) + "\n")
        with conn.cursor().copy(f"COPY events_event ({cols}) FROM STDIN") as cp:
            cp.write(buf.getvalue())
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE events_event")
    return ours, total


def first_page_as_of(customer_id, at):
    """What the timeline view runs for `?as_of=` (first page, 100 entries), without HTTP."""
    from customers import selectors
    from customers.api.serializers import timeline_json
    from history import asof

    rows = list(asof.timeline_as_of(customer_id, at).order_by("occurred_at", "position")[:101])
    return [timeline_json(e) for e in selectors.timeline_withhold(asof.timeline_entries(rows[:100]))]


def first_page_live(customer_id):
    """What the timeline view runs without `as_of` (first page, 100 entries), without HTTP."""
    from customers import selectors
    from customers.api.serializers import timeline_json

    rows = list(selectors.timeline_list(customer_id).order_by("occurred_at", "position")[:101])
    return [timeline_json(e) for e in selectors.timeline_open(selectors.timeline_withhold(rows[:100]))]


def measure(b: Bench) -> None:
    from django.db import connection

    from customers import selectors
    from customers.api.serializers import CustomerContextOutput
    from events.models import Event
    from events.projection import get
    from events.replay import replay
    from history import asof

    log(f"[1] filling {b.args.touches:,} touches of one customer among {b.args.others:,} other events")
    t0 = time.monotonic()
    customer, total = fill(b.args.touches, b.args.others)
    log(f"    filled {total:,} in {time.monotonic() - t0:.1f} s; projecting the live timeline and directory")
    replay(get("customers.timeline"), progress=False)
    replay(get("customers.directory"), progress=False)
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    mine = Event.objects.filter(customer_id=customer).count()
    rnd = random.Random(7)
    runs = b.args.runs
    ours, base, sizes = [], [], []
    for k in range(runs + 5):
        at = START + dt.timedelta(seconds=rnd.random() * DAYS * 86400)
        t0 = time.monotonic()
        page = first_page_as_of(customer, at)
        t1 = time.monotonic()
        live = first_page_live(customer)
        t2 = time.monotonic()
        if k >= 5:  # warm-up
            ours.append(t1 - t0)
            base.append(t2 - t1)
            sizes.append(len(page))
    assert live and all(n <= 100 for n in sizes)
    p50, p99, b50, b99 = (percentile(ours, 50), percentile(ours, 99), percentile(base, 50), percentile(base, 99))
    b.add(Row("1", f"timeline first page as_of a random instant, {mine:,} touches, p50", p50, "live page p50", b50,
              "info", None, p50 / b50, unit="seconds"))
    b.add(Row("1", f"timeline first page as_of a random instant, {mine:,} touches, p99", p99, "live page p99", b99,
              "< 100 ms", p99 < 0.100, p99 / b99, unit="seconds"))
    b.detail(f"timeline: {runs} instants after 5 warm-up, uniform over the year; mean {statistics.mean(ours) * 1000:.1f}"
             f" ms as_of, {statistics.mean(base) * 1000:.1f} ms live; pages of {min(sizes)}-{max(sizes)} entries")

    ctx, ctx_live, folded = [], [], []
    for k in range(b.args.context_runs + 2):
        at = START + dt.timedelta(seconds=rnd.random() * DAYS * 86400)
        n = Event.objects.filter(customer_id=customer, recorded_at__lte=at).count()
        t0 = time.monotonic()
        _ = CustomerContextOutput(asof.customer_context_as_of(customer, at)).data
        t1 = time.monotonic()
        _ = CustomerContextOutput(selectors.customer_context(customer)).data
        t2 = time.monotonic()
        if k >= 2:
            ctx.append(t1 - t0)
            ctx_live.append(t2 - t1)
            folded.append(n / (t1 - t0))
    c50, l50 = percentile(ctx, 50), percentile(ctx_live, 50)
    b.add(Row("2", "context as_of a random instant, p50", c50, "live context p50", l50, "info", None, c50 / l50,
              unit="seconds"))
    b.add(Row("2", "context as_of: events folded/s (median)", statistics.median(folded), "-", None, "info", None))
    b.detail(f"context: {b.args.context_runs} instants after 2 warm-up; folds the customer's events recorded by the "
             f"instant (on average {statistics.mean(x * y for x, y in zip(ctx, folded, strict=True)):,.0f})")


HOW = """\
### How each figure is measured

Set-up (not measured): one customer registered through the service (so their data key exists; their
registration is then dated the day before the year) and
10,000 events of theirs, in contacts of 8 events (created, queued, a message in, offered, accepted, a
message out, ended, wrapped up; messages encrypted under the customer's key) spread uniformly over the
year before 2026-11-01 on five channels, among 100,000 events of 200 other customers; written with COPY
in time order, `recorded_at` = `occurred_at`. The live timeline and directory projections are then
replayed (so the baseline has its rows).

1. **Timeline as_of.** What `GET /api/v1/customers/{id}/timeline?as_of=T` runs, without HTTP:
   `history.asof.timeline_as_of` (who was merged into whom at T, then the events by `customer_id`
   with `recorded_at <= T`), the first page of 100 by (occurred_at, position), turned into entries
   with personal fields decrypted, withheld and serialized (`timeline_json`). T uniform over the
   year, 200 instants after 5 warm-up. Baseline, in the same loop: the live first page
   (`customers.selectors.timeline_list` on the projection, decrypted, withheld, serialized).
2. **Context as_of.** `history.asof.customer_context_as_of` serialized (folds every interaction of the
   customer recorded by T through `interactions.domain.evolve`; messages are not read, they do not move
   the lifecycle), 20 instants after 2 warm-up; events/s = the customer's events recorded by T / seconds.
   Baseline: the live context (projection reads).
"""


def write_docs(b: Bench, info: dict, elapsed: float) -> None:
    m, s = info["machine"], info["server"]
    lines = [START_MARK, "## Results: `make bench-history`", "",
             "Generated by `bench/history_bench.py`; rerun `make bench-history` to replace this section.", "",
             f"- Date: {info['date']}",
             f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} memory, Linux {m['kernel']}, "
             f"Python {m['python']}",
             f"- PostgreSQL {s['server_version']} (fsync={s['fsync']}, synchronous_commit={s['synchronous_commit']})",
             f"- Code: commit {info['revision']}",
             "- Command: `make bench-history` (`python -m contactcenter.devstack bench bench/history_bench.py`)",
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
    log(f"wrote the bench-history section of {DOCS.relative_to(REPO)}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2,000 touches, 20,000 others, 30 runs (no docs)")
    p.add_argument("--touches", type=int, help="the customer's events (default 10,000)")
    p.add_argument("--others", type=int, help="other customers' events (default 100,000)")
    p.add_argument("--runs", type=int, help="timeline instants (default 200)")
    p.add_argument("--context-runs", type=int, help="context instants (default 20)")
    p.add_argument("--docs", choices=("auto", "yes", "no"), default="auto")
    args = p.parse_args(argv)
    args.touches = args.touches or (2_000 if args.quick else 10_000)
    args.others = args.others or (20_000 if args.quick else 100_000)
    args.runs = args.runs or (30 if args.quick else 200)
    args.context_runs = args.context_runs or (5 if args.quick else 20)
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url:
        print("set DATABASE_URL, or run `make bench-history`", file=sys.stderr)
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
        measure(b)
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
    print(f"History benchmark (time travel), {info['date']}, {info['machine']['nproc']} CPUs, run time "
          f"{elapsed / 60:.1f} min" + (" [--quick]" if args.quick else ""))
    eb.print_table(b.rows)
    for d in b.details:
        print(f"  {d}")
    durable = "server" in info and info["server"]["fsync"] == "on"
    if args.docs == "yes" or (args.docs == "auto" and ok and not args.quick and durable
                              and args.touches == 10_000):
        write_docs(b, info, elapsed)
    failed = [r for r in b.rows if r.passed is False]
    if failed:
        print("FAILED targets: " + "; ".join(f"#{r.section} {r.figure}" for r in failed))
    return 0 if ok and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
