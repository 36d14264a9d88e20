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
 3. what-if routing over one recorded day of 200 agents and 20,000 contacts (routing.whatif.what_if: read
    the day, replay it through the recorded policy and through a candidate, measure both), seconds
    (< 60 s) and simulated events/s   vs reading the day's events alone (routing.whatif.load_day)
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


# --- 3. what-if routing --------------------------------------------------------------------------------------

WHATIF_START = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)  # a Monday after figure 1's year, recorded 00:00 to 24:00
QUEUES = ("billing", "sales", "support", "tech", "retention", "general")
CANDIDATE = {"queues": {q: {"expansion": [{"after_seconds": 15, "min_proficiency_delta": -1}]} for q in QUEUES},
             "agents": {"*": {"capacity": {"chat": 3}}}}


def whatif_config(rnd: random.Random, agents: int) -> None:
    """Six queues (each its skill at 2 or more; after 30 s one level less) and `agents` agents with one to three
    skills, two chats or one call at a time."""
    from django.contrib.auth import get_user_model

    from routing.models import Agent, AgentSkill, Queue, QueueSkill, Skill

    skills = {q: Skill.objects.get_or_create(name=q)[0] for q in QUEUES}
    for q in QUEUES:
        queue = Queue.objects.create(name=q, expansion=[{"after_seconds": 30, "min_proficiency_delta": -1}],
                                     service_level_seconds=20, vip_boost=5)
        QueueSkill.objects.create(queue=queue, skill=skills[q], min_proficiency=2)
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"wa{i:03d}", password="!") for i in range(agents)])
    rows = Agent.objects.bulk_create([Agent(user=u, languages=["en"], capacity={"chat": 2, "voice": 1})
                                      for u in users])
    AgentSkill.objects.bulk_create([AgentSkill(agent=a, skill=skills[q], proficiency=rnd.randint(1, 5))
                                    for a in rows for q in rnd.sample(QUEUES, rnd.randint(1, 3))])


def whatif_truth(rnd: random.Random, agents: int, contacts: int):
    """The day as it will be recorded: two shifts (08-16, 12-20) with a half-hour break each, and `contacts`
    arrivals from 08:00 to 20:00 (half calls, half chats), routed by the engine (a simulation of the recorded
    policy is the day's truth)."""
    from routing import whatif

    presence, initial = {}, {}
    for i in range(agents):
        name, on = f"wa{i:03d}", (8 if i % 2 == 0 else 12) * 3600.0
        pause = on + rnd.uniform(2, 5.5) * 3600
        presence[name] = [(on, "available"), (pause, "break"), (pause + 1800, "available"), (on + 8 * 3600, "offline")]
        initial[name] = "offline"
    arrivals, t = [], 8 * 3600.0
    for _ in range(contacts):
        t += rnd.expovariate(contacts / (12 * 3600))
        voice = rnd.random() < 0.5
        arrivals.append(whatif.Contact(
            uuid.uuid4(), uuid.uuid4(), "voice" if voice else "chat", rnd.choice(QUEUES), min(t, 20 * 3600 - 1),
            vip=rnd.random() < 0.05, answer_delay=rnd.uniform(2, 6),
            handle=min(1500.0, max(20.0, rnd.expovariate(1 / (180 if voice else 300)))),
            wrap=rnd.uniform(10, 40) if voice else 0.0, patience=rnd.expovariate(1 / 180)))
    from customers.models import CustomerProfile

    CustomerProfile.objects.bulk_create([CustomerProfile(customer_id=c.customer_id, display_name="VIP", version=1,
                                                         registered_at=WHATIF_START, vip_tier="gold")
                                         for c in arrivals if c.vip])
    day = whatif.Day(WHATIF_START, WHATIF_START + dt.timedelta(days=1), arrivals, presence, initial)
    return day, whatif.Simulation(day, whatif.recorded_policy()).run()


