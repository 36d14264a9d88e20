"""Structured logs that carry the correlation id of the command that caused them.

One customer's touch can be followed by grepping one id: the webhook's
request line, the relay's and each projector's batch lines for its events,
the Celery tasks it started, and the offer pushed to an agent's desk.

How the id travels:

- a contextvar holds the id of the work in hand (`bind`). The HTTP
  middleware (`CorrelationMiddleware`) binds the request's X-Correlation-ID
  header, or a new id which it also writes back into the request, so the
  events the request appends (contactcenter.api.command_meta) carry the same
  id as its log lines; the answer echoes it in X-Correlation-ID;
- Celery tasks get it in a message header when they are sent, and bind it
  while they run (contactcenter/celery.py);
- the relay and the projectors read it from each event's envelope;
- routing's offers name the correlation id of the interaction they offer
  (`log_offers`): one dispatch pass offers the work of many customers.

Every record gets `correlation_id` (None outside any command) from
`CorrelationFilter`, installed on the handler in settings.LOGGING, so the
lines of Django, Celery and kafka-python get it too.

No personal data in logs: our lines name ids, never message bodies, names,
emails or phone numbers. As a second line of defence both formatters mask
card numbers, security codes and national ids (interactions.redact, the same
rules as for stored text), email addresses and E.164 phone numbers in what
they write, exception text included.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
from contextvars import ContextVar

from django.conf import settings
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from interactions.redact import mask

log = logging.getLogger("contactcenter.request")
routing_log = logging.getLogger("routing.offers")

CORRELATION_HEADER = "HTTP_X_CORRELATION_ID"  # as contactcenter.api reads it

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def current() -> str | None:
    """The correlation id of the work in hand, or None."""
    return correlation_id.get()


@contextlib.contextmanager
def bind(value):
    """Log under `value` (a UUID or its text; None: no id) inside the block, then restore the previous one."""
    token = correlation_id.set(str(value) if value else None)
    try:
        yield
    finally:
        correlation_id.reset(token)


def bound(value, fn, *args):
    """`fn(*args)` to run later (on commit, in another thread) under correlation id `value`."""

    def run():
        with bind(value):
            return fn(*args)

    return run


def single(values) -> str | None:
    """The one correlation id shared by all of `values`, else None (a batch of several commands' events)."""
    found = {str(v) for v in values if v}
    return found.pop() if len(found) == 1 else None


def distinct(values) -> list[str]:
    """The distinct correlation ids among `values`, in first-seen order (for a batch line)."""
    return list(dict.fromkeys(str(v) for v in values if v))


# --- records -------------------------------------------------------------------------------------------------


class CorrelationFilter(logging.Filter):
    """Adds `correlation_id` to every record: one given with `extra=` wins, else the contextvar's."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "correlation_id", None) is None:
            record.correlation_id = correlation_id.get()
        elif not isinstance(record.correlation_id, str):
            record.correlation_id = str(record.correlation_id)
        return True


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w+])\+\d[\d ().-]{6,18}\d(?!\d)")
# What interactions.redact.mask could find, looked for in one pass: most lines have none, and mask's own
# passes cost about 10 us a line.
_MAYBE = re.compile(r"\d(?:[ -]?\d){12}|\d{3}-\d{2}-\d{4}|\d{2} ?\d{2} ?\d{2}|cv[vc]|csc|security\s+code", re.I)


def scrub(text: str) -> str:
    """`text` with card numbers, security codes, national ids, emails and E.164 phone numbers masked."""
    if "@" in text:
        text = _EMAIL.sub("[email]", text)
    if "+" in text:
        text = _PHONE.sub("[phone]", text)
    return mask(text)[0] if _MAYBE.search(text) else text


_OURS = frozenset({"time", "level", "logger", "route", "method"})


class JsonFormatter(_JsonFormatter):
    """One JSON object a line: time, level, logger, message, correlation_id, process, and any `extra=` fields."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "time")
        super().__init__(*args, **kwargs)

    def process_log_record(self, log_data: dict) -> dict:
        # Text fields are scrubbed before they become JSON (scrubbing the finished line could eat a number
        # and break it); the time, level, logger and ids (`*_id`, `*_ids`) are ours and never personal.
        for key, value in log_data.items():
            if isinstance(value, str) and key not in _OURS and not key.endswith(("_id", "_ids")):
                log_data[key] = scrub(value)
            elif isinstance(value, dict):  # e.g. Celery's `data`: a task's arguments and result, as text
                log_data[key] = {k: scrub(v) if isinstance(v, str) else v for k, v in value.items()}
        return log_data


class PlainFormatter(logging.Formatter):
    """The human-readable line for local use (LOG_FORMAT=plain), with the correlation id in brackets."""

    def format(self, record: logging.LogRecord) -> str:
        cid = getattr(record, "correlation_id", None)
        record.correlation_id = cid or "-"
        try:
            return scrub(super().format(record))
        finally:
            record.correlation_id = cid


# --- web requests -------------------------------------------------------------------------------------------


class CorrelationMiddleware:
    """Binds the request's correlation id for its log lines and answers with it in X-Correlation-ID.

    A request without the header (or with one that is not a UUID) gets a new
    time-ordered id, written into request.META so that command_meta (and the
    webhooks' `_meta`) put the same id on the events the request appends.
    When LOG_REQUESTS is on, one line per request says the method, the URL
    route (the pattern, not the path: paths and query strings can hold
    personal data), the status and the time taken.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.log_requests = getattr(settings, "LOG_REQUESTS", True)

    def __call__(self, request):
        from contactcenter.metrics import route_label
        from events.store import uuid7

        raw = request.META.get(CORRELATION_HEADER)
        try:
            cid = str(uuid.UUID(raw)) if raw else None
        except ValueError:
            cid = None
        if cid is None:
            cid = str(uuid7())
            request.META[CORRELATION_HEADER] = cid
        token = correlation_id.set(cid)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Correlation-ID"] = cid
            if self.log_requests:
                route = route_label(request)
                log.info("%s %s %s", request.method, route, response.status_code,
                         extra={"method": request.method, "route": route,
                                "status": response.status_code,
                                "duration_ms": round((time.perf_counter() - started) * 1000, 2)})
            return response
        finally:
            correlation_id.reset(token)


# --- routing offers -----------------------------------------------------------------------------------------


def log_offers(offers: list[tuple]) -> None:
    """After the commit: one line per offer pushed to an agent's desk, under the offered interaction's id.

    `offers`: (interaction_id, agent's primary key, queue); the line names the
    agent's socket group, not their user name. The offer events carry the
    routing system's metadata, so the id is the one of the command that
    queued the interaction (its latest InteractionQueued, else its latest
    event with an id): the webhook's, for a contact that came in by one. One
    query per dispatch pass, run after the offers are committed and pushed
    (the push is registered first), and only when the lines are logged.
    """
    if not offers or not routing_log.isEnabledFor(logging.INFO):
        return
    from django.db import transaction

    transaction.on_commit(lambda: _log_offers(offers))


def _log_offers(offers: list[tuple]) -> None:
    from django.db import connection

    try:
        with connection.cursor() as cur:
            cur.execute(
                """SELECT DISTINCT ON (stream_id) stream_id, correlation_id FROM events_event
                   WHERE stream_id = ANY(%s) AND correlation_id IS NOT NULL
                   ORDER BY stream_id, (event_type = 'interactions.InteractionQueued') DESC, stream_version DESC""",
                [[o[0] for o in offers]])
            ids = dict(cur.fetchall())
    except Exception:  # a log line is never worth failing the routing worker
        routing_log.warning("could not read the correlation ids of %d offers", len(offers), exc_info=True)
        ids = {}
    for interaction_id, agent_pk, queue in offers:
        group = f"routing.agent.{agent_pk}"  # the desk socket's group (routing.realtime.agent_group)
        routing_log.info("offer of interaction %s pushed to %s", interaction_id, group,
                         extra={"correlation_id": ids.get(interaction_id), "interaction_id": str(interaction_id),
                                "group": group, "queue": queue})
