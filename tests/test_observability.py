"""Observability: /metrics (who may read it, and that its figures move and match PostgreSQL) and structured
logs that carry one correlation id from the webhook to the agent's desk (docs/OPERATIONS.md)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from contactcenter import logs, metrics
from contactcenter.models import AuditEntry
from events import selectors
from events.models import Event, ProjectionState
from events.runner import ensure_state
from interactions import services as interaction_services
from interactions import webhooks
from routing import services as routing_services
from routing import tasks as routing_tasks
from routing.models import Work
from tests.conftest import client_for, wait_for
from tests.routing.factories import make_agent, make_queue

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[1]
SECRET = "s3cret-obs"
WEBHOOK_ROUTE = "/api/v1/webhooks/{channel}/{provider}/"


# --- helpers -------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.WEBHOOK_SECRETS = {"acme": SECRET}
    settings.WEBHOOK_TIMESTAMP_TOLERANCE = 300


@pytest.fixture
def scraper(db):
    """The monitoring system's user: only the permission contactcenter.read_metrics."""
    # Transactional tests flush what post_migrate made; make sure the permission is there.
    permission, _ = Permission.objects.get_or_create(
        codename="read_metrics", content_type=ContentType.objects.get_for_model(AuditEntry),
        defaults={"name": "Can scrape /metrics (the monitoring system's user)"})
    user = get_user_model().objects.create_user(username="prometheus", password="x")
    user.user_permissions.add(permission)
    return client_for(user)


