"""Degrade, don't fail (promise 5): with real failures, never mocks of our services.

- PostgreSQL away: every HTTP request answers 503 + Retry-After with a JSON body, /readyz says not ready
  (requests pointed at a port where no database listens, in-process and through a real daphne);
- Redis lost: the beat's sweep offers waiting work again, from PostgreSQL, after Redis comes back empty (a
  Redis, a worker and a beat of the test's own); sockets find themselves out of their groups and re-join;
- Kafka down: the API keeps accepting into the outbox, and the relay drains it once the broker is back.
"""

import asyncio
import contextlib
import copy
import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import IntegrityError, connection, connections, transaction
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from contactcenter.degrade import database_failure
from contactcenter.devstack import Kafka, Redis, free_port
from events.models import OutboxEntry
from interactions import webhooks
from routing.models import Work
from tests.conftest import read_topic, wait_for
from tests.routing.conftest import REPO, _env
from tests.routing.factories import make_agent, make_queue, make_waiting

pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.contextmanager
def database_away(*, pool: bool = False):
    """This thread's requests go to a PostgreSQL port where nothing listens (connection refused, for real).

    With `pool`, through a psycopg pool as in production (its wait for a connection ends in PoolTimeout).
    """
    real = connections["default"]
    settings_dict = copy.deepcopy(real.settings_dict)
    settings_dict["PORT"] = str(free_port())
    options = settings_dict.setdefault("OPTIONS", {})
    options.pop("pool", None)
    if pool:
        options["pool"] = {"min_size": 0, "max_size": 2, "timeout": 1}
    # Its own alias for the pool: Django keeps one pool per alias, and "default" has the test's live one.
    away = real.__class__(settings_dict, alias="unreachable" if pool else "default")
    connections["default"] = away
    try:
        yield
    finally:
        away.close()
        if pool:
            away.close_pool()
        connections["default"] = real


def _unavailable(response):
    assert response.status_code == 503, (response.status_code, response.content[:300])
    assert response["Retry-After"] == "5" and response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "database_unavailable" and response.json()["detail"]


# --- PostgreSQL away -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pool", [False, True], ids=["plain-connections", "psycopg-pool"])
def test_every_kind_of_request_answers_503_while_the_database_is_away(pool):
    agent = make_agent("ann")
    token = Token.objects.create(user=agent.user).key
    pages = Client(raise_request_exception=False)
    pages.force_login(agent.user)  # a session made while the database was there
    api = APIClient(raise_request_exception=False)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    with database_away(pool=pool):
        _unavailable(api.get("/api/v1/agents/me/"))  # a DRF read: its authentication reads the token
        _unavailable(api.post("/api/v1/agents/me/presence/", {"presence": "break"}, format="json"))  # a command
        _unavailable(api.post("/api/v1/ws-tickets/"))
        _unavailable(pages.get("/desk/"))  # a page: the session and the user are read from the database
        _unavailable(pages.get("/admin/"))
        # Outside any view: the idempotency middleware reads and writes its key before the view runs.
        _unavailable(api.post("/api/v1/agents/me/presence/", {"presence": "break"}, format="json",
                              HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())))
        ready = Client(raise_request_exception=False).get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "not ready" and ready["Retry-After"] == "5"
        assert ready.json()["checks"]["database"]["ok"] is False
        assert Client().get("/healthz").status_code == 200  # alive: restarting the process would not help
    # And back: the same requests work again once the database answers.
    assert api.get("/api/v1/agents/me/").status_code == 200
    assert pages.get("/desk/").status_code == 200


def test_a_busy_database_is_503_database_busy_and_other_errors_are_left_alone():
    with pytest.raises(Exception) as caught, transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL statement_timeout = 20")
        cur.execute("SELECT pg_sleep(2)")  # cancelled by the server: 57014
    assert database_failure(caught.value)["code"] == "database_busy"
    assert "57014" in database_failure(caught.value)["detail"]
    assert database_failure(IntegrityError("duplicate key")) is None
    assert database_failure(ValueError("no")) is None