def whatif_write(day, outcome) -> int:
    """The day's events, as the live system records them (lifecycle per contact, presence per agent with
    after-call work around each call), written with COPY; returns how many."""
    import psycopg

    from events import registry
    from interactions import events as iev
    from routing.events import AgentPresenceChanged
    from routing.models import Agent

    streams = dict(Agent.objects.values_list("user__username", "stream_id"))
    rows = []  # (occurred_at, stream_type, stream_id, customer_id, channel, event)
    at = lambda s: WHATIF_START + dt.timedelta(seconds=s)  # noqa: E731
    acw: dict[str, list] = {}
    for c in day.contacts:
        events = [(c.arrived - 0.5, iev.InteractionCreated(channel=c.channel, direction="inbound",
                                                           case_id=uuid.uuid4())),
                  (c.arrived, iev.InteractionQueued(queue=c.queue))]
        answered = outcome.answered.get(c.interaction_id)
        if answered:
            agent, t = answered
            ended = t + c.handle
            events += [(t - c.answer_delay, iev.InteractionOffered(agent_id=agent)),
                       (t, iev.InteractionAccepted(agent_id=agent)), (ended, iev.InteractionEnded(reason="resolved")),
                       (ended + c.wrap, iev.InteractionWrappedUp(disposition="done", notes=None))]
            if c.channel == "voice":
                acw.setdefault(agent, []).append((ended, ended + c.wrap))
        elif c.interaction_id in outcome.abandoned:
            events.append((outcome.abandoned[c.interaction_id], iev.InteractionAbandoned()))
        rows += [(s, "interaction", c.interaction_id, c.customer_id, c.channel, v, e) for v, (s, e)
                 in enumerate(events, start=1)]
    for name, changes in day.presence.items():
        # After-call work as live routing records it: only for an agent available when the call ends, and its
        # end sets them available again only if they changed nothing meanwhile.
        spans, timeline, state, k = sorted(acw.get(name, ())), [], "offline", 0
        for t, presence in [*changes, (float("inf"), None)]:
            while k < len(spans) and spans[k][0] < t:
                a, b = spans[k]
                if state == "available":
                    timeline.append((a, "after_call_work"))
                    if b < t:
                        timeline.append((b, "available"))
                    else:
                        state = "after_call_work"  # the next change ends it
                k += 1
            if presence is not None:
                timeline.append((t, presence))
                state = presence
        rows += [(s, "agent", streams[name], None, "", v, AgentPresenceChanged(agent_id=name, presence=p))
                 for v, (s, p) in enumerate(timeline, start=1)]
    rows.sort(key=lambda r: r[0])
    actor = json.dumps({"type": "system"})
    cols = ("event_id, event_type, schema_version, stream_type, stream_id, stream_version, customer_id, "
            "occurred_at, recorded_at, actor, channel, data")
    buf = io.StringIO()
    for s, stream_type, stream_id, customer, channel, version, event in rows:
        et = registry.type_of(event)
        when = at(s).isoformat()
        vals = [str(uuid.uuid4()), et.name, str(et.version), stream_type, str(stream_id), str(version),
                str(customer) if customer else "\\N", when, when, actor, channel,
                json.dumps(registry.to_data(event))]
        buf.write("\t".join(vals) + "\n")
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        with conn.cursor().copy(f"COPY events_event ({cols}) FROM STDIN") as cp:
            cp.write(buf.getvalue())
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE events_event")
    return len(rows)