def scrape(client) -> dict:
    """/metrics as {(sample name, sorted labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def sms(*, queue: str | None = "support", correlation_id: str | None = None, body="Hello, where is my parcel?"):
    """One inbound SMS from a new number, through the signed webhook."""
    phone = f"+1415555{uuid.uuid4().int % 10**4:04d}"
    payload = {"provider_message_id": uuid.uuid4().hex, "from": {"kind": "phone", "value": phone}, "body": body}
    if queue:
        payload["queue"] = queue
    raw = json.dumps(payload).encode()
    ts = str(int(time.time()))
    extra = {"HTTP_X_TIMESTAMP": ts, "HTTP_X_SIGNATURE": webhooks.sign(SECRET, ts, raw)}
    if correlation_id:
        extra["HTTP_X_CORRELATION_ID"] = correlation_id
    response = APIClient().post("/api/v1/webhooks/sms/acme/", data=raw, content_type="application/json", **extra)
    assert response.status_code == 201, response.content
    return response


class Captured:
    """Log lines as the console handler writes them (the same filter and JSON formatter), parsed."""

    def __init__(self):
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.addFilter(logs.CorrelationFilter())
        self.handler.setFormatter(logs.JsonFormatter("%(levelname)s %(name)s %(message)s %(correlation_id)s"))

    @property
    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line.strip()]

    def with_id(self, cid: str, logger: str | None = None) -> list[dict]:
        return [line for line in self.lines if (logger is None or line["logger"] == logger)
                and (line.get("correlation_id") == cid or cid in line.get("correlation_ids", []))]


@pytest.fixture
def captured():
    capture = Captured()
    root = logging.getLogger()
    names = ["contactcenter.request", "routing.offers", "events.relay", "events.runner", "celery.app.trace"]
    levels = {name: logging.getLogger(name).level for name in names}
    root.addHandler(capture.handler)
    for name in names:
        logging.getLogger(name).setLevel(logging.INFO)
    yield capture
    root.removeHandler(capture.handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


# --- who may read /metrics --------------------------------------------------------------------------------------


def test_metrics_refuses_anonymous_and_a_plain_agent_and_serves_the_metrics_user_and_staff(user, staff, scraper):
    anonymous = APIClient().get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous["Content-Type"].startswith("application/json") and "detail" in anonymous.json()

    agent = client_for(user).get("/metrics")
    assert agent.status_code == 403
    assert agent["Content-Type"].startswith("application/json")
    assert "read_metrics" in agent.json()["detail"]
    assert b"cc_" not in agent.content  # no figures for someone who may not see them

    bad_token = APIClient()
    bad_token.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert bad_token.get("/metrics").status_code == 401

    for client in (scraper, client_for(staff)):
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain")
        body = response.content.decode()
        for name in ("cc_database_up 1.0", "cc_outbox_backlog_events", "cc_http_request_duration_seconds",
                     "cc_queue_waiting", "cc_dead_letters"):
            assert name in body

    openmetrics = scraper.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert openmetrics["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics.content.decode().rstrip().endswith("# EOF")


def test_metrics_is_in_the_openapi_schema(staff):
    schema = client_for(staff).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/metrics"]["get"]
    assert "text/plain" in operation["responses"]["200"]["content"]
    assert {"401", "403"} <= set(operation["responses"])


# --- the figures move ---------------------------------------------------------------------------------------------


def test_a_webhook_and_routing_decisions_move_their_series(scraper):
    make_queue("support")
    for name in ("ann", "bob", "cy"):
        make_agent(name, capacity={"sms": 1})
    before = scrape(scraper)
    waiting_ids = [sms().json()["interaction"]["id"] for _ in range(3)]

    after_webhooks = scrape(scraper)
    count = "cc_http_request_duration_seconds_count"
    assert value(after_webhooks, count, route=WEBHOOK_ROUTE, method="POST", status="2xx") \
        == value(before, count, route=WEBHOOK_ROUTE, method="POST", status="2xx") + 3
    assert value(after_webhooks, "cc_queue_waiting", queue="support") == 3
    assert value(after_webhooks, "cc_queue_oldest_wait_seconds", queue="support") > 0
    assert value(after_webhooks, "cc_agents", presence="available") == 3

    # A routing decision, run as the worker runs it (a Celery task: its outcome is counted too).
    assert routing_tasks.dispatch.apply().get() == 3
    decided = scrape(scraper)
    assert value(decided, "cc_queue_waiting", queue="support") == 0
    assert value(decided, "cc_queue_offered", queue="support") == 3
    assert value(decided, "cc_queue_oldest_wait_seconds", queue="support") == 0
    assert value(decided, "cc_routing_dispatch_duration_seconds_count", side="all") \
        == value(before, "cc_routing_dispatch_duration_seconds_count", side="all") + 1
    assert value(decided, "cc_routing_offers_total") == value(before, "cc_routing_offers_total") + 3
    assert value(decided, "cc_celery_tasks_total", task="routing.tasks.dispatch", outcome="succeeded") \
        == value(before, "cc_celery_tasks_total", task="routing.tasks.dispatch", outcome="succeeded") + 1

    # One offer accepted, one declined, one left to time out.
    agent_of = dict(Work.objects.filter(interaction_id__in=waiting_ids).values_list("interaction_id", "agent_id"))
    first, second, third = (uuid.UUID(i) for i in waiting_ids)
    interaction_services.interaction_accept(interaction_id=first, agent_id=agent_of[first], meta=routing_services.SYSTEM)
    interaction_services.interaction_decline(interaction_id=second, agent_id=agent_of[second], reason="busy",
                                             meta=routing_services.SYSTEM)
    Work.objects.filter(interaction_id=third).update(offer_expires_at="2000-01-01T00:00:00Z")
    assert routing_services.offer_expire(interaction_id=third)
    answered = scrape(scraper)
    for outcome in ("accepted", "declined", "timed_out"):
        assert value(answered, "cc_offers_answered_total", outcome=outcome, queue="support") \
            == value(before, "cc_offers_answered_total", outcome=outcome, queue="support") + 1, outcome
    assert value(answered, "cc_queue_waiting", queue="support") == 2  # declined and timed out: back in the queue

    # A task that fails is counted as failed.
    routing_tasks.expire_offer.apply(args=["not-an-id"])
    failed = scrape(scraper)
    assert value(failed, "cc_celery_tasks_total", task="routing.tasks.expire_offer", outcome="failed") \
        == value(before, "cc_celery_tasks_total", task="routing.tasks.expire_offer", outcome="failed") + 1


def test_outbox_backlog_and_projection_lag_match_postgresql(scraper, topic, background):
    for _ in range(3):
        sms(queue=None)
    ensure_state("customers.timeline")
    samples = scrape(scraper)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*), extract(epoch FROM now() - min(enqueued_at)) FROM events_outbox")
        backlog, oldest = cur.fetchone()
    assert backlog == Event.objects.count() > 0  # no relay yet: every event waits
    assert value(samples, "cc_outbox_backlog_events") == backlog
    assert 0 < value(samples, "cc_outbox_oldest_age_seconds") <= float(oldest) + 0.5

    # The relay publishes; nothing is projected yet: the whole log is the projection's lag.
    background.relay()
    wait_for(lambda: selectors.outbox_backlog()["count"] == 0, what="the relay to drain the outbox")
    samples = scrape(scraper)
    assert value(samples, "cc_outbox_backlog_events") == 0 and value(samples, "cc_outbox_oldest_age_seconds") == 0
    published = Event.objects.count()
    assert value(samples, "cc_relay_published_events_total") == published
    with connection.cursor() as cur:  # our own positions: what the relay had acknowledged, per partition
        cur.execute("SELECT sum(last_offset + 1) FROM events_relay_partition")
        (acknowledged,) = cur.fetchone()
    # The projection is still on the broker epoch before the relay created the topic: it will read the new
    # log from offset 0, so all of it is its lag (the readiness probe says "unknown" until it switches).
    assert value(samples, "cc_projection_lag_events", projection="customers.timeline") == acknowledged == published

    background.projector("customers.timeline")
    wait_for(lambda: value(scrape(scraper), "cc_projection_lag_events", projection="customers.timeline") == 0,
             what="the projection to catch up")
    samples = scrape(scraper)
    assert {p["name"]: p["lag_messages"] for p in selectors.projection_lag()}["customers.timeline"] == 0
    state = ProjectionState.objects.get(name="customers.timeline")
    assert value(samples, "cc_projection_applied_events_total", projection="customers.timeline") \
        == state.applied_total > 0
    assert value(samples, "cc_projection_rebuilding", projection="customers.timeline") == 0


def test_websocket_connections_are_counted_while_open(staff, scraper):
    from asgiref.sync import async_to_sync, sync_to_async
    from channels.testing import WebsocketCommunicator

    from contactcenter.asgi import application
    from contactcenter.tickets import ticket_issue

    read = sync_to_async(lambda: scrape(scraper))

    async def scenario():
        before = await read()
        ticket = await sync_to_async(lambda: ticket_issue(staff)[0])()
        communicator = WebsocketCommunicator(application, f"/ws/customers/{uuid.uuid4()}/timeline/?ticket={ticket}",
                                             headers=[(b"host", b"localhost"), (b"origin", b"http://localhost")])
        connected, _ = await communicator.connect()
        try:
            assert connected
            await communicator.receive_json_from(timeout=5)  # the welcome
            during = await read()
        finally:
            await communicator.disconnect()
        return before, during, await read()

    before, during, after = async_to_sync(scenario)()
    open_sockets = [value(s, "cc_websocket_connections", kind="timeline") for s in (before, during, after)]
    assert open_sockets == [open_sockets[0], open_sockets[0] + 1, open_sockets[0]]
    assert value(after, "cc_websocket_disconnects_total", kind="timeline", code="1000") \
        == value(before, "cc_websocket_disconnects_total", kind="timeline", code="1000") + 1


# --- one correlation id from the webhook to the agent's desk ---------------------------------------------------


def test_one_correlation_id_follows_a_webhook_through_routing_the_relay_and_a_projector(captured, topic, background):
    make_queue("support")
    make_agent("ann", capacity={"sms": 1})
    cid = str(uuid.uuid4())
    response = sms(correlation_id=cid)
    assert response["X-Correlation-ID"] == cid
    interaction_id = response.json()["interaction"]["id"]
    assert {str(e.correlation_id) for e in Event.objects.filter(stream_id=interaction_id)} >= {cid}

    request_lines = captured.with_id(cid, "contactcenter.request")
    assert [(line["route"], line["status"], line["method"]) for line in request_lines] == [(WEBHOOK_ROUTE, 201, "POST")]

    # The routing decision: the offer pushed to ann's desk is logged under the id of the webhook that queued it.
    routing_services.dispatch()
    offer_lines = captured.with_id(cid, "routing.offers")
    assert len(offer_lines) == 1 and offer_lines[0]["interaction_id"] == interaction_id
    assert offer_lines[0]["group"].startswith("routing.agent.")

    background.relay()
    wait_for(lambda: captured.with_id(cid, "events.relay"), what="a relay line with the id")
    background.projector("customers.timeline")
    projector_lines = wait_for(lambda: captured.with_id(cid, "events.runner"), what="a projector line with the id")
    assert projector_lines[0]["projection"] == "customers.timeline"

    # Without the header the request gets a new id: its log line and its events carry the same one.
    other = sms()
    new_id = other["X-Correlation-ID"]
    assert uuid.UUID(new_id).version == 7 and new_id != cid
    assert captured.with_id(new_id, "contactcenter.request")
    stored = Event.objects.filter(stream_id=other.json()["interaction"]["id"]).values_list("correlation_id", flat=True)
    assert {str(c) for c in stored} == {new_id}
    # Every captured line is one JSON object with the fields operators search by.
    assert all({"time", "level", "logger", "message", "correlation_id"} <= set(line) for line in captured.lines)


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgresql://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.mark.slow
def test_a_celery_task_runs_under_the_correlation_id_it_was_sent_with_and_is_counted(scraper):
    """A real worker process: the id travels in the message header, the worker logs JSON lines with it, and
    its outcome reaches /metrics through the shared PROMETHEUS_MULTIPROC_DIR."""
    from events.tasks import outbox_watch

    queue = f"obs-{uuid.uuid4().hex[:8]}"
    log_file = tempfile.NamedTemporaryFile(suffix=".log", delete=False)
    env = dict(os.environ, DATABASE_URL=_database_url(), DJANGO_SETTINGS_MODULE="contactcenter.test_settings",
               LOG_FORMAT="json", LOG_LEVEL="INFO")
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "contactcenter", "worker", "-Q", queue, "-P",
                               "solo", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                              cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    task = "events.tasks.outbox_watch"
    before = value(scrape(scraper), "cc_celery_tasks_total", task=task, outcome="succeeded")
    cid = str(uuid.uuid4())
    try:
        with logs.bind(cid):
            outbox_watch.apply_async(queue=queue)

        def succeeded_line():
            text = Path(log_file.name).read_text(errors="replace")
            lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
            return [line for line in lines if line.get("correlation_id") == cid and "succeeded" in line["message"]]

        try:
            line = wait_for(succeeded_line, timeout=60, what="the worker's line for the task")[0]
        except AssertionError:
            raise AssertionError("no line for the task; the worker wrote:\n"
                                 + Path(log_file.name).read_text(errors="replace")[-3000:]) from None
        assert line["logger"] == "celery.app.trace" and task in line["message"]
        if metrics.MULTIPROC_DIR:  # `make test` sets it; every process adds to the same figures
            wait_for(lambda: value(scrape(scraper), "cc_celery_tasks_total", task=task, outcome="succeeded")
                     == before + 1, what="the worker's count in /metrics")
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
        os.unlink(log_file.name)


# --- small pieces -------------------------------------------------------------------------------------------------


def test_route_labels_are_url_patterns_not_paths():
    from django.urls import resolve

    class Request:
        def __init__(self, path):
            self.resolver_match = resolve(path)

    assert metrics.route_label(Request(f"/api/v1/interactions/{uuid.uuid4()}/accept/")) \
        == "/api/v1/interactions/{pk}/accept/"
    assert metrics.route_label(Request("/api/v1/webhooks/sms/acme/")) == WEBHOOK_ROUTE
    assert metrics.route_label(Request(f"/api/v1/interactions/{uuid.uuid4()}/mood/")) \
        == "/api/v1/interactions/{interaction_id}/mood/"
    assert metrics.route_label(object()) == "(unresolved)"


def test_observing_a_request_costs_microseconds():
    n = 20_000
    started = time.perf_counter()
    for _ in range(n):
        metrics.observe_request("/api/v1/webhooks/{channel}/{provider}/", "POST", 201, 0.012)
    per_request = (time.perf_counter() - started) / n
    # About 3.5 us measured here in multiprocess mode; the bound leaves room for a busy shared machine.
    assert per_request < 50e-6, f"{per_request * 1e6:.1f} us per observation"


def test_log_lines_carry_no_card_numbers_emails_or_phone_numbers(captured):
    log = logging.getLogger("contactcenter.request")
    log.info("customer wrote 4111 1111 1111 1111 cvv 737 from jane.doe@example.com, +44 20 7946 0958",
             extra={"note": "ssn 123-45-6789"})
    try:
        raise ValueError("bad card 5500-0000-0000-0004")
    except ValueError:
        log.exception("failed")
    text = captured.stream.getvalue()
    for secret in ("4111 1111 1111 1111", "cvv 737", "jane.doe@example.com", "7946 0958", "123-45-6789", "5500-0000"):
        assert secret not in text, secret
    assert "[card ****1111]" in text and "[email]" in text and "[phone]" in text and "[national id]" in text
    assert all(json.loads(line) for line in text.splitlines())  # masking never breaks the JSON