def test_a_real_daphne_without_its_database_answers_503_and_is_not_ready():
    port = free_port()
    env = _env()
    env.update(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere", DB_POOL_MAX_SIZE="0")
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                             "contactcenter.asgi:application"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(base + "/healthz"), timeout=30, what="daphne")

        def get(path, **headers):
            try:
                with urllib.request.urlopen(urllib.request.Request(base + path, headers=headers), timeout=10) as r:
                    return r.status, dict(r.headers), r.read()
            except urllib.error.HTTPError as exc:
                return exc.code, dict(exc.headers), exc.read()

        for path, headers in (("/api/v1/agents/me/", {"Authorization": "Bearer 0123456789abcdef"}),
                              ("/desk/", {"Cookie": "sessionid=abcdefghijklmnopqrstuvwxyz012345"})):
            status, headers_, body = get(path, **headers)
            assert status == 503 and headers_["Retry-After"] == "5", (path, status, body[:300])
            assert json.loads(body)["code"] == "database_unavailable"
        status, _, body = get("/readyz")
        assert status == 503 and json.loads(body)["status"] == "not ready"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:  # a daphne slow to stop on a loaded machine: not what is tested here
            proc.kill()
            proc.wait()
        log.close()


def test_the_web_process_stops_on_sigterm_even_with_a_request_in_flight():
    """A request still being answered when the server stops must not keep the process alive: asgiref's
    AsyncToSync would wait for the stopped event loop forever (contactcenter.asgi._thread_send). /readyz with a
    Kafka that does not answer takes about 2 s: the SIGTERM arrives meanwhile."""
    import signal
    import threading

    port = free_port()
    env = _env()
    env.update(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                             "contactcenter.asgi:application"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(base + "/healthz"), timeout=30, what="daphne")
        threading.Thread(target=_answers, args=(base + "/readyz",), daemon=True).start()
        time.sleep(0.7)  # the request is in its thread, waiting for Kafka
        proc.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        proc.wait(30)
        assert time.monotonic() - stopped < 30
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def _answers(url) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).read()
        return True
    except OSError:
        return False


# --- Redis lost ------------------------------------------------------------------------------------------------


def _celery(env, log, *args):
    """A Celery process of the test's own, logging to `log` (shown when the test fails)."""
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "contactcenter", *args, "-l", "INFO"],
                            cwd=REPO, env={**env, "LOG_FORMAT": "plain", "LOG_LEVEL": "INFO"},
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_after_redis_comes_back_empty_the_beat_sweep_offers_waiting_work_again(tmp_path):
    """Redis restarts empty: the dispatch requests and the offer-expiry countdowns it held are gone. Within 60 s,
    with no request arriving, the beat's sweep (routing.tasks.sweep, run by the worker) expires the overdue offer
    and offers the waiting work, all read from PostgreSQL."""
    make_queue("billing")
    ann = make_agent("ann", capacity={"chat": 2})
    redis = Redis(free_port(), log_dir=tmp_path).start()
    env = _env(REDIS_URL=redis.url, CELERY_BROKER_URL=redis.url, ROUTING_SWEEP_SECONDS="2")
    worker = _celery(env, tmp_path / "worker.log", "worker", "-Q", "routing,celery", "-P", "solo",
                     "--without-gossip", "--without-mingle", "--without-heartbeat")
    beat = _celery(env, tmp_path / "beat.log", "beat", "-s", str(tmp_path / "beat-schedule"), "--max-interval", "1")
    try:
        # An offer made, its expiry countdown (in Redis) about to be lost: overdue in PostgreSQL.
        offered = make_waiting("billing")
        wait_for(lambda: Work.objects.filter(interaction_id=offered, status=Work.OFFERED).exists(), timeout=30,
                 what="the beat's sweep offers the first contact")
        redis.stop()
        Work.objects.filter(interaction_id=offered).update(offer_expires_at="2000-01-01T00:00:00Z")
        # New work while Redis is away: its dispatch request goes nowhere (this process asks another Redis).
        waiting = make_waiting("billing")
        time.sleep(3)
        redis.start()  # back, and empty
        restarted = time.monotonic()
        wait_for(lambda: Work.objects.filter(interaction_id=waiting, status=Work.OFFERED, agent_id="ann").exists(),
                 timeout=60, what="the waiting contact offered after Redis came back")
        wait_for(lambda: not Work.objects.filter(interaction_id=offered, status=Work.OFFERED,
                                                 offer_expires_at__year=2000).exists(),
                 timeout=60, what="the overdue offer expired from PostgreSQL")
        assert time.monotonic() - restarted < 60
        # Both lived through it (Celery 5.7's worker would have died: contactcenter/celery_fixes.py).
        assert worker.poll() is None and beat.poll() is None
        assert "Connection to broker lost" in (tmp_path / "worker.log").read_text(errors="replace")
        assert ann.user.username == "ann"
    except AssertionError:
        print("worker exit code:", worker.poll(), "beat exit code:", beat.poll())
        for name in ("beat", "worker"):
            print(f"--- {name} ---\n" + (tmp_path / f"{name}.log").read_text(errors="replace")[-6000:])
        raise
    finally:
        for proc in (beat, worker):
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis.stop()


