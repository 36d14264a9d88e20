"""Scenarios 2, 3, 5 and 6: faults injected while the sustained ingest (scenario 1) keeps running.

Each one first waits until everything committed is on Kafka and applied (trust.common.settle), so its
recovery is its own; then injects its fault, measures, and returns its row. Whether what was acknowledged
during a fault was lost or duplicated is decided at the end of the ingest, against the whole ledger
(trust.run): the rows keep the ids acknowledged in their window.
"""

from __future__ import annotations

import signal
import time

from events_bench import log

from trust.common import HEAD_SQL, Db, Row, catch_up, secs, settle, wait_until, webhook
from trust.sockets import Client


def _window_figures(row: Row, w: dict) -> None:
    row.acked = len(w["acked"])
    row.acked_ids = w["acked"]
    row.detail(f"webhook attempts in the window: {w['attempts']} by status {w['statuses']}; deliveries first sent in "
               f"it {w['deliveries']}, acknowledged {len(w['acked'])}, refused {w['refused']}, given up {w['gave_up']}")
    if w["5xx_codes"]:
        row.detail(f"5xx answers by code: {w['5xx_codes']}")


def _exits(ctx, row: Row, t0: float, t1: float) -> list:
    exits = ctx.stack.exits_between(t0, t1)
    for e in exits:
        row.detail(f"process {e.name} exited with {e.code} at +{e.at - t0:.1f} s (restarted by the supervisor); "
                   f"its last lines: {' | '.join(e.tail.splitlines()[-3:])[:600]}")
    return exits


def _log_lines(stack, name: str, needle: str, since_wall: str) -> list[str]:
    """Lines of every incarnation's log of `name` containing `needle`, logged at or after `since_wall`."""
    out = []
    for path in sorted(stack.logs.glob(f"{name}.*.log")):
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        out += [ln for ln in lines if needle in ln and ln[:19] >= since_wall and ln[:2] == "20"]
    return sorted(out)


def outbox_peak_sampler(db: Db, seconds: float) -> int:
    peak, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            peak = max(peak, db.value("SELECT count(*) FROM events_outbox") or 0)
        except Exception:
            pass
        time.sleep(1.0)
    return peak


# --- 2a: Kafka unreachable -------------------------------------------------------------------------------------


def broker_partition(ctx) -> Row:
    a = ctx.args
    row = Row("2", "Kafka unreachable during ingest",
              f"the fault proxy between the relay/projector and the broker drops every byte for {a.broker_down:.0f} s "
              "(a network partition; the broker keeps its data)",
              "the API keeps accepting (0 5xx, 0 errors); the outbox grows, then drains when the broker is back; "
              "projections catch up",
              "Webhooks keep arriving at the ingest rate. `FaultProxy.blackhole()` (trust/proxy.py) swallows all "
              "bytes both ways and accepts new connections without answering, so the relay's sends and the "
              "projector's fetches time out. Time to recover = from `heal()` until the outbox holds no event "
              "committed before that moment (drained), and until every projection has applied every event up to "
              "it (per-stream versions in `events_projection_stream` against the store).")
    settle(ctx.db)
    t0 = time.monotonic()
    ctx.stack.proxy.blackhole()
    log(f"scenario 2: broker partitioned for {a.broker_down:.0f} s")
    peak = outbox_peak_sampler(ctx.db, a.broker_down)
    head = ctx.db.value(HEAD_SQL)
    t1 = time.monotonic()
    ctx.stack.proxy.heal()
    t_relay, t_proj = catch_up(ctx.db, head, a.recover_timeout)
    t_end = max(t for t in (t_relay, t_proj, time.monotonic()) if t is not None)
    w = ctx.ingest.window(t0, t_end)
    _window_figures(row, w)
    exits = _exits(ctx, row, t0, t_end)
    row.unexpected_5xx = w["5xx"]
    row.recover = f"drained {secs(t_relay, t1)}, projected {secs(t_proj, t1)}"
    row.figures = [f"outbox peak {peak:,} events", f"{w['errors']} connection errors"]
    row.check("no 5xx and no connection error while Kafka was away", w["5xx"] == 0 and w["errors"] == 0)
    row.check("the outbox grew while Kafka was away (the fault took hold)", peak > 0)
    row.check("the outbox drained and every projection caught up", t_relay is not None and t_proj is not None)
    row.check("no process exited", not exits)
    return row


