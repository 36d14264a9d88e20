"""Prometheus figures: what operators watch to see trouble before customers do (docs/OPERATIONS.md).

Two kinds of figure, kept apart on purpose:

- **Read from PostgreSQL at scrape time** (`DatabaseCollector`): the outbox
  backlog and its oldest event, projection lag, queue depth and longest
  wait, agents by presence, dead letters. They are exact whichever process
  answers the scrape, and cost nothing between scrapes.
- **Counted where they happen** (process-local): request latency, routing
  decision latency, offers made and answered, open WebSockets, Celery task
  outcomes, Kafka errors. Every process (web, routing and other workers,
  relay, projector) writes them to files in PROMETHEUS_MULTIPROC_DIR
  (prometheus-client's multiprocess mode), and /metrics, served by any web
  process, adds them up. Without the variable each process keeps its own
  and /metrics shows only the answering process's.

Per-request cost: two clock reads, a dict lookup for the route and one
histogram observation (an mmap write); measured in tests/test_observability.py.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import re
import socket
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

log = logging.getLogger(__name__)

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")

# --- multiprocess mode ---------------------------------------------------------------------------------------
#
# Files are named after the process. Containers that share one directory (a volume) all have small pids,
# often the same ones, so the host name goes in the name too ("_" is the file name's separator).
_HOST = socket.gethostname().replace("_", "-")
_ident = {"pid": None, "name": ""}


def process_name() -> str:
    pid = os.getpid()
    if _ident["pid"] != pid:  # first use, or a fork (Celery's prefork children)
        _ident["pid"], _ident["name"] = pid, f"{_HOST}-{pid}"
    return _ident["name"]


if MULTIPROC_DIR:
    os.makedirs(MULTIPROC_DIR, exist_ok=True)
    # Before any metric below exists: every value made from here on lives in this process's files.
    values.ValueClass = values.MultiProcessValue(process_identifier=process_name)


def process_exited(name: str | None = None) -> None:
    """Forget a finished process's live gauges (its open WebSockets); its counters stay in the totals."""
    if MULTIPROC_DIR:
        mark_process_dead(name or process_name(), MULTIPROC_DIR)


if MULTIPROC_DIR:
    atexit.register(process_exited)


# --- process-local figures ----------------------------------------------------------------------------------