@pytest.fixture
def own_redis(settings, tmp_path):
    """A Redis of this test's own carrying the channel layer, so the test may stop it, restart it, empty it."""
    from channels.layers import channel_layers

    redis = Redis(free_port(), log_dir=tmp_path).start()
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": [{"address": redis.url, "socket_timeout": 15}]}}}
    settings.WS_GROUP_REFRESH_SECONDS = 1
    channel_layers.backends.clear()
    yield redis
    redis.stop()
    channel_layers.backends.clear()


PRESENCE = {"type": "routing.presence", "agent_id": "ann", "presence": "break", "reason": "", "since": ""}


def _push(stream):
    from contactcenter.realtime import notify

    notify([(stream, PRESENCE)]).result(10)


async def reconnect(user, path="/ws/agent/"):
    """What a client does after a close: a new ticket, a new socket, with a pause between tries (the channel
    layer's pooled connections to the old Redis fail once each before new ones are made). Returns the socket,
    its welcome and the number of tries."""
    from channels.testing import WebsocketCommunicator

    from contactcenter.asgi import application
    from contactcenter.tickets import ticket_issue

    for attempt in range(1, 6):
        ticket = await sync_to_async(lambda: ticket_issue(user)[0])()
        socket = WebsocketCommunicator(application, f"{path}?ticket={ticket}",
                                       headers=[(b"host", b"localhost"), (b"origin", b"http://localhost")])
        try:
            connected, _ = await socket.connect(timeout=15)
            first = await socket.receive_output(timeout=10) if connected else {}
        except TimeoutError:
            connected, first = False, {}
        if first.get("type") == "websocket.send":
            return socket, json.loads(first["text"]), attempt
        with contextlib.suppress(Exception):
            await socket.disconnect(timeout=5)
        await asyncio.sleep(0.5 * attempt)
    raise AssertionError("no socket after 5 tries")


