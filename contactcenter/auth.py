"""Authentication for REST and WebSocket.

REST: `Authorization: Bearer <token>` (DRF's token model, issued with
`manage.py issue_token`), or the admin session (with its CSRF token).

WebSocket: a short-lived, single-use ticket from `POST /api/v1/ws-tickets/`
(contactcenter/tickets.py), in the `ticket` query parameter or as a
`bearer.<ticket>` subprotocol, since browsers cannot set headers on a
WebSocket handshake. The long-lived API token and the session cookie do not
open sockets: a token in a URL ends up in access logs, and a cookie rides
along on any page's handshake (cross-site WebSocket hijacking). A missing,
unknown, expired or already used ticket leaves the socket anonymous, and the
consumer closes it with 4401 before accepting.

Origins (OriginCheck): a browser sends an Origin header on every WebSocket
handshake; it must be one of WS_ALLOWED_ORIGINS (default: the hosts of
ALLOWED_HOSTS), or the socket is closed with 4403 before accepting (and before
the ticket is looked at, so it is not spent). No Origin at all means a client
that is not a browser (the traffic simulator, a service): it still needs a
ticket, which only an authenticated REST call gives; WS_ALLOW_MISSING_ORIGIN
(default true) says whether such clients may connect.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework.authentication import TokenAuthentication

SUBPROTOCOL_PREFIX = "bearer."
CLOSE_UNAUTHENTICATED = 4401  # no valid ticket: ask REST for a new one (and sign in again if that is refused)
CLOSE_FORBIDDEN = 4403  # a foreign Origin, or a user who may not listen to this socket


class BearerTokenAuthentication(TokenAuthentication):
    keyword = "Bearer"


def websocket_ticket(scope) -> tuple[str | None, str | None]:
    """(ticket, subprotocol to accept with): from ?ticket= or a `bearer.<ticket>` subprotocol."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("ticket"):
        return query["ticket"][0], None
    for protocol in scope.get("subprotocols", []):
        if protocol.startswith(SUBPROTOCOL_PREFIX):
            # A browser fails the handshake unless the server picks one of the subprotocols it offered.
            return protocol.removeprefix(SUBPROTOCOL_PREFIX), protocol
    return None, None


class TicketAuthMiddleware:
    """Spends the socket's ticket: scope["user"] is its user, or AnonymousUser (consumers close those with 4401).

    scope["ws_subprotocol"] is the subprotocol the consumer accepts with (the `bearer.` one the ticket came in).
    """

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        # Imported here: DRF imports this module (BearerTokenAuthentication) while rest_framework.views, which
        # contactcenter.tickets needs, is still loading.
        from contactcenter.tickets import ticket_redeem

        ticket, subprotocol = websocket_ticket(scope)
        user = await database_sync_to_async(ticket_redeem)(ticket) if ticket else None
        scope = dict(scope, user=user or AnonymousUser(), ws_subprotocol=subprotocol)
        return await self.inner(scope, receive, send)


def origin_allowed(origin: str) -> bool:
    """Whether a browser on `origin` may open our sockets (WS_ALLOWED_ORIGINS, else ALLOWED_HOSTS)."""
    patterns = settings.WS_ALLOWED_ORIGINS or settings.ALLOWED_HOSTS
    parsed = urlparse(origin)
    # Channels' own matching: "https://a.example:8443" exact, "a.example" any scheme and port, ".example" subdomains.
    return parsed.hostname is not None and OriginValidator(None, patterns).validate_origin(parsed)


async def refuse(receive, send, code: int) -> None:
    """Close a socket before accepting it (ASGI: the connect event first, then the close)."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": code})


class OriginCheck:
    """Browsers only from allowed origins (4403 before accept); clients without an Origin as the settings say."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        origins = [value.decode("latin-1") for name, value in scope.get("headers", []) if name == b"origin"]
        if origins:
            allowed = len(origins) == 1 and origin_allowed(origins[0])
        else:
            allowed = settings.WS_ALLOW_MISSING_ORIGIN
        if not allowed:
            return await refuse(receive, send, CLOSE_FORBIDDEN)
        return await self.inner(scope, receive, send)
