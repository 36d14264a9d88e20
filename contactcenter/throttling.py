"""Rate limits: DRF throttles per user and per IP, counted in Redis through Django's cache, failing open.

Four scopes, each a rate in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] (set from
the environment in settings.py; README "Limits" lists them):

- `user`: an authenticated caller, by user id;
- `ip`: every authenticated caller of one IP together (a floor behind one NAT
  shares it, so it is generous; it caps a stolen-token spray from one host);
- `anon`: callers without credentials, by IP (counted by AnonymousRateLimit,
  an authenticator, since DRF answers them 401 before any throttle runs);
- `webhook`: the signed provider webhooks (views that declare no
  authenticators: the signature is their authentication) by IP, with their own
  higher rate, since one provider delivers every customer's messages from a
  few addresses.

Counting is a fixed window: one Redis INCR (and EXPIRE) per scope and request,
in one round trip, under a key that names the window. A window lets through
at most twice its rate across its boundary; that is the price of O(1) state.
(DRF's SimpleRateThrottle keeps a list of every timestamp in the window and
rewrites it whole on each request: at 60,000/min that list is the bottleneck.)

An unreachable Redis must never turn into 500s: the throttle lets the request
through, logs a warning, and does not try Redis again for FAIL_OPEN_SECONDS,
so a dead Redis costs one failed connect per process per period, not one per
request.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

log = logging.getLogger(__name__)

CACHE_ALIAS = "default"
FAIL_OPEN_SECONDS = 10.0
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*$")
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

_down_until = 0.0
_down_lock = threading.Lock()


def parse_rate(rate: str) -> tuple[int, int]:
    """`"600/min"` -> (600, 60). Also `"100/s"`, `"5/10s"`, `"1000/hour"`, `"10000/day"`. ValueError if malformed."""
    match = _RATE.match(rate or "")
    if not match:
        raise ValueError(f"a rate is 'number/period' (period s, min, hour or day), not {rate!r}")
    count, multiple, unit = match.groups()
    return int(count), int(multiple or 1) * _PERIODS[unit[0]]


def client_ip(request) -> str:
    """The caller's address: REMOTE_ADDR, or the address TRUSTED_PROXY_COUNT proxies in front of us saw.

    X-Forwarded-For is only believed as far as our own proxies wrote it (the
    rightmost NUM_PROXIES entries); with no trusted proxy it is ignored, or
    any client could name itself a fresh IP per request and dodge the limits.
    Django and DRF requests both work (axes uses this too).
    """
    meta = request.META
    remote = meta.get("REMOTE_ADDR") or ""
    proxies = api_settings.NUM_PROXIES or 0
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-min(proxies, len(hops))]
    return remote


class RateLimited(exceptions.Throttled):
    """429 with `Retry-After` (whole seconds) and `{"detail", "code": "throttled", "scope"}`."""

    def __init__(self, scope: str, wait: float) -> None:
        wait = max(1, math.ceil(wait))
        exceptions.APIException.__init__(
            self, {"detail": f"too many requests (the {scope} rate limit); retry in {wait} s",
                   "code": "throttled", "scope": scope}, "throttled")
        self.wait = wait


def _count(key: str, period: int) -> int | None:
    """Add one to the window's counter and return it; None when the cache is unreachable (fail open)."""
    global _down_until
    if time.monotonic() < _down_until:
        return None
    try:
        cache = caches[CACHE_ALIAS]
        if isinstance(cache, RedisCache):
            # One round trip: INCR creates the key at 1. EXPIRE on every hit keeps the code simple (EXPIRE NX
            # needs Redis 7; the embedded one is 6.2) and is harmless: the key's name ends with its window.
            full_key = cache.make_and_validate_key(key)
            pipe = cache._cache.get_client(full_key, write=True).pipeline(transaction=False)
            pipe.incr(full_key)
            pipe.expire(full_key, period + 1)
            count, _ = pipe.execute()
            return int(count)
        if cache.add(key, 1, timeout=period + 1):  # another backend (a local-memory cache in a Redis-less run)
            return 1
        return cache.incr(key)
    except Exception as exc:  # noqa: BLE001 - whatever the cache raises, a rate limit must not fail the request
        with _down_lock:
            first = time.monotonic() >= _down_until
            _down_until = time.monotonic() + FAIL_OPEN_SECONDS
        if first:
            log.warning("rate limits are off for %.0f s: the throttle cache is unreachable (%s: %s)",
                        FAIL_OPEN_SECONDS, type(exc).__name__, exc)
        return None