def measure_whatif(b: Bench) -> None:
    from routing import whatif

    agents, contacts = b.args.agents, b.args.contacts
    rnd = random.Random(11)
    log(f"[3] what-if: {agents} agents, {contacts:,} contacts in one day")
    whatif_config(rnd, agents)
    day, truth = whatif_truth(rnd, agents, contacts)
    written = whatif_write(day, truth)
    log(f"    recorded the day: {written:,} events ({len(truth.answered):,} answered, {len(truth.abandoned):,} "
        "abandoned)")
    end = WHATIF_START + dt.timedelta(days=1)
    whatif.load_day(WHATIF_START, end)  # warm-up: caches, plans
    t0 = time.monotonic()
    loaded = whatif.load_day(WHATIF_START, end)
    read = time.monotonic() - t0
    t0 = time.monotonic()
    report = whatif.what_if(WHATIF_START, end, CANDIDATE)
    whole = time.monotonic() - t0
    perf = report["performance"]
    b.add(Row("3", f"what-if, one day: {agents} agents, {report['contacts']:,} contacts (read, 2 replays, measure)",
              whole, "reading the day's events", read, "< 60 s", whole < 60, whole / read, unit="seconds"))
    per_replay = perf["simulation_seconds"] / 2
    b.add(Row("3", "one replay of the day", per_replay, "reading the day's events", read, "info", None,
              per_replay / read, unit="seconds"))
    b.add(Row("3", "simulated events/s", perf["events_per_second"], "-", None, "info", None))
    rec, rep, cand = (report[k]["totals"] for k in ("recorded", "recorded_policy", "candidate"))
    b.detail(f"what-if: read {perf['events_read']:,} events of {len(loaded.contacts):,} contacts; "
             f"{perf['simulated_events']:,} simulated events and {perf['dispatch_passes']:,} dispatch passes in two "
             f"replays. Service level recorded {rec['service_level']:.1%}, recorded policy replayed "
             f"{rep['service_level']:.1%}, candidate {cand['service_level']:.1%}; ASA {rec['asa_seconds']} s, "
             f"{rep['asa_seconds']} s, {cand['asa_seconds']} s; occupancy {rec['occupancy']:.1%}, "
             f"{rep['occupancy']:.1%}, {cand['occupancy']:.1%}")


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
3. **What-if routing.** Set-up (not measured): six queues and 200 agents (one to three skills at random
   levels; two chats or one call at a time) in two eight-hour shifts with a half-hour break each, and
   20,000 contacts arriving from 08:00 to 20:00 (half calls, half chats; handle times exponential,
   180 s and 300 s; calls wrap up in 10-40 s; patience exponential, 180 s). The day is routed by the
   engine under the recorded policy and written as the events the live system records (lifecycle per
   contact, presence with after-call work per agent): about 140,000 events. Measured:
   `routing.whatif.what_if` for the day with a candidate (every queue relaxes after 15 s instead of
   30 s, three chats per agent): it reads the day, replays it through the recorded policy and through
   the candidate, and measures all three. Events/s: the simulated events of both replays (arrivals,
   presence changes, answers, ends, after-call work, expansion steps) over their time. Baseline, same
   run: reading the day alone (`load_day`, after a warm-up read).
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
    p.add_argument("--agents", type=int, default=200, help="what-if: agents (default 200)")
    p.add_argument("--contacts", type=int, help="what-if: contacts in the day (default 20,000)")
    p.add_argument("--whatif-only", action="store_true", help="figure 3 alone (no docs)")
    p.add_argument("--docs", choices=("auto", "yes", "no"), default="auto")
    args = p.parse_args(argv)
    args.contacts = args.contacts or (4_000 if args.quick else 20_000)
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
        if not args.whatif_only:
            measure(b)
        measure_whatif(b)
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
    print(f"History benchmark (time travel, what-if routing), {info['date']}, {info['machine']['nproc']} CPUs, "
          "run time "
          f"{elapsed / 60:.1f} min" + (" [--quick]" if args.quick else ""))
    eb.print_table(b.rows)
    for d in b.details:
        print(f"  {d}")
    durable = "server" in info and info["server"]["fsync"] == "on"
    if args.docs == "yes" or (args.docs == "auto" and ok and not args.quick and durable
                              and args.touches == 10_000 and not args.whatif_only):
        write_docs(b, info, elapsed)
    failed = [r for r in b.rows if r.passed is False]
    if failed:
        print("FAILED targets: " + "; ".join(f"#{r.section} {r.figure}" for r in failed))
    return 0 if ok and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