# --- 2b: the broker restarts empty -----------------------------------------------------------------------------


def broker_restart(ctx) -> Row:
    a = ctx.args
    row = Row("2b", "Kafka broker restarted empty during ingest",
              f"the embedded broker (Tansu, in memory) is stopped for {a.broker_restart_down:.0f} s and started "
              "again with no topics, records or offsets",
              "the API keeps accepting (0 5xx); the relay notices the new topic, starts a new broker epoch and "
              "republishes the whole history; projectors start the new log from offset 0 and apply only what "
              "they had not applied (each effect once)",
              "As scenario 2, but the broker process itself is stopped and restarted (`Kafka.stop()/start()` of "
              "contactcenter/devstack.py). Time to recover = from the restart until the outbox (now the whole "
              "history again) holds nothing committed before it, and until every projection has applied everything "
              "up to it. The epoch is `events_relay_state.broker_epoch`.")
    settle(ctx.db)
    epoch0 = ctx.db.value("SELECT broker_epoch FROM events_relay_state WHERE id = 1")
    wall0 = time.strftime("%Y-%m-%d %H:%M:%S")
    t0 = time.monotonic()
    ctx.stack.kafka.stop()
    log(f"scenario 2b: broker stopped for {a.broker_restart_down:.0f} s")
    time.sleep(a.broker_restart_down)
    ctx.stack.kafka.start()
    t1 = time.monotonic()
    head = ctx.db.value(HEAD_SQL)
    queued = wait_until(lambda: ctx.db.value("SELECT broker_epoch FROM events_relay_state WHERE id = 1") != epoch0,
                        a.recover_timeout, 0.2)
    republished = ctx.db.value("SELECT count(*) FROM events_outbox")
    t_relay, t_proj = catch_up(ctx.db, head, a.recover_timeout)
    t_end = max(t for t in (t_relay, t_proj, time.monotonic()) if t is not None)
    epoch1 = ctx.db.value("SELECT broker_epoch FROM events_relay_state WHERE id = 1")
    w = ctx.ingest.window(t0, t_end)
    _window_figures(row, w)
    exits = _exits(ctx, row, t0, t_end)
    row.unexpected_5xx = w["5xx"]
    row.recover = f"republished {secs(t_relay, t1)}, projected {secs(t_proj, t1)}"
    row.figures = [f"broker epoch {epoch0} -> {epoch1}", f"{republished:,} events queued again for publishing "
                   f"(the store up to position {head:,})", f"{w['errors']} connection errors"]
    row.detail(f"the relay started the new epoch {secs(queued, t1)} after the broker came back")
    recreated = _log_lines(ctx.stack, "relay", "partitions, expected", wall0)
    if recreated:
        row.detail(f"the relay found the topic auto-created with the broker's default partition count and replaced "
                   f"it {len(recreated)} times before it stayed (each time a new epoch, the history queued again): "
                   f"first {recreated[0][:19]}, last {recreated[-1][:19]}")
    row.check("no 5xx and no connection error", w["5xx"] == 0 and w["errors"] == 0)
    row.check("a new broker epoch started", epoch1 is not None and epoch0 is not None and epoch1 > epoch0)
    row.check("the history was republished and every projection caught up", t_relay is not None and t_proj is not None)
    row.check("no process exited", not exits)
    return row


# --- 3: kill -9 of the relay and the projector mid-batch -----------------------------------------------------------


PROJECTOR_IN_BATCH_SQL = """
SELECT count(*) FROM pg_stat_activity
WHERE application_name = 'trust-projector' AND xact_start IS NOT NULL AND state IN ('active', 'idle in transaction')
"""


