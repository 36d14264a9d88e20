"""Scenarios 1 (the ledger check at the end of the ingest), 4 (routing workers), 7 (duplicates and order) and
8 (a thousand sockets)."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import intake_bench as ib
import routing_bench as rb
from events_bench import log, percentile

from trust.common import (
    HEAD_SQL,
    Db,
    Row,
    catch_up,
    http_json,
    make_agents,
    make_queue,
    secs,
    settle,
    wait_until,
    webhook,
)
from trust.ingest import INGEST_QUEUE, PROVIDER  # the unstaffed queue: no agent of 4, 6 or 8 is offered it
from trust.sockets import Client, Fleet
from trust.stack import REPO, Stack

MESSAGE = "interactions.MessageRecorded"


# --- 1: the ledger, at the end of the ingest ----------------------------------------------------------------------


def store_counts(db: Db, table: str) -> Counter:
    rows = db.rows(f"SELECT data ->> 'provider_message_id', count(*) FROM {table} WHERE event_type = %s "
                   "AND data ->> 'provider' = %s GROUP BY 1", [MESSAGE, PROVIDER])
    return Counter(dict(rows))


def topic_counts(bootstrap: str, topic: str, timeout: float = 300) -> tuple[Counter, Counter, int]:
    """Every record on the topic from the beginning: (message ids of our provider, positions, records)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             allow_auto_create_topics=False, max_poll_records=5000)
    ids: Counter = Counter()
    positions: Counter = Counter()
    records = 0
    try:
        parts = wait_until(lambda: consumer.partitions_for_topic(topic), 30, 0.5) and consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        idle, deadline = 0, time.monotonic() + timeout
        # Read until the topic stays quiet (the broker's end offsets are not to be trusted: DESIGN.md).
        while idle < 4 and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=1000)
            if not batch:
                idle += 1
                continue
            idle = 0
            for recs in batch.values():
                for rec in recs:
                    records += 1
                    v = json.loads(rec.value)
                    positions[v["position"]] += 1
                    data = v.get("data") or {}
                    if v.get("event_type") == MESSAGE and data.get("provider") == PROVIDER:
                        ids[data.get("provider_message_id")] += 1
    finally:
        consumer.close()
    return ids, positions, records


def verify_ledger(ctx) -> dict:
    """The ledger against the store, the topic and the timeline projection (after everything caught up)."""
    acked = ctx.ingest.acked()
    extra = {i for r in ctx.rows for i in r.acked_ids if not i.startswith("trust-")}  # scenario 6's own chats
    wanted = set(acked) | extra
    store = store_counts(ctx.db, "events_event")
    timeline = store_counts(ctx.db, "customers_timelineentry")
    topic, positions, records = topic_counts(ctx.stack.kafka.bootstrap, "contactcenter.events")
    out = {
        "acked": wanted,
        "missing_store": {i for i in wanted if store[i] == 0},
        "missing_timeline": {i for i in wanted if timeline[i] == 0},
        "missing_topic": {i for i in wanted if topic[i] == 0},
        "dup_store": {i for i in wanted if store[i] > 1},
        "dup_timeline": {i for i in wanted if timeline[i] > 1},
        "dup_topic": {i for i in wanted if topic[i] > 1},
        "unacked_but_stored": {i for i in store if i not in wanted and i.startswith("trust-")},
        "positions_twice": sum(1 for n in positions.values() if n > 1),
        "records": records,
        "head": ctx.db.value(HEAD_SQL),
        "topic_positions": len(positions),
    }
    out["lost"] = out["missing_store"] | out["missing_timeline"] | out["missing_topic"]
    out["duplicated"] = out["dup_store"] | out["dup_timeline"]
    return out


def convergence(ctx) -> dict:
    """`manage.py projection_checksum --replay --json` against the stack's database (the live tables stay)."""
    proc = subprocess.run([sys.executable, "manage.py", "projection_checksum", "--replay", "--json"], cwd=REPO,
                          env=ctx.stack.env("trust-checksum"), capture_output=True, text=True, timeout=1800)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        return {"equal": False, "error": (proc.stderr or proc.stdout)[-2000:]}