def test_after_a_redis_restart_sockets_close_with_4503_and_a_new_one_hears_pushes_again(own_redis):
    """The socket's channel layer loses its connection: the socket is closed with 4503 (come back), not crashed;
    the client's new socket (new ticket) after Redis returns starts from a welcome and hears pushes."""
    from routing.realtime import agent_group
    from tests.routing.test_realtime import connect

    ann = make_agent("ann")
    stream = agent_group(ann.pk)

    async def scenario():
        desk, connected, _ = await connect("/ws/agent/", ann.user, welcome=False)
        first = await desk.receive_json_from(timeout=5)
        await sync_to_async(_push)(stream)
        before = await desk.receive_json_from(timeout=5)
        await sync_to_async(own_redis.stop)()
        closed = await desk.receive_output(timeout=10)
        await sync_to_async(own_redis.start)()  # back, and empty: no groups, no counters
        again, welcome, attempts = await reconnect(ann.user)
        await sync_to_async(_push)(stream)
        after = await again.receive_json_from(timeout=10)
        await again.disconnect()
        return connected, first, before, closed, welcome, attempts, after

    connected, first, before, closed, welcome, attempts, after = async_to_sync(scenario)()
    assert connected and first["type"] == "welcome" and before["seq"] == first["seq"][stream] + 1
    assert closed == {"type": "websocket.close", "code": 4503}
    assert welcome["seq"] == {stream: 0} and attempts <= 5
    assert after["type"] == "routing.presence" and after["seq"] == 1  # the counter started over: a resync anyway


def test_a_socket_that_lost_its_group_joins_again_and_says_so(own_redis):
    """Redis loses its data under live connections (a failover to an empty replica, a flush): the socket finds
    itself out of its group within WS_GROUP_REFRESH_SECONDS, joins again, sends a new welcome (its client
    resyncs), and hears pushes again."""
    import redis as redis_py

    from routing.realtime import agent_group
    from tests.routing.test_realtime import connect

    ann = make_agent("ann")
    stream = agent_group(ann.pk)

    async def scenario():
        desk, _, _ = await connect("/ws/agent/", ann.user, welcome=False)
        first = await desk.receive_json_from(timeout=5)
        await sync_to_async(_push)(stream)
        before = await desk.receive_json_from(timeout=5)
        await sync_to_async(lambda: redis_py.Redis.from_url(own_redis.url).flushall())()
        again = await desk.receive_json_from(timeout=10)
        await sync_to_async(_push)(stream)
        after = await desk.receive_json_from(timeout=10)
        await desk.disconnect()
        return first, before, again, after

    first, before, again, after = async_to_sync(scenario)()
    assert first["type"] == "welcome" and before["seq"] == first["seq"][stream] + 1
    assert again == {"type": "welcome", "seq": {stream: 0}, "resync": first["resync"], "rejoined": True}
    assert after["type"] == "routing.presence" and after["seq"] == 1


# --- Kafka down ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_with_kafka_down_the_api_keeps_accepting_and_the_relay_drains_afterwards(settings, topic, background,
                                                                                 monkeypatch):
    from contactcenter import health

    monkeypatch.setattr(health, "_kafka_admin", None)  # the probe's client, made for this test's broker
    broker = Kafka(free_port()).start()
    settings.KAFKA_BOOTSTRAP_SERVERS = [broker.bootstrap]
    settings.WEBHOOK_SECRETS = {"acme": "s3cret"}
    broker.stop()
    try:
        for n in range(3):
            raw = json.dumps({"provider_message_id": f"m{n}", "body": "hello", "from": {"kind": "phone",
                              "value": f"+1415555010{n}"}}).encode()
            ts = str(int(time.time()))
            response = APIClient().post("/api/v1/webhooks/sms/acme/", raw, content_type="application/json",
                                        HTTP_X_TIMESTAMP=ts, HTTP_X_SIGNATURE=webhooks.sign("s3cret", ts, raw))
            assert response.status_code == 201, response.content
        ready = Client().get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["kafka"]["ok"] is False  # still ready
        waiting = OutboxEntry.objects.count()
        assert waiting > 0
        broker.start()
        background.relay()
        wait_for(lambda: OutboxEntry.objects.count() == 0, timeout=60, what="the outbox drained")
        records = read_topic(topic, settings.KAFKA_BOOTSTRAP_SERVERS, expected=waiting, timeout=30)
        assert len({json.loads(r.value)["event_id"] for r in records}) == waiting
    finally:
        background.stop_all()
        broker.stop()
