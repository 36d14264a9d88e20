"""Liveness and readiness probes: the only URLs that answer without authentication."""

from __future__ import annotations

import threading

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from contactcenter.degrade import RETRY_AFTER_SECONDS
from events import kafka, selectors

_kafka_lock = threading.Lock()
_kafka_admin = None


@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> dict:
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    return {"ok": True}


def _check_redis() -> dict:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()
    return {"ok": True}


def _check_kafka() -> dict:
    # One admin client per process, reused: making a new one per probe costs
    # a metadata round trip and a version probe each time.
    global _kafka_admin
    with _kafka_lock:
        try:
            if _kafka_admin is None:
                _kafka_admin = kafka.admin_client(bootstrap_timeout_ms=2_000)
            topics = _kafka_admin.list_topics()
        except Exception:
            if _kafka_admin is not None:
                try:
                    _kafka_admin.close()
                except Exception:
                    pass
            _kafka_admin = None
            raise
    return {"ok": True, "events_topic": settings.KAFKA_EVENTS_TOPIC in topics}


@require_GET
def readyz(request):
    checks: dict = {}
    for name, check in (("database", _check_database), ("redis", _check_redis), ("kafka", _check_kafka)):
        try:
            checks[name] = check()
        except Exception as exc:  # report, don't crash: this is what the probe is for
            checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    body: dict = {"checks": checks}
    if checks["database"]["ok"]:
        body["outbox"] = selectors.outbox_backlog()
        body["projections"] = selectors.projection_lag()
    # Kafka down is not "not ready": the API keeps accepting into the outbox.
    ready = checks["database"]["ok"] and checks["redis"]["ok"]
    body["status"] = "ready" if ready else "not ready"
    response = JsonResponse(body, status=200 if ready else 503)
    if not ready:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)  # as every request answers meanwhile (degrade.py)
    return response