def sustained_ingest_row(ctx, t_start: float, t_end: float, t_caught: tuple, ledger: dict, conv: dict,
                         expected_503: int) -> Row:
    a = ctx.args
    row = Row("1", "sustained ingest",
              f"signed webhooks at {a.rate:g}/s for {(t_end - t_start) / 60:.1f} min (chat, SMS, email, Instagram DMs; "
              "scenarios 2, 3, 2b, 5 and 6 happen during it)",
              "every acknowledged (2xx) provider message id is in the event store exactly once, on the Kafka topic "
              "at least once, and in the customer timeline exactly once; every projection equals a full replay",
              "The runner keeps a ledger of every delivery answered 2xx (`provider_message_id`; retries of a "
              "delivery keep its id, as a provider's do). When the ingest ends and the relay and projectors have "
              "caught up, it counts `interactions.MessageRecorded` events per `provider_message_id` in "
              "`events_event` and in `customers_timelineentry`, and reads the whole topic from the beginning "
              "with a plain consumer. Lost = acknowledged but missing from any of the three; duplicated = more "
              "than one effect in the store or the timeline (more than one record on the topic is allowed: "
              "at-least-once). Then `manage.py projection_checksum --replay` sums every projection's tables "
              "(rows in key order) and compares them with the same projections rebuilt from the store in a "
              "scratch schema.")
    deliveries = ctx.ingest.snapshot()
    w = ctx.ingest.window(t_start, time.monotonic())
    ok_lat = [at.end - at.start for d in deliveries for at in d.attempts
              if isinstance(at.status, int) and 200 <= at.status < 300]
    row.acked = len(ledger["acked"])
    row.lost = len(ledger["lost"])
    row.duplicated = len(ledger["duplicated"])
    row.unexpected_5xx = w["5xx"] - expected_503
    t_relay, t_proj = t_caught
    row.recover = f"caught up {secs(max(t_relay or 0, t_proj or 0) or None, t_end)} after the last delivery"
    equal = conv.get("equal") is True
    projections = conv.get("projections", {})
    row.figures = [f"{len(deliveries):,} deliveries, {row.acked:,} acknowledged "
                   f"({sum(1 for d in deliveries if d.duplicate_answer)} as duplicates of an earlier attempt)",
                   f"2xx response p50 {percentile(ok_lat, 50) * 1000:.0f} ms, p99 {percentile(ok_lat, 99) * 1000:.0f} ms",
                   f"{ledger['records']:,} records on the topic, {ledger['positions_twice']:,} positions more than once",
                   f"{sum(1 for p in projections.values() if p.get('equal'))}/{len(projections)} projections "
                   "equal a full replay"]
    row.detail(f"ledger: {len(ledger['missing_store'])} missing from the store, {len(ledger['missing_timeline'])} "
               f"from the timeline, {len(ledger['missing_topic'])} from the topic; {len(ledger['dup_store'])} twice "
               f"in the store, {len(ledger['dup_timeline'])} twice in the timeline, {len(ledger['dup_topic'])} "
               f"more than once on the topic (allowed); {len(ledger['unacked_but_stored'])} stored although never "
               "acknowledged (an answer lost on the way: the provider retries and gets a duplicate answer)")
    for what in ("missing_store", "missing_timeline", "missing_topic", "dup_store", "dup_timeline"):
        if ledger[what]:
            row.detail(f"{what}: {sorted(ledger[what])[:10]}")
    row.detail(f"all attempts over the ingest by status: {w['statuses']}; refused {w['refused']}, given up "
               f"{w['gave_up']}")
    for name, p in projections.items():
        live = p.get("live", {})
        row.detail(f"{name}: {live.get('rows', 0):,} rows, live {live.get('digest', '')[:12]} "
                   f"{'=' if p.get('equal') else '!='} replay {p.get('replay', {}).get('digest', '')[:12]}"
                   + (f"; differences: {p.get('differences')}" if not p.get("equal") else ""))
    if conv.get("error"):
        row.detail(f"projection_checksum failed: {conv['error']}")
    row.check("nothing acknowledged was lost", row.lost == 0)
    row.check("no message was recorded or projected twice", row.duplicated == 0)
    row.check("no unexpected 5xx", row.unexpected_5xx == 0)
    row.check("every projection equals a full replay", equal)
    return row


# --- 7: duplicate and out-of-order webhooks ------------------------------------------------------------------------


