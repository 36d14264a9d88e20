"""Authentication for REST and WebSocket.

REST: `Authorization: Bearer <token>` (DRF's token model, issued with
`manage.py issue_token`), or the admin session. WebSocket: the same token in
the `token` query parameter or as a `bearer.<token>` subprotocol, since
browsers cannot set headers on a WebSocket handshake.
"""

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token


class BearerTokenAuthentication(TokenAuthentication):
    keyword = "Bearer"


def user_for_token(key: str):
    try:
        token = Token.objects.select_related("user").get(key=key)
    except Token.DoesNotExist:
        return AnonymousUser()
    return token.user if token.user.is_active else AnonymousUser()


def websocket_token(scope) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode())
    if query.get("token"):
        return query["token"][0]
    for protocol in scope.get("subprotocols", []):
        if protocol.startswith("bearer."):
            return protocol.removeprefix("bearer.")
    return None


class TokenAuthMiddleware:
    """Puts the token's user (or AnonymousUser) in scope["user"]; consumers refuse anonymous."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        key = websocket_token(scope)
        if key:
            scope = dict(scope, user=await database_sync_to_async(user_for_token)(key))
        elif "user" not in scope:
            scope = dict(scope, user=AnonymousUser())
        return await self.inner(scope, receive, send)
