"""WebSocket tickets: short-lived, single-use, bound to one user (POST /api/v1/ws-tickets/).

A socket opens with `?ticket=<ticket>` (or the subprotocol `bearer.<ticket>`)
instead of the long-lived API token: a URL ends up in access logs and
browser history, and a ticket found there is already spent or expired.

Why a random value in Redis rather than a signed value (django.core.signing):
a single-use ticket needs server-side state either way (a signed value would
need a stored nonce to refuse its second use). Redis gives the expiry for free
(a TTL, no clean-up job) and the single use in one atomic command (GETDEL: of
two sockets racing with one ticket, exactly one gets the user). Sockets need
Redis anyway (the channel layer), so tickets add no new dependency; a Redis
restart only forgets tickets that were at most WS_TICKET_SECONDS old, and
clients simply ask for another. Only a hash of the ticket is stored, so a
look at Redis yields no usable ticket.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import threading

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from contactcenter.api import ErrorSerializer, iso_datetime

log = logging.getLogger(__name__)

_KEY = "ws:ticket:"
RETRY_AFTER_SECONDS = 5
_lock = threading.Lock()
_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    with _lock:
        if _client is None:
            # Short timeouts: a ticket is asked for on a page load or a reconnect; without Redis there would be
            # no socket anyway, and the caller should hear so quickly (503) rather than hang.
            _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        return _client


def _key(ticket: str) -> str:
    return _KEY + hashlib.sha256(ticket.encode()).hexdigest()


def ticket_issue(user) -> tuple[str, int]:
    """A new ticket for `user` and its lifetime in seconds. Raises redis.RedisError when Redis is away."""
    ticket = secrets.token_urlsafe(32)
    seconds = settings.WS_TICKET_SECONDS
    _redis().set(_key(ticket), str(user.pk), ex=seconds)
    return ticket, seconds


def ticket_redeem(ticket: str | None):
    """The active user the ticket was issued to, or None (unknown, expired, already used, or Redis away).

    Spends the ticket: a second redeem of the same ticket is None.
    """
    if not ticket or len(ticket) > 200:
        return None
    try:
        pk = _redis().getdel(_key(ticket))  # read and delete in one step: single use even under a race
    except redis.RedisError:
        log.warning("could not check a WebSocket ticket: Redis is unavailable", exc_info=True)
        return None
    if pk is None:
        return None
    return get_user_model().objects.filter(pk=int(pk), is_active=True).first()


class TicketOutput(serializers.Serializer):
    ticket = serializers.CharField(help_text="open a socket with ?ticket=<ticket> (or the subprotocol "
                                             "bearer.<ticket>); good for one socket")
    expires_in = serializers.IntegerField(help_text="seconds the ticket stays valid if unused")
    expires_at = serializers.DateTimeField()


class WebSocketTicketView(APIView):
    """A ticket that opens one WebSocket (README, "Real-time contract")."""

    # Not a command: a retry gets a new ticket. Replaying a stored answer would store the ticket in clear text
    # (only its hash is kept) and hand out one that may have been used already.
    idempotency = False

    @extend_schema(
        operation_id="ws_ticket_create",
        request=None,
        responses={201: TicketOutput, 401: ErrorSerializer, 503: ErrorSerializer},
        description="A single-use ticket, valid for WS_TICKET_SECONDS (default 60 s), bound to the caller. Open "
                    "/ws/agent/, /ws/wallboard/ or /ws/customers/{id}/timeline/ with ?ticket=<ticket>. Ask for a new "
                    "one for every (re)connect. 503 `realtime_unavailable` (with Retry-After) while Redis is away.",
    )
    def post(self, request):
        try:
            ticket, seconds = ticket_issue(request.user)
        except redis.RedisError:
            log.warning("could not issue a WebSocket ticket: Redis is unavailable", exc_info=True)
            return Response({"detail": "real-time updates are unavailable for now; try again shortly",
                             "code": "realtime_unavailable"}, status=503,
                            headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
        return Response({"ticket": ticket, "expires_in": seconds, "expires_at": iso_datetime(expires_at)}, status=201)