def duplicates_and_order(ctx) -> Row:
    a = ctx.args
    ports = ctx.stack.web_ports
    row = Row("7", "duplicate and out-of-order webhooks",
              f"{a.dup_messages} messages each delivered 3 times (a byte-for-byte replay, a provider retry with a new "
              f"signature) plus {a.dup_races} delivered by 8 clients at once; {a.dup_calls} calls whose events "
              "arrive in the wrong order (answered before ringing, resumed before held), and "
              f"{max(1, a.dup_calls // 6)} whose `ended` overtakes `answered`",
              "each effect once: one 201 per message id, every repeat answered 200 `duplicate`, one event in the "
              "store and the timeline; an event out of order is 409 and stores nothing, and is accepted when "
              "retried in order (docs/WEBHOOKS.md); a call ended while still ringing is abandoned, so its later "
              "`answered` stays refused",
              "Deliveries go to both web processes. Message ids are checked as in scenario 1. For calls the "
              "client delivers each call's events in a shuffled order and, like a provider, retries a 409 after "
              "the events before it went through; after catching up, each call's stream must hold each lifecycle "
              "event once (InteractionCreated, InteractionQueued, InteractionOffered, InteractionAccepted, "
              "InteractionHeld, InteractionResumed, InteractionEnded), or, for a call ended while ringing, "
              "InteractionCreated, InteractionQueued and InteractionAbandoned and nothing else.")
    statuses: Counter = Counter()
    first_201: Counter = Counter()
    acked: set[str] = set()
    lock = threading.Lock()

    def note(mid: str, status, out: dict) -> None:
        with lock:
            statuses[str(status)] += 1
            if status == 201:
                first_201[mid] += 1
            if isinstance(status, int) and status < 300:
                acked.add(mid)

    # Messages: original, a byte-for-byte replay of the same signed request, a re-signed retry.
    def message(i: int) -> None:
        mid = f"s7-msg-{i}"
        body = {"provider_message_id": mid, "body": f"duplicate test {i}", "queue": INGEST_QUEUE,
                "from": {"kind": "phone", "value": f"+1415{7_100_000 + i:07d}"}}
        status, out, sent = webhook(ports[i % 2], "sms", body)
        note(mid, status, out)
        status, out, _ = webhook(ports[(i + 1) % 2], "sms", body, signed=sent)
        note(mid, status, out)
        time.sleep(1.1)  # a later second: a new timestamp and signature
        status, out, _ = webhook(ports[i % 2], "sms", body)
        note(mid, status, out)

    def race(i: int) -> None:
        mid = f"s7-race-{i}"
        body = {"provider_message_id": mid, "body": f"race {i}", "conversation_id": f"s7-race-{i}",
                "queue": INGEST_QUEUE, "from": {"kind": "phone", "value": f"+1415{7_200_000 + i:07d}"}}
        sent = ib.signed("chat", body, str(int(time.time())))
        gate = threading.Barrier(8)

        def one(k: int) -> None:
            gate.wait(10)
            status, out, _ = webhook(ports[k % 2], "chat", body, signed=sent)
            note(mid, status, out)
        threads = [threading.Thread(target=one, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    # Calls: ringing, answered, held, resumed, ended, in a shuffled order, 409s retried.
    n_abandon = max(1, a.dup_calls // 6)
    calls: dict[str, dict] = {}
    rnd = random.Random(7)

    def call(i: int) -> None:
        cid = f"s7-call-{i}"
        events = [
            {"event": "ringing", "queue": INGEST_QUEUE, "from": {"kind": "phone", "value": f"+1415{7_300_000 + i:07d}"}},
            {"event": "answered", "agent_id": ctx.voice_agents[i % len(ctx.voice_agents)]},
            {"event": "held"}, {"event": "resumed"},
            {"event": "ended", "reason": "resolved", "duration_seconds": 120},
        ]
        abandon = i < n_abandon
        if abandon:  # ended overtakes answered: the call is abandoned while still ringing
            groups = [[0], [4], [1, 2, 3]]
        else:  # the first four in a shuffled order (answered before ringing, resumed before held...), ended last
            groups = [[1, 0, 3, 2] if i % 2 else rnd.sample([0, 1, 2, 3], 4), [4]]
        result = {"abandon": abandon, "409": 0, "final_refused": []}
        for group in groups:
            pending = [(k, {"provider_message_id": f"{cid}-{k}", "conversation_id": cid, **events[k]}) for k in group]
            tries: Counter = Counter()
            while pending:
                k, body = pending.pop(0)
                status, out, _ = webhook(ports[(i + k) % 2], "voice", body)
                note(body["provider_message_id"], status, out)
                tries[k] += 1
                if status == 409:
                    result["409"] += 1
                    if tries[k] < 6:
                        pending.append((k, body))  # the provider retries it after the others of the group
                    else:
                        result["final_refused"].append(events[k]["event"])
                elif not (isinstance(status, int) and status < 300):
                    result.setdefault("other", []).append(status)
        with lock:
            calls[cid] = result

    log(f"scenario 7: {a.dup_messages} messages x3, {a.dup_races} races x8, {a.dup_calls} calls out of order")
    settle(ctx.db)
    position = ctx.db.value(HEAD_SQL)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(message, range(a.dup_messages)))
        list(pool.map(race, range(a.dup_races)))
        list(pool.map(call, range(a.dup_calls)))
    t1 = time.monotonic()
    head = ctx.db.value(HEAD_SQL)
    t_relay, t_proj = catch_up(ctx.db, head, a.recover_timeout)

    msg_ids = [f"s7-msg-{i}" for i in range(a.dup_messages)] + [f"s7-race-{i}" for i in range(a.dup_races)]
    store = Counter(dict(ctx.db.rows("SELECT data ->> 'provider_message_id', count(*) FROM events_event "
                                     "WHERE position > %s AND event_type = %s GROUP BY 1", [position, MESSAGE])))
    timeline = Counter(dict(ctx.db.rows("SELECT data ->> 'provider_message_id', count(*) FROM customers_timelineentry "
                                        "WHERE position > %s AND event_type = %s GROUP BY 1", [position, MESSAGE])))
    lost = [m for m in msg_ids if m in acked and (store[m] == 0 or timeline[m] == 0)]
    doubled = [m for m in msg_ids if store[m] > 1 or timeline[m] > 1 or first_201[m] > 1]

    # Each call's stream: the lifecycle events, once each.
    streams = dict(ctx.db.rows("SELECT c.conversation_id, c.interaction_id FROM interactions_conversation c "
                               "WHERE c.channel = 'voice' AND c.provider = %s AND c.conversation_id = ANY(%s)",
                               [PROVIDER, list(calls)]))
    by_stream: dict = {}
    for sid, etype, n in ctx.db.rows("SELECT stream_id, event_type, count(*) FROM events_event WHERE stream_id = "
                                     "ANY(%s::uuid[]) GROUP BY 1, 2", [list(streams.values())]):
        by_stream.setdefault(sid, {})[etype.split(".")[-1]] = n
    in_timeline = Counter(dict(ctx.db.rows("SELECT stream_id, count(*) FROM customers_timelineentry WHERE stream_id = "
                                           "ANY(%s::uuid[]) GROUP BY 1", [list(streams.values())])))
    with_customer = Counter(dict(ctx.db.rows("SELECT stream_id, count(*) FROM events_event WHERE stream_id = "
                                             "ANY(%s::uuid[]) AND customer_id IS NOT NULL GROUP BY 1",
                                             [list(streams.values())])))
    life = ["InteractionCreated", "InteractionQueued", "InteractionOffered", "InteractionAccepted", "InteractionHeld",
            "InteractionResumed", "InteractionEnded"]
    gone = ["InteractionCreated", "InteractionQueued", "InteractionAbandoned"]
    wrong_calls = []
    for cid, res in calls.items():
        got = by_stream.get(streams.get(cid), {})
        want = gone if res["abandon"] else life
        lifecycle = {k: v for k, v in got.items() if k.startswith("Interaction")}
        sid = streams.get(cid)
        if lifecycle != dict.fromkeys(want, 1) or in_timeline[sid] != with_customer[sid]:
            wrong_calls.append(f"{cid}: {got} (store {with_customer[sid]} with the customer, timeline {in_timeline[sid]})")
    refused_ok = all(sorted(res["final_refused"]) == (["answered", "held", "resumed"] if res["abandon"] else [])
                     for res in calls.values())
    other = [(cid, res.get("other")) for cid, res in calls.items() if res.get("other")]
    call_409 = sum(r["409"] for r in calls.values())

    w_5xx = sum(n for s, n in statuses.items() if s.startswith("5"))
    row.acked = len(acked)
    row.acked_ids = []  # checked here, not against the ingest's ledger
    row.lost = len(lost) + sum(1 for c in calls if c not in streams)
    row.duplicated = len(doubled) + len(wrong_calls)
    row.unexpected_5xx = w_5xx
    row.recover = f"projected {secs(t_proj, t1)} after the last delivery"
    row.figures = [f"answers {dict(statuses)}", f"{call_409} × 409 for call events out of order (expected)",
                   f"{sum(1 for m in msg_ids if first_201[m] == 1)}/{len(msg_ids)} message ids with exactly one 201"]
    row.detail(f"{len(msg_ids)} message ids: store {sum(store[m] for m in msg_ids)} events, timeline "
               f"{sum(timeline[m] for m in msg_ids)} entries; calls: {len(streams)}/{len(calls)} known, "
               f"{len(wrong_calls)} with a lifecycle event missing or repeated")
    for wc in wrong_calls[:5]:
        row.detail(f"call not as expected: {wc}")
    if other:
        row.detail(f"call events answered neither 2xx nor 409: {other[:5]}")
    if lost:
        row.detail(f"lost: {lost[:10]}")
    if doubled:
        row.detail(f"doubled: {doubled[:10]}")
    row.check("each message recorded and projected once, one 201 per id", not lost and not doubled)
    row.check("each call's lifecycle events once, in the store and the timeline", not wrong_calls and len(streams) == len(calls))
    row.check("out-of-order events refused with 409 and accepted on retry; an abandoned call stays closed", refused_ok)
    row.check("no 5xx", w_5xx == 0)
    row.check("projections caught up", t_relay is not None and t_proj is not None)
    return row


# --- 4: routing workers killed mid-decision, eight racing ----------------------------------------------------------

LOCK_HOLDER_SQL = """
SELECT a.application_name, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %s AND l.objid::bigint = %s
  AND a.xact_start > %s
"""
IN_HAND_SQL = "SELECT count(*) FROM routing_work WHERE queue = 'trust-race' AND status IN ('offered', 'assigned')"


def routing_race(ctx) -> Row:
    from routing.services import DISPATCH_LOCK

    a = ctx.args
    stack: Stack = ctx.stack
    slots = a.race_agents * a.race_capacity
    row = Row("4", "routing workers: `kill -9` mid-decision, 8 racing",
              f"{a.race_workers} routing workers (solo pool) racing for {a.race_agents} agents (chat capacity "
              f"{a.race_capacity}: {slots} slots); {a.race_work} chats arrive at once; the worker holding the "
              "dispatch lock is killed (`kill -9`) in the middle of its decision; then "
              f"{a.race_seconds:.0f} s of agents accepting, ending and wrapping up while new chats keep coming",
              "never two offers outstanding for one interaction, never more than one acceptance, never more work "
              "than an agent's capacity (counted in PostgreSQL as bench/routing_bench.py does); the killed "
              "decision's work is offered again (redelivery with acks_late + reject_on_worker_lost, or the sweep)",
              f"The regular routing workers are stopped and {a.race_workers} are started (`celery worker -Q routing "
              "-P solo`, each with `application_name=trust-race-N` on its database connections). The agents "
              "(`trust-race` skill, queue `trust-race`) are available; the chats are created in one transaction, "
              "so one dispatch task decides up to ROUTING_BATCH offers in one transaction. The runner polls "
              "`pg_locks` every 2 ms for the holder of the dispatch advisory lock with a transaction open and "
              "kills that worker's process group: its decision never commits, its task is unacknowledged. Time "
              "to recover = from the kill until every slot holds work. Then agents accept offers over REST "
              "(`POST .../accept/` as the agent), end and wrap up (freeing slots), and new chats keep arriving, "
              "while `routing_work` is counted against capacities every 0.2 s. Safety at the end uses "
              "bench/routing_bench.py's queries over the whole event history, plus interactions with more than one "
              "InteractionAccepted. Redelivery: the killed task's id (its `received` line in the worker's log) is "
              "looked for in the other workers' logs for up to twice the visibility timeout plus a minute, timed "
              "by that log line (the trust stack sets CELERY_VISIBILITY_TIMEOUT="
              f"{a.visibility_timeout} s and CELERY_UNACKED_RESTORE_INTERVAL={a.restore_interval} s).")
    make_queue("trust-race", channels=["chat"], skill="trust-race", offer_timeout_seconds=600)
    agents = make_agents("race", a.race_agents, skill="trust-race", capacity={"chat": a.race_capacity})
    tokens = {ag["name"]: ag["token"] for ag in agents}
    from customers.services import customer_register
    from events.store import Metadata
    from routing.services import agent_presence_set

    customers = [customer_register(display_name=f"Race {i}", email=f"race{i}@example.com", meta=Metadata()).customer_id
                 for i in range(50)]
    for k in range(stack.routing_workers):
        stack.stop(f"routing-{k}")
    names = [f"race-{k}" for k in range(a.race_workers)]
    for k, name in enumerate(names):
        cmd = Stack.routing_command(k)
        cmd[cmd.index("-n") + 1] = f"routing-race{k}@%h"
        stack.start(name, cmd)
    from contactcenter.celery import app

    wait_until(lambda: {n.split("@")[0] for r in (app.control.ping(timeout=1.0) or []) for n in r}
               >= {f"routing-race{k}" for k in range(a.race_workers)}, 90, 0.5)
    for ag in agents:
        agent_presence_set(agent_id=ag["name"], presence="available")
    time.sleep(2.0)

    # The burst: one transaction, one dispatch request, one big decision.
    from django.db import connection, transaction

    from interactions.services import interaction_create

    probe = Db(stack.database_url)
    overruns = {"max": 0, "samples": 0}
    stop_sampling = threading.Event()

    def sample() -> None:
        while not stop_sampling.is_set():
            try:
                overruns["max"] = max(overruns["max"], probe.value(rb.WORK_OVERRUNS_SQL))
                overruns["samples"] += 1
            except Exception:
                pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    killer = Db(stack.database_url)
    killer.value("SELECT 1")  # connected before the burst: the first pass takes a fraction of a second
    classid, objid = DISPATCH_LOCK >> 32, DISPATCH_LOCK & 0xFFFFFFFF
    armed = threading.Event()
    since: list = []
    kill: dict = {}

    def kill_first_decider() -> None:
        """From the burst's commit on, every millisecond: who holds the dispatch lock in a transaction begun after
        that commit (deciding the burst's work)? Kill it at once."""
        armed.wait(30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = [r for r in killer.rows(LOCK_HOLDER_SQL, [classid, objid, since[0]]) if r[0].startswith("trust-race-")]
            if rows:
                kill["name"] = rows[0][0].removeprefix("trust-")
                kill["at"], kill["wall"] = time.monotonic(), time.time()
                stack.kill(kill["name"], signal.SIGKILL)
                return
            time.sleep(0.001)

    hunter = threading.Thread(target=kill_first_decider, daemon=True)
    hunter.start()
    with transaction.atomic():
        created = [str(interaction_create(channel="chat", direction="inbound", meta=Metadata(), queue="trust-race",
                                          customer_id=customers[i % len(customers)]).interaction.id)
                   for i in range(a.race_work)]
        with connection.cursor() as cur:
            cur.execute("SELECT clock_timestamp()")  # a dispatch that began after this began after the commit
            since.append(cur.fetchone()[0])
    armed.set()
    hunter.join(40)
    killed = kill.get("name")
    t_kill = kill.get("at")
    offers_at_kill = in_hand_at_kill = None
    if killed:
        in_hand_at_kill = offers_at_kill = probe.value(IN_HAND_SQL)  # what committed before; the killed pass's never does
        log(f"scenario 4: killed {killed} holding the dispatch lock mid-decision ({in_hand_at_kill} in hand)")
    task_id = _last_received(stack, killed) if killed else None
    full = min(slots, a.race_work)
    t_full = wait_until(lambda: probe.value(IN_HAND_SQL) >= full, a.recover_timeout, 0.1)
    # Redelivery: once the visibility timeout has passed, some worker's periodic restore puts it back.
    seen_again = wait_until(lambda: task_id and _received_elsewhere(stack, names, killed, task_id),
                            2 * a.visibility_timeout + 60 if task_id else 0, 1.0)
    redelivered_after = _received_after(stack, names, killed, task_id, kill["wall"]) if seen_again else None

    # Churn: accept, end, wrap up, new chats.
    accepts = Counter()
    churn_stop = threading.Event()
    port_cycle = iter(range(10 ** 9))

    def agent_call(name: str, path: str, body: dict) -> int | str:
        port = stack.web_ports[next(port_cycle) % len(stack.web_ports)]
        status, _ = http_json(port, "POST", path, token=tokens[name], body=body)
        return status

    def churn() -> None:
        k = 0
        with ThreadPoolExecutor(8) as pool:
            while not churn_stop.is_set():
                rows = probe.rows("SELECT interaction_id::text, agent_id, status FROM routing_work WHERE queue = "
                                  "'trust-race' AND status IN ('offered', 'assigned') ORDER BY random() LIMIT 40")
                jobs = []
                for iid, agent, status in rows:
                    if status == "offered":
                        jobs.append(("accept", pool.submit(agent_call, agent, f"/api/v1/interactions/{iid}/accept/",
                                                           {})))
                    elif random.random() < 0.5:
                        def done(iid=iid, agent=agent):
                            s1 = agent_call(agent, f"/api/v1/interactions/{iid}/end/", {"reason": "resolved"})
                            s2 = agent_call(agent, f"/api/v1/interactions/{iid}/wrap-up/", {"disposition": "resolved"})
                            return f"{s1}/{s2}"
                        jobs.append(("end+wrap-up", pool.submit(done)))
                for kind, fut in jobs:
                    accepts[f"{kind} {fut.result()}"] += 1
                with transaction.atomic():
                    for _ in range(5):
                        interaction_create(channel="chat", direction="inbound", meta=Metadata(), queue="trust-race",
                                           customer_id=customers[k % len(customers)])
                        k += 1
                time.sleep(0.1)

    churner = threading.Thread(target=churn, daemon=True)
    churner.start()
    time.sleep(a.race_seconds)
    churn_stop.set()
    churner.join(60)
    time.sleep(2.0)
    stop_sampling.set()
    sampler.join(5)

    params = {"offered": rb.OFFERED, "declined": rb.DECLINED}
    doubles = probe.value(rb.DOUBLE_OFFERS_SQL, params)
    work_over = probe.value(rb.WORK_OVERRUNS_SQL)
    voice = probe.value(rb.VOICE_RULE_SQL)
    out_of_step = probe.value(rb.OUT_OF_STEP_SQL)
    accepted_twice = probe.value("SELECT count(*) FROM (SELECT stream_id FROM events_event WHERE event_type = "
                                 "'interactions.InteractionAccepted' GROUP BY stream_id HAVING count(*) > 1) x")
    offers, accepted = probe.rows(
        "SELECT count(*) FILTER (WHERE event_type = 'interactions.InteractionOffered'), "
        "count(*) FILTER (WHERE event_type = 'interactions.InteractionAccepted') FROM events_event WHERE stream_id IN "
        "(SELECT stream_id FROM events_event WHERE event_type = 'interactions.InteractionQueued' "
        "AND data ->> 'queue' = 'trust-race')")[0]
    errors = _task_errors(stack, names)
    # Work the kill could have dropped: waiting interactions that routing no longer sees as waiting.
    dropped = probe.value("SELECT count(*) FROM interactions_interaction i WHERE i.id = ANY(%s::uuid[]) AND "
                          "i.status = 'queued' AND NOT EXISTS (SELECT 1 FROM routing_work w WHERE "
                          "w.interaction_id = i.id AND w.status = 'waiting')", [created])
    # Back to the regular workers; the race agents go offline so no later scenario meets them.
    for name in names:
        stack.stop(name)
    for k in range(stack.routing_workers):
        stack.start(f"routing-{k}")
    for ag in agents:
        agent_presence_set(agent_id=ag["name"], presence="offline")
    probe.close()
    killer.close()

    row.acked = len(created)
    row.lost = dropped
    row.duplicated = doubles + accepted_twice
    row.unexpected_5xx = sum(n for k, n in accepts.items() if " 5" in k or "/5" in k)
    row.recover = f"all slots filled {secs(t_full, t_kill)} after the kill"
    row.figures = [f"killed {killed or 'nobody'} mid-decision ({offers_at_kill} offers in hand then)",
                   f"{offers:,} offers, {accepted:,} acceptances in the queue",
                   f"capacity overruns: {overruns['max']} (max of {overruns['samples']} samples), {work_over} at the end",
                   (f"killed task redelivered and run again {redelivered_after:.0f} s after the kill"
                    if redelivered_after is not None else
                    f"killed task not seen again within {2 * a.visibility_timeout + 60} s")]
    row.detail(f"REST answers during the churn: {dict(accepts)}")
    row.detail(f"double offers {doubles}, accepted twice {accepted_twice}, voice rule {voice}, Work rows out of step "
               f"{out_of_step}, routing tasks that raised {errors}")
    row.check("the dispatch lock holder was killed mid-decision", killed is not None)
    row.check("every slot filled after the kill", t_full is not None)
    row.check("never two offers outstanding for one interaction, never two acceptances",
              doubles == 0 and accepted_twice == 0)
    row.check("never above an agent's capacity", overruns["max"] == 0 and work_over == 0 and voice == 0)
    row.check("Work rows in step with their interactions; no waiting work dropped", out_of_step == 0 and dropped == 0)
    row.check("no 5xx", row.unexpected_5xx == 0)
    return row


_RECEIVED = re.compile(r"Task routing\.tasks\.\w+\[([0-9a-f-]{36})\] received")


def _log_text(stack: Stack, name: str) -> str:
    proc = stack.procs.get(name)
    try:
        return proc.log_path.read_text(errors="replace") if proc else ""
    except OSError:
        return ""


def _last_received(stack: Stack, name: str) -> str | None:
    """The task the worker had started and not finished (its last `received` without a `succeeded`)."""
    text = _log_text(stack, name)
    for task_id in reversed(_RECEIVED.findall(text)):
        if f"[{task_id}] succeeded" not in text:
            return task_id
    return None


def _received_elsewhere(stack: Stack, names: list[str], killed: str, task_id: str) -> bool:
    return any(f"[{task_id}] received" in _log_text(stack, n) for n in names if n != killed)


def _received_after(stack: Stack, names: list[str], killed: str, task_id: str, since: float) -> float | None:
    """Seconds from `since` (time.time()) to the other workers' first `received` line of the task (its log time)."""
    import datetime as dt

    for n in names:
        if n == killed:
            continue
        for line in _log_text(stack, n).splitlines():
            if f"[{task_id}] received" in line:
                try:
                    at = dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                except ValueError:
                    continue
                return at - since
    return None


def _task_errors(stack: Stack, names: list[str]) -> int:
    return sum(_log_text(stack, n).count("raised unexpected") for n in names)


# --- 8: a thousand agent sockets with pushes ---------------------------------------------------------------------


def socket_storm(ctx) -> Row:
    a = ctx.args
    stack: Stack = ctx.stack
    row = Row("8", f"{a.sockets:,} concurrent agent sockets with pushes",
              f"{a.sockets:,} agents open `/ws/agent/` (ticket, then socket) spread over the web processes; each "
              f"agent then changes presence {a.pushes} times over REST, each change a push to its socket",
              "every socket connects and gets its welcome; pushes arrive; every push that did not arrive shows as "
              "a gap in its stream's `seq` (none lost beyond what the numbers reveal); no socket drops",
              "Agents are created in bulk (user in the `agent` group, API token). Each client follows the README's "
              "contract (trust/sockets.py): `POST /api/v1/ws-tickets/` with its token, `/ws/agent/?ticket=...`, "
              "welcome with the stream's `seq`. The runner raises its open-file limit (`resource.setrlimit`) first; "
              "the web processes inherit it. Then each agent's presence is changed over REST "
              "(`POST /api/v1/agents/me/presence/`, `break` with a new reason each time, so no routing is "
              "triggered), 32 requests at a time. After a few seconds' quiet, each stream's last number is read "
              "from the counter the server numbers pushes with (Redis, `asgi:seq:routing.agent.<pk>`). Received = "
              "presence pushes that arrived; revealed = numbers a client never saw (gaps mid-stream and against "
              "the stream's last number); unrevealed losses = changes acknowledged by REST minus pushes numbered "
              "by the server (a push dropped before it got a number: no client could notice it).")
    agents = make_agents("storm", a.sockets, skill=None, capacity={"chat": 1})
    clients = [Client(ag["name"], ag["token"], stack.web_ports[i % len(stack.web_ports)]) for i, ag in enumerate(agents)]
    pk_of = {ag["name"]: ag["pk"] for ag in agents}
    fleet = Fleet(clients, parallel=50).start()
    t0 = time.monotonic()
    all_in = fleet.wait_connected(len(clients), a.recover_timeout)
    t_all = time.monotonic() if all_in else None
    first = sorted(c.welcomes[0][0] - t0 for c in clients if c.welcomes)
    log(f"scenario 8: {fleet.connected()}/{len(clients)} sockets connected in {secs(t_all, t0)}")
    time.sleep(2.0)

    changes = Counter()
    answered: Counter = Counter()

    rest_lat: list[float] = []

    def presence(i_round: tuple) -> None:
        i, rnd_no = i_round
        ag = agents[i]
        t = time.monotonic()
        status, _ = http_json(clients[i].port, "POST", "/api/v1/agents/me/presence/", token=ag["token"],
                              body={"presence": "break", "reason": f"trust-{rnd_no}"})
        rest_lat.append(time.monotonic() - t)
        answered[str(status)] += 1
        if status == 200:
            changes[ag["name"]] += 1

    t_push = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        for rnd_no in range(a.pushes):
            list(pool.map(presence, [(i, rnd_no) for i in range(len(agents))]))
    t_pushed = time.monotonic()
    time.sleep(5.0)
    import redis

    r = redis.Redis.from_url(stack.redis.url)
    final = {ag["name"]: int(r.get(f"asgi:seq:routing.agent.{pk_of[ag['name']]}") or 0) for ag in agents}
    connected_end = fleet.connected()
    fleet.stop()

    received = revealed = repeated = numbered = 0
    unrevealed = 0
    drops = 0
    for c in clients:
        stream = f"routing.agent.{pk_of[c.name]}"
        rep = c.seq_report(stream, final[c.name])
        received += sum(1 for p in c.pushes if p[1] == "routing.presence")
        revealed += rep["skipped"]
        repeated += rep["repeated"]
        numbered_here = final[c.name] - rep["first"]
        numbered += numbered_here
        unrevealed += max(0, changes[c.name] - numbered_here)
        drops += sum(1 for cl in c.closes if cl[0] > t0 and cl[0] < t_pushed + 5)
    expected = sum(changes.values())
    lat = sorted(p[0] - t_push for c in clients for p in c.pushes)
    row.acked = expected
    row.lost = expected - received
    row.duplicated = repeated
    row.unexpected_5xx = sum(n for s, n in answered.items() if s.startswith("5"))
    row.recover = "-"
    row.figures = [f"{sum(1 for c in clients if c.welcomes)}/{len(clients)} connected in {secs(t_all, t0)} "
                   f"(welcome p50 {percentile(first, 50):.1f} s, p99 {percentile(first, 99):.1f} s)",
                   f"{received:,}/{expected:,} pushes received", f"{revealed} revealed by seq gaps",
                   f"{unrevealed} lost without a gap", f"{drops} sockets dropped"]
    row.detail(f"presence changes over REST: {dict(answered)} in {t_pushed - t_push:.1f} s (response p50 "
               f"{percentile(rest_lat, 50) * 1000:.0f} ms, p99 {percentile(rest_lat, 99) * 1000:.0f} ms, new connection "
               f"each); pushes numbered by the "
               f"server {numbered:,}; sockets still connected at the end {connected_end}/{len(clients)}")
    if lat:
        row.detail(f"pushes arrived over {lat[-1]:.1f} s from the first change")
    row.check("every socket connected", all_in)
    row.check("every presence change pushed and numbered (no loss a client could not see)", unrevealed == 0)
    row.check("every push that did not arrive is revealed by its seq", expected - received <= revealed)
    row.check("no socket dropped", drops == 0)
    row.check("no 5xx", row.unexpected_5xx == 0)
    return row