def kill_relay_and_projector(ctx) -> Row:
    a = ctx.args
    row = Row("3", "relay and projector `kill -9` mid-batch",
              f"SIGKILL to the relay and the projector while the projector has a batch's transaction open and the "
              f"relay has a batch in flight (Kafka round trips slowed by {a.kill_delay * 1000:.0f} ms at the proxy); "
              f"both started again {a.kill_down:.0f} s later",
              "nothing lost, each effect once: the relay sends again what it had not deleted, the projector redoes "
              "the batch whose transaction died; after catching up every projection equals a full replay",
              "The runner polls `pg_stat_activity` every 2 ms for a transaction of the projector (its connections "
              "carry `application_name=trust-projector`) and kills both processes (`kill -9` of their process "
              "groups) the moment it sees one. With every Kafka round trip delayed at the proxy, the relay spends "
              "nearly all its time between sending a batch and deleting it from the outbox. Time to recover = from "
              "the restart until the outbox holds nothing committed before it and every projection has applied "
              "everything up to it. Convergence (every projection equal to a full replay) is checked when the "
              "ingest ends (scenario 1), with `manage.py projection_checksum --replay`.")
    settle(ctx.db)
    ctx.stack.proxy.delay(a.kill_delay)
    time.sleep(1.0)
    probe = Db(ctx.stack.database_url)
    mid = wait_until(lambda: probe.value(PROJECTOR_IN_BATCH_SQL) > 0, 30, 0.002)
    outbox = probe.value("SELECT count(*) FROM events_outbox")
    t0 = time.monotonic()
    for name in ("projector", "relay"):
        ctx.stack.kill(name, signal.SIGKILL)
    probe.close()
    ctx.stack.proxy.delay(0)
    log(f"scenario 3: killed the relay and the projector ({'mid-transaction' if mid else 'no open transaction seen'})")
    time.sleep(a.kill_down)
    head = ctx.db.value(HEAD_SQL)
    t1 = time.monotonic()
    ctx.stack.start("relay")
    ctx.stack.start("projector")
    t_relay, t_proj = catch_up(ctx.db, head, a.recover_timeout)
    t_end = max(t for t in (t_relay, t_proj, time.monotonic()) if t is not None)
    w = ctx.ingest.window(t0, t_end)
    _window_figures(row, w)
    exits = _exits(ctx, row, t0, t_end)
    row.unexpected_5xx = w["5xx"]
    row.recover = f"drained {secs(t_relay, t1)}, projected {secs(t_proj, t1)}"
    row.figures = [f"projector killed {'inside an open batch transaction' if mid else 'between batches'}",
                   f"{outbox:,} events in the outbox at the kill"]
    row.check("the projector was killed inside a batch's transaction", mid is not None)
    row.check("no 5xx while they were down", w["5xx"] == 0)
    row.check("after the restart the outbox drained and every projection caught up",
              t_relay is not None and t_proj is not None)
    row.check("no other process exited", not exits)
    return row


# --- 5: PostgreSQL restart -----------------------------------------------------------------------------------------


def database_restart(ctx) -> Row:
    a = ctx.args
    row = Row("5", "PostgreSQL restart during ingest",
              f"PostgreSQL stopped (`pg_ctl stop -m {a.pg_stop_mode}`), started again {a.pg_down:.0f} s later",
              "while it is down the API answers 503 with Retry-After (expected), no other 5xx; requests succeed "
              "again once it is back; nothing acknowledged is lost",
              "Webhooks keep arriving at the ingest rate; the client acts as a provider does: a 503 (or a dropped "
              "connection) is retried with a fresh signature after its Retry-After. 503 answers whose code is "
              "`database_unavailable` or `database_busy` with a Retry-After header are expected; any other 5xx "
              "is unexpected. Time to recover = from the database accepting connections again until the first "
              "2xx, and until every delivery due before that moment was acknowledged; then the relay and "
              "projections catching up. Processes that exit are restarted by the runner's supervisor (as "
              "docker-compose's restart policy would) and listed.")
    settle(ctx.db)
    t0 = time.monotonic()
    if a.pg_stop_mode == "fast":
        ctx.stack.pg.stop()
    else:  # a crash: no checkpoint, the WAL replays at start
        ctx.stack.pg._tool("pg_ctl", "stop", "-w", "-t", "60", "-m", "immediate", "-D", str(ctx.stack.pg.data_dir))
        ctx.stack.pg._started = False
    t_stopped = time.monotonic()
    log(f"scenario 5: PostgreSQL stopped ({t_stopped - t0:.1f} s); down for {a.pg_down:.0f} s")
    time.sleep(a.pg_down)
    ctx.stack.pg.start()
    t1 = time.monotonic()
    first = wait_until(lambda: ctx.ingest.first_ack_after(t1), a.recover_timeout, 0.1)
    first_ack = ctx.ingest.first_ack_after(t1)
    due_before = [d for d in ctx.ingest.snapshot() if d.due <= t1]
    backlog = wait_until(lambda: all(d.acked_at or d.refused or d.gave_up for d in due_before), a.recover_timeout, 0.5)
    head = ctx.db.value(HEAD_SQL)
    t_relay, t_proj = catch_up(ctx.db, head, a.recover_timeout)
    t_end = max(t for t in (first, backlog, t_relay, t_proj, time.monotonic()) if t is not None)
    w = ctx.ingest.window(t0, t_end)
    _window_figures(row, w)
    exits = _exits(ctx, row, t0, t_end)
    expected_503 = sum(n for code, n in w["5xx_codes"].items()
                       if code.startswith("503 database_unavailable Retry-After")
                       or code.startswith("503 database_busy Retry-After"))
    row.unexpected_5xx = w["5xx"] - expected_503
    row.data["expected_503"] = expected_503
    last_ack = max((d.acked_at for d in due_before if d.acked_at), default=None)
    row.recover = f"first 2xx {secs(first_ack, t1)}, backlog {secs(last_ack if backlog else None, t1)}"
    row.figures = [f"{expected_503} × 503 + Retry-After (expected)", f"{w['errors']} connection errors (retried)",
                   f"relay drained {secs(t_relay, t1)}, projections {secs(t_proj, t1)} after it was back",
                   f"{len(exits)} process exits"]
    row.check("while down: 503 with Retry-After, no other 5xx", row.unexpected_5xx == 0)
    row.check("requests succeed again after the restart", first_ack is not None)
    row.check("every delivery due during the outage was acknowledged", backlog is not None
              and all(d.acked_at for d in due_before if not d.refused))
    row.check("the relay and every projection caught up", t_relay is not None and t_proj is not None)
    row.check("no process exited", not exits)
    return row