HTTP_LATENCY = Histogram(
    "cc_http_request_duration_seconds", "Time to answer an HTTP request, by URL route, method and status class.",
    ["route", "method", "status"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
DISPATCH_LATENCY = Histogram(
    "cc_routing_dispatch_duration_seconds",
    "Time of one routing dispatch pass (decide and offer, one transaction), by side: interaction, agent or all.",
    ["side"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
OFFERS_MADE = Counter("cc_routing_offers", "Offers routing made (committed).")
OFFERS_ANSWERED = Counter(
    "cc_offers_answered", "Offers answered (committed): accepted, declined by the agent, or timed out.",
    ["outcome", "queue"])
WEBSOCKETS = Gauge("cc_websocket_connections", "Open WebSocket connections, by consumer kind.", ["kind"],
                   multiprocess_mode="livesum")
WEBSOCKET_CLOSES = Counter("cc_websocket_disconnects", "Accepted WebSockets that closed, by kind and close code.",
                           ["kind", "code"])
CELERY_TASKS = Counter("cc_celery_tasks", "Celery task outcomes: succeeded, failed, retried, rejected.",
                       ["task", "outcome"])
KAFKA_ERRORS = Counter("cc_kafka_errors", "Times the relay or a projector lost Kafka and began retrying.",
                       ["component"])


# --- HTTP ----------------------------------------------------------------------------------------------------

_PARAM = re.compile(r"\(\?P<(\w+)>[^)]*\)|<(?:\w+:)?(\w+)>")
_routes: dict[str, str] = {}


def route_label(request) -> str:
    """The request's URL pattern as a label ("/api/v1/interactions/{pk}/accept/"): bounded, unlike the path.

    "(unresolved)" when no URL pattern matched: a 404, or a static file
    answered before URL resolution.
    """
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "(unresolved)"
    route = match.route
    label = _routes.get(route)
    if label is None:
        label = "/" + _PARAM.sub(lambda m: "{" + (m.group(1) or m.group(2)) + "}", route).replace("^", "") \
            .replace("$", "").replace("\\", "")
        if len(_routes) < 5000:  # the URLconf is finite; the guard is only against a surprise
            _routes[route] = label
    return label


_http_children: dict[tuple, object] = {}


class RequestMetricsMiddleware:
    """Observes every request's duration by route, method and status class (first in MIDDLEWARE: all of it)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        observe_request(route_label(request), request.method, response.status_code,
                        time.perf_counter() - started)
        return response


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    key = (route, method, status // 100)
    child = _http_children.get(key)
    if child is None:  # labels() takes a lock and builds strings: once per series, not per request
        child = _http_children[key] = HTTP_LATENCY.labels(route, method, f"{status // 100}xx")
    child.observe(seconds)


# --- routing and offers --------------------------------------------------------------------------------------


def timed_dispatch(fn):
    """Wraps routing.services.dispatch: its duration, and the offers it made once they are committed."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        side = "agent" if kwargs.get("agent_ids") is not None else \
            "interaction" if kwargs.get("interaction_ids") is not None else "all"
        started = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
        finally:
            DISPATCH_LATENCY.labels(side).observe(time.perf_counter() - started)
        if result.offered:
            _count_offers(result)
        return result

    return wrapper


def _count_offers(result) -> None:
    from django.db import transaction

    # The pass committed already unless a caller's transaction encloses it: count once that commits.
    offered = len(result.offered)
    transaction.on_commit(lambda: OFFERS_MADE.inc(offered))


def offer_outcomes(row, new_events) -> None:
    """interactions services: count offers accepted, declined and timed out, once the transaction commits."""
    outcomes = []
    for event in new_events:
        name = type(event).__name__
        if name == "InteractionAccepted":
            outcomes.append("accepted")
        elif name == "OfferDeclined":
            outcomes.append("timed_out" if getattr(event, "reason", "") == "timeout" else "declined")
    if outcomes:
        from django.db import transaction

        queue = row.queue or "default"
        transaction.on_commit(lambda: [OFFERS_ANSWERED.labels(o, queue).inc() for o in outcomes])


# --- WebSockets ----------------------------------------------------------------------------------------------

_KINDS = {"AgentConsumer": "agent", "WallboardConsumer": "wallboard", "CustomerTimelineConsumer": "timeline"}
_CLOSE_CODES = {1000, 1001, 1006, 1011, 1012}


def socket_opened(consumer) -> None:
    """A consumer accepted its socket (call right after accept())."""
    kind = _KINDS.get(type(consumer).__name__, type(consumer).__name__.lower())
    consumer._cc_metrics_kind = kind
    WEBSOCKETS.labels(kind).inc()


def socket_closed(consumer, code=None) -> None:
    """A consumer's socket closed (call from disconnect()); only sockets counted as open are counted here."""
    kind = getattr(consumer, "_cc_metrics_kind", None)
    if kind is None:
        return  # refused at connect (4401, 4403), or already counted
    consumer._cc_metrics_kind = None
    WEBSOCKETS.labels(kind).dec()
    WEBSOCKET_CLOSES.labels(kind, str(code) if code in _CLOSE_CODES else "other").inc()


# --- what PostgreSQL knows, read at scrape time ---------------------------------------------------------------


class DatabaseCollector:
    """The figures that live in PostgreSQL, read when Prometheus scrapes (a handful of small queries).

    Exact: no process keeps a copy. A statement timeout keeps a slow
    database from holding the scrape; a database that cannot answer gives
    cc_database_up 0 and none of these figures, rather than a failed scrape.
    """

    def collect(self):
        from django.db import connection, transaction

        up = GaugeMetricFamily("cc_database_up", "1 when /metrics could read its figures from PostgreSQL.")
        try:
            with transaction.atomic(), connection.cursor() as cur:
                cur.execute("SET LOCAL statement_timeout = '5s'")
                families = list(_database_families(cur))
        except Exception:
            log.warning("metrics: could not read figures from PostgreSQL", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def _database_families(cur):
    cur.execute("SELECT count(*), coalesce(extract(epoch FROM now() - min(enqueued_at)), 0) FROM events_outbox")
    count, oldest = cur.fetchone()
    yield _gauge("cc_outbox_backlog_events", "Events committed but not yet acknowledged by Kafka.", value=count)
    yield _gauge("cc_outbox_oldest_age_seconds", "How long the oldest unpublished event has waited (0: none).",
                 value=float(oldest))

    cur.execute("SELECT published_total, coalesce(extract(epoch FROM now() - last_published_at), -1), broker_epoch "
                "FROM events_relay_state WHERE id = 1")
    published, since, relay_epoch = cur.fetchone() or (0, -1, 0)
    counter = CounterMetricFamily("cc_relay_published_events", "Events the relay has published to Kafka.")
    counter.add_metric([], published)
    yield counter
    yield _gauge("cc_relay_last_publish_age_seconds", "Seconds since the relay last published (-1: never).",
                 value=float(since))

    # Lag from our own positions (DESIGN: the embedded broker's end offsets are wrong): what the relay had
    # acknowledged per partition, less the next offset each projection will read. A projection still on an
    # older broker epoch starts the new log from 0, so all of it is its lag.
    cur.execute(
        """
        SELECT s.name, s.status, s.applied_total,
               coalesce((SELECT sum(greatest(rp.last_offset + 1
                                             - CASE WHEN s.broker_epoch = %s THEN coalesce(c.next_offset, 0)
                                                    ELSE 0 END, 0))
                         FROM events_relay_partition rp
                         LEFT JOIN events_projection_checkpoint c
                                ON c.projection = s.name AND c.partition = rp.partition), 0)
        FROM events_projection_state s ORDER BY s.name
        """,
        [relay_epoch],
    )
    lag = GaugeMetricFamily("cc_projection_lag_events", "Events published to Kafka that a projection has not "
                            "applied yet (from our positions).", labels=["projection"])
    applied = CounterMetricFamily("cc_projection_applied_events", "Events a projection has applied.",
                                  labels=["projection"])
    rebuilding = GaugeMetricFamily("cc_projection_rebuilding", "1 while a projection is being rebuilt (replay).",
                                   labels=["projection"])
    for name, status, applied_total, behind in cur.fetchall():
        lag.add_metric([name], int(behind))
        applied.add_metric([name], applied_total)
        rebuilding.add_metric([name], 1 if status == "rebuilding" else 0)
    yield lag
    yield applied
    yield rebuilding

    # Every configured queue appears (0 when empty), and so does work in a queue nobody configured.
    cur.execute(
        """
        SELECT q.name, coalesce(w.waiting, 0), coalesce(w.offered, 0), coalesce(w.oldest, 0)
        FROM (SELECT name FROM routing_queue UNION SELECT DISTINCT queue FROM routing_work) q
        LEFT JOIN (SELECT queue, count(*) FILTER (WHERE status = 'waiting') AS waiting,
                          count(*) FILTER (WHERE status = 'offered') AS offered,
                          extract(epoch FROM now() - min(enqueued_at) FILTER (WHERE status = 'waiting')) AS oldest
                   FROM routing_work WHERE status IN ('waiting', 'offered') GROUP BY queue) w ON w.queue = q.name
        ORDER BY q.name
        """
    )
    waiting = GaugeMetricFamily("cc_queue_waiting", "Interactions waiting in a queue for an agent.", labels=["queue"])
    offered = GaugeMetricFamily("cc_queue_offered", "Interactions of a queue offered, not yet answered.",
                                labels=["queue"])
    oldest = GaugeMetricFamily("cc_queue_oldest_wait_seconds", "How long the longest-waiting interaction of a "
                               "queue has waited (0: none waiting).", labels=["queue"])
    for name, n_waiting, n_offered, age in cur.fetchall():
        waiting.add_metric([name], n_waiting)
        offered.add_metric([name], n_offered)
        oldest.add_metric([name], float(age or 0))
    yield waiting
    yield offered
    yield oldest

    cur.execute("SELECT presence, count(*) FROM routing_agent GROUP BY presence ORDER BY presence")
    agents = GaugeMetricFamily("cc_agents", "Agents by presence.", labels=["presence"])
    for presence, n in cur.fetchall():
        agents.add_metric([presence], n)
    yield agents

    cur.execute("SELECT projection, count(*) FROM events_dead_letter WHERE resolved_at IS NULL GROUP BY projection "
                "ORDER BY projection")
    dead = GaugeMetricFamily("cc_dead_letters", "Events a projection failed to apply and nobody has retried "
                             "successfully yet.", labels=["projection"])
    for projection, n in cur.fetchall():
        dead.add_metric([projection], n)
    yield dead


def _gauge(name: str, documentation: str, *, value) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


class _ThisProcess:
    """Without multiprocess mode: this process's own figures (and the client's process and GC figures)."""

    def collect(self):
        from prometheus_client import REGISTRY

        yield from REGISTRY.collect()


def exposition(accept_header: str | None) -> tuple[bytes, str]:
    """The scrape's body and content type (OpenMetrics or the classic text format, as Prometheus asks)."""
    registry = CollectorRegistry(auto_describe=False)
    if MULTIPROC_DIR:
        MultiProcessCollector(registry, path=MULTIPROC_DIR)
    else:
        registry.register(_ThisProcess())
    registry.register(DatabaseCollector())
    encoder, content_type = choose_encoder(accept_header or "")
    return encoder(registry), content_type