def reset_fail_open() -> None:
    """Try the cache again on the next request (tests, and after an operator fixed Redis)."""
    global _down_until
    _down_until = 0.0


def hit(scope: str, ident: str) -> None:
    """Count one request of `ident` in `scope`; RateLimited (429) once over the scope's rate. Fails open."""
    # Read per request, not at import: a changed setting (a test's lower rate) applies at once.
    rate = api_settings.DEFAULT_THROTTLE_RATES.get(scope)
    if not rate:
        return
    limit, period = parse_rate(rate)
    now = time.time()
    window = int(now // period)
    count = _count(f"throttle:{scope}:{ident}:{period}:{window}", period)
    if count is not None and count > limit:
        raise RateLimited(scope, (window + 1) * period - now)


class _WindowThrottle(BaseThrottle):
    scope = ""

    def ident(self, request, view) -> str | None:
        """Whose counter this request adds to, or None when this scope does not apply to it."""
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        request._throttles_checked = True  # see count_denied()
        ident = self.ident(request, view)
        if ident is not None:
            # Raises rather than returning False: DRF's own Throttled carries a plain-string detail; ours a code.
            hit(self.scope, ident)
        return True


def _is_webhook(view) -> bool:
    # A view declaring no authenticators authenticates its callers itself: the signed webhooks.
    return getattr(view, "authentication_classes", None) == []


def _authenticated(request) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated)


class UserRateThrottle(_WindowThrottle):
    scope = "user"

    def ident(self, request, view):
        return f"u{request.user.pk}" if _authenticated(request) else None


class IPRateThrottle(_WindowThrottle):
    """Every authenticated caller of one IP together."""

    scope = "ip"

    def ident(self, request, view):
        return client_ip(request) if _authenticated(request) else None


class WebhookRateThrottle(_WindowThrottle):
    """The signed webhooks, by IP. Checked before the signature (throttles run first), so by IP, not provider:
    a provider name in the URL is not proven yet, and a per-provider counter could be dodged by inventing names."""

    scope = "webhook"

    def ident(self, request, view):
        return client_ip(request) if _is_webhook(view) else None


class AnonymousRateLimit(BaseAuthentication):
    """The `anon` rate, by IP, for callers that bring no credentials. An authentication class, last in the list.

    Why not a throttle: DRF checks permissions before throttles, so a throttle
    never sees an anonymous caller of an endpoint that needs a user (they get
    their 401 first), and those are nearly all anonymous traffic. DRF asks the
    authenticators in order until one recognises the caller; this one is only
    asked when none did, so it counts exactly the callers without credentials,
    before the 401. It never authenticates anyone. (A caller with a wrong
    token is refused by the token authenticator before this one is asked:
    tokens are 40 random hex digits, not worth guessing.)
    """

    rate_limit_only = True

    def authenticate(self, request):
        ip = client_ip(request)
        if ip:  # no address: not a network caller (drf-spectacular's mock requests while it writes the schema)
            hit("anon", ip)
        return None


class AnonymousRateLimitScheme(OpenApiAuthenticationExtension):
    """For drf-spectacular: AnonymousRateLimit is no way of signing in, so the schema lists no scheme for it."""

    target_class = "contactcenter.throttling.AnonymousRateLimit"
    name = []

    def get_security_requirement(self, auto_schema):
        return None

    def get_security_definition(self, auto_schema):
        return []


def count_denied(request, view) -> exceptions.Throttled | None:
    """A request refused by a permission check (403, or 404 outside the caller's scope) before DRF ran the
    throttles: count it now, so probing ids is rate limited like any other request. Returns the 429 to give
    instead, if over a limit."""
    if request is None or view is None or getattr(request, "_throttles_checked", False):
        return None
    try:
        view.check_throttles(request)
    except exceptions.Throttled as over:
        return over
    return None