# --- 6: Redis restart ----------------------------------------------------------------------------------------------


def redis_restart(ctx, fleet, agents: list[dict]) -> Row:
    """`fleet` holds one connected desk socket per agent of the `trust-redis` queue (all on break)."""
    a = ctx.args
    row = Row("6", "Redis restart",
              f"Redis (Celery broker, channel layer, tickets, push counters) stopped for {a.redis_down:.0f} s and "
              f"started again empty, while {len(agents)} agents' desk sockets are open and work waits for them",
              "routing work is offered again within 60 s, from PostgreSQL (the beat's sweep), although the "
              "dispatch requests Redis held are gone; every socket reconnects (new ticket, welcome); "
              "webhooks and REST keep working (0 5xx)",
              f"Queue `trust-redis` takes chat and needs the skill only {len(agents)} agents have (capacity 1 each); "
              "they are on break. Half of the waiting chats arrive before Redis stops, the other half while it "
              "is down; while it is down the agents also become available over REST (each request's dispatch "
              "trigger fails: Redis is away). Nothing but the periodic sweep can offer that work once Redis is "
              "back. Time to recover = from Redis accepting connections until every one of those chats has an "
              "`InteractionOffered` event, and until every socket client has a new welcome (each client follows "
              "the README's contract: on a close it asks for a new ticket, backing off 0.5 s doubling to 30 s).")
    port = ctx.stack.web_ports[0]
    settle(ctx.db)
    chats: list[str] = []
    statuses: dict = {}

    def arrive(tag: str, n: int, first: int) -> None:
        for i in range(n):
            body = {"provider_message_id": f"s6-{tag}-{i}", "conversation_id": f"s6-{tag}-{i}", "event": "start",
                    "body": "Hello?", "queue": "trust-redis",
                    "from": {"kind": "phone", "value": f"+1415{7_000_000 + first + i:07d}"}}
            status, out, _ = webhook(ctx.stack.web_ports[i % len(ctx.stack.web_ports)], "chat", body)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if isinstance(status, int) and status < 300:
                chats.append(out["interaction"]["id"])
                row.acked_ids.append(body["provider_message_id"])

    half = len(agents) // 2
    arrive("before", half, 0)
    time.sleep(1.0)
    position = ctx.db.value(HEAD_SQL)
    t0 = time.monotonic()
    ctx.stack.redis.stop()
    log(f"scenario 6: Redis stopped for {a.redis_down:.0f} s")
    presence: dict = {}
    for ag in agents:
        status, _ = _presence(port, ag["token"], "available")
        presence[str(status)] = presence.get(str(status), 0) + 1
    arrive("during", len(agents) - half, half)
    time.sleep(max(0.0, a.redis_down - (time.monotonic() - t0)))
    ctx.stack.redis.start()
    t1 = time.monotonic()
    offered_sql = ("SELECT count(DISTINCT stream_id) FROM events_event WHERE event_type = 'interactions.InteractionOffered' "
                   "AND position > %s AND stream_id = ANY(%s::uuid[])")
    t_offered = wait_until(lambda: ctx.db.value(offered_sql, [position, chats]) >= len(chats), a.recover_timeout, 0.25)
    offered = ctx.db.value(offered_sql, [position, chats])
    t_sockets = wait_until(lambda: all(c.welcomed_after(t1) for c in fleet.clients), a.recover_timeout, 0.25)
    last_welcome = max((c.welcomed_after(t1) or 0 for c in fleet.clients), default=0)
    t_end = max(t for t in (t_offered, t_sockets, time.monotonic()) if t is not None)
    offers_pushed = sum(1 for c in fleet.clients for p in c.pushes if p[1] == "routing.offer" and p[0] >= t1)
    closes = sum(1 for c in fleet.clients for cl in c.closes if t0 <= cl[0] <= t_end)
    codes: dict = {}
    for c in fleet.clients:
        for cl in c.closes:
            if t0 <= cl[0] <= t_end:
                codes[str(cl[1])] = codes.get(str(cl[1]), 0) + 1
    tickets_refused = sum(1 for c in fleet.clients for f in c.ticket_failures if t0 <= f[0] <= t_end)
    rejoined = sum(1 for c in fleet.clients for wl in c.welcomes if wl[0] >= t1 and wl[2])
    time.sleep(2.0)  # the last pushes on their way
    import redis

    counters = redis.Redis.from_url(ctx.stack.redis.url)
    skipped = received_after = 0
    for c, ag in zip(fleet.clients, agents, strict=True):
        stream = f"routing.agent.{ag['pk']}"
        final = int(counters.get(f"asgi:seq:{stream}") or 0)
        since = [wl for wl in c.welcomes if wl[0] >= t1]
        if since:  # from the first welcome after Redis came back: what the numbers say about the pushes since
            after = Client(c.name, c.token, c.port, welcomes=[wl for wl in c.welcomes if wl[0] >= since[0][0]],
                           pushes=[p for p in c.pushes if p[0] >= since[0][0]])
            rep = after.seq_report(stream, final)
            skipped += rep["skipped"]
            received_after += rep["received"]
    w = ctx.ingest.window(t0, t_end)
    _window_figures(row, w)
    exits = _exits(ctx, row, t0, t_end)
    row.acked = len(chats) + len(w["acked"])
    row.acked_ids += w["acked"]
    row.unexpected_5xx = w["5xx"] + sum(n for s, n in {**statuses, **presence}.items() if s.startswith("5"))
    row.recover = f"offered {secs(t_offered, t1)}, sockets {secs(last_welcome if t_sockets else None, t1)}"
    row.figures = [f"{offered}/{len(chats)} waiting chats offered",
                   f"{offers_pushed} offer pushes received, {skipped} numbers skipped (revealed: resync over REST)",
                   f"{closes} socket closes {codes}", f"{tickets_refused} ticket requests refused while away",
                   f"{rejoined} rejoined welcomes"]
    row.detail(f"chats queued: {statuses}; presence set to available over REST while Redis was away: {presence}")
    row.detail(f"after Redis came back, from each socket's first new welcome: {received_after} pushes received, "
               f"{skipped} numbers skipped against the streams' counters (each one a resync over REST)")
    for _ag in agents:  # leave the queue unstaffed again: later scenarios must not find these agents free
        _presence(port, _ag["token"], "offline")
    row.check("every waiting chat was offered within 60 s of Redis coming back",
              t_offered is not None and t_offered - t1 <= 60)
    row.check("every socket got a new welcome", t_sockets is not None)
    row.check("no 5xx from webhooks or REST", row.unexpected_5xx == 0)
    row.check("no process exited", not exits)
    return row


def _presence(port: int, token: str, presence: str, reason: str = "") -> tuple:
    from trust.common import http_json

    return http_json(port, "POST", "/api/v1/agents/me/presence/", token=token,
                     body={"presence": presence, "reason": reason})
