"""Who may open a socket: short-lived single-use tickets, allowed origins, and the message size limit.

In-process through Channels' communicator (close codes are visible there), and against a real daphne with
the `websockets` client (where a refusal before accept is an HTTP 403 handshake, and the size limit is
daphne's own, closing with 1009).
"""

import asyncio
import json
import time
import urllib.error
import urllib.request

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from contactcenter import tickets
from contactcenter.asgi import application
from routing.realtime import agent_group
from tests.conftest import client_for
from tests.routing.conftest import web  # noqa: F401  (daphne on the test's database)
from tests.routing.factories import make_agent

pytestmark = pytest.mark.django_db(transaction=True)

LOCAL = (b"origin", b"http://localhost")


def ticket_of(user) -> str:
    response = client_for(user).post("/api/v1/ws-tickets/")
    assert response.status_code == 201, response.content
    return response.json()["ticket"]


def attempt(path, *, origin=LOCAL, subprotocols=None, headers=()):
    """Open a socket in-process; (connected, close code or accepted subprotocol, first message or None)."""

    async def go():
        extra = [(b"host", b"localhost"), *([origin] if origin else []), *headers]
        communicator = WebsocketCommunicator(application, path, headers=extra, subprotocols=subprotocols)
        connected, detail = await communicator.connect(timeout=10)
        first = await communicator.receive_json_from(timeout=5) if connected else None
        # Refused too: a consumer that closed before accept runs until the socket is gone (its channel-layer
        # receive would otherwise be cancelled with the event loop).
        await communicator.disconnect()
        return connected, detail, first

    return async_to_sync(go)()


# --- tickets --------------------------------------------------------------------------------------------------


def test_a_ticket_needs_an_authenticated_caller_and_lives_for_the_setting(settings):
    assert APIClient().post("/api/v1/ws-tickets/").status_code == 401
    settings.WS_TICKET_SECONDS = 45
    ann = make_agent("ann")
    response = client_for(ann.user).post("/api/v1/ws-tickets/")
    assert response.status_code == 201
    body = response.json()
    assert body["expires_in"] == 45 and len(body["ticket"]) >= 40 and body["expires_at"].endswith("Z")
    # Stored hashed, with the TTL: Redis holds no usable ticket.
    key = tickets._key(body["ticket"])
    assert body["ticket"] not in key and 40 <= tickets._redis().ttl(key) <= 45


def test_a_ticket_opens_one_socket_for_its_user_and_the_welcome_says_where_the_stream_starts():
    ann = make_agent("ann")
    ticket = ticket_of(ann.user)
    connected, _, welcome = attempt(f"/ws/agent/?ticket={ticket}")
    assert connected
    assert welcome["type"] == "welcome" and welcome["seq"] == {agent_group(ann.pk): 0}
    assert welcome["resync"][0] == "/api/v1/agents/me/"
    again = attempt(f"/ws/agent/?ticket={ticket}")  # the same ticket a second time
    assert again[:2] == (False, 4401)


def test_forged_expired_and_long_lived_credentials_are_closed_4401_before_accept(settings):
    ann = make_agent("ann")
    token = Token.objects.create(user=ann.user).key
    settings.WS_TICKET_SECONDS = 1
    expired = ticket_of(ann.user)
    time.sleep(2.1)
    for path, protocols in [(f"/ws/agent/?ticket={expired}", None),
                            ("/ws/agent/?ticket=forged-" + "x" * 40, None),
                            (f"/ws/agent/?token={token}", None),  # the long-lived API token: no longer
                            (f"/ws/agent/?ticket={token}", None),
                            ("/ws/agent/", [f"bearer.{token}"]),
                            ("/ws/agent/?ticket=" + "x" * 5000, None),
                            ("/ws/agent/", None)]:
        assert attempt(path, subprotocols=protocols)[:2] == (False, 4401), path[:60]


def test_the_session_cookie_no_longer_opens_a_socket():
    ann = make_agent("ann")
    client = APIClient()
    client.force_login(ann.user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    assert attempt("/ws/agent/", headers=[(b"cookie", cookie)])[:2] == (False, 4401)


def test_the_bearer_subprotocol_carries_a_ticket_and_is_accepted_back():
    ann = make_agent("ann")
    protocol = f"bearer.{ticket_of(ann.user)}"
    connected, accepted, welcome = attempt("/ws/agent/", subprotocols=[protocol])
    assert connected and accepted == protocol and welcome["type"] == "welcome"


def test_a_ticket_is_bound_to_its_user():
    ann = make_agent("ann")
    bob = make_agent("bob")
    visitor = get_user_model().objects.create_user(username="visitor", password="x")
    _, _, welcome = attempt(f"/ws/agent/?ticket={ticket_of(bob.user)}")
    assert list(welcome["seq"]) == [agent_group(bob.pk)] != [agent_group(ann.pk)]
    assert attempt(f"/ws/agent/?ticket={ticket_of(visitor)}")[:2] == (False, 4403)  # valid ticket, not an agent
    ticket = ticket_of(ann.user)
    ann.user.is_active = False
    ann.user.save()
    assert attempt(f"/ws/agent/?ticket={ticket}")[:2] == (False, 4401)  # deactivated since


def test_without_redis_a_ticket_is_503_with_retry_after(monkeypatch):
    import redis

    from contactcenter.devstack import free_port

    ann = make_agent("ann")
    # A real client of a Redis that is not there (nothing listens on the port), not a mock.
    monkeypatch.setattr(tickets, "_client", redis.Redis(port=free_port(), socket_connect_timeout=1))
    response = client_for(ann.user).post("/api/v1/ws-tickets/")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json()["code"] == "realtime_unavailable"
    assert tickets.ticket_redeem("anything") is None  # and sockets stay closed (4401), they do not crash


# --- origins ----------------------------------------------------------------------------------------------------


def test_a_foreign_origin_is_closed_4403_and_its_ticket_is_not_spent():
    ann = make_agent("ann")
    ticket = ticket_of(ann.user)
    for origin in (b"https://evil.example", b"null", b"http://localhost.evil.example", b"file://"):
        assert attempt(f"/ws/agent/?ticket={ticket}", origin=(b"origin", origin))[:2] == (False, 4403), origin
    two = attempt(f"/ws/agent/?ticket={ticket}", headers=[(b"origin", b"https://evil.example")])
    assert two[:2] == (False, 4403)  # an allowed Origin and a second, foreign one
    assert attempt(f"/ws/agent/?ticket={ticket}")[0] is True  # still good from an allowed origin


def test_no_origin_is_a_client_that_is_not_a_browser_let_through_to_the_ticket_check(settings):
    ann = make_agent("ann")
    assert attempt(f"/ws/agent/?ticket={ticket_of(ann.user)}", origin=None)[0] is True
    assert attempt("/ws/agent/", origin=None)[:2] == (False, 4401)  # still needs a ticket
    settings.WS_ALLOW_MISSING_ORIGIN = False
    assert attempt(f"/ws/agent/?ticket={ticket_of(ann.user)}", origin=None)[:2] == (False, 4403)


def test_ws_allowed_origins_replaces_allowed_hosts(settings):
    ann = make_agent("ann")
    settings.WS_ALLOWED_ORIGINS = ["https://desk.example.com", ".example.org"]
    ok = [b"https://desk.example.com", b"https://wall.example.org", b"http://example.org:8080"]
    refused = [b"http://desk.example.com", b"https://desk.example.com:8443", b"http://localhost"]
    for origin in ok:
        assert attempt(f"/ws/agent/?ticket={ticket_of(ann.user)}", origin=(b"origin", origin))[0] is True, origin
    for origin in refused:
        assert attempt(f"/ws/agent/?ticket={ticket_of(ann.user)}", origin=(b"origin", origin))[:2] == (False, 4403)


# --- the message size limit -------------------------------------------------------------------------------------


def test_a_client_message_over_the_limit_closes_with_1009(settings):
    settings.WS_MAX_MESSAGE_BYTES = 1000
    ann = make_agent("ann")
    ticket = ticket_of(ann.user)

    async def go():
        communicator = WebsocketCommunicator(application, f"/ws/agent/?ticket={ticket}",
                                             headers=[(b"host", b"localhost"), LOCAL])
        assert (await communicator.connect(timeout=10))[0]
        assert (await communicator.receive_json_from(timeout=5))["type"] == "welcome"
        await communicator.send_to(text_data="x" * 1000)  # at the limit: ignored, the socket stays
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.send_to(text_data="é" * 501)  # 1002 bytes (counted in bytes, not characters)
        closed = await communicator.receive_output(timeout=5)
        await communicator.disconnect()
        return closed

    assert async_to_sync(go)() == {"type": "websocket.close", "code": 1009}


# --- against a real daphne --------------------------------------------------------------------------------------


def _post_ticket(base, token) -> str:
    request = urllib.request.Request(base + "/api/v1/ws-tickets/", method="POST",
                                     headers={"Authorization": f"Bearer {token}"})
    return json.loads(urllib.request.urlopen(request, timeout=10).read())["ticket"]


def test_tickets_origins_and_the_size_limit_on_a_real_daphne(web):  # noqa: F811
    import websockets
    from django.conf import settings
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    ann = make_agent("ann")
    token = Token.objects.create(user=ann.user).key
    ws = web.replace("http", "ws", 1) + "/ws/agent/"

    async def refused(url, **kwargs):
        with pytest.raises(InvalidStatus) as caught:
            async with websockets.connect(url, **kwargs):
                pass
        return caught.value.response.status_code

    async def scenario():
        ticket = await sync_to_async(_post_ticket)(web, token)
        # No Origin (not a browser): accepted on the ticket alone.
        async with websockets.connect(f"{ws}?ticket={ticket}") as socket:
            welcome = json.loads(await socket.recv())
            assert welcome["type"] == "welcome"
            await socket.send("x" * (settings.WS_MAX_MESSAGE_BYTES - 10))  # under the limit: still open
            pong = await socket.ping()
            await asyncio.wait_for(pong, 5)
            await socket.send("x" * (settings.WS_MAX_MESSAGE_BYTES + 1))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        statuses = [
            await refused(f"{ws}?ticket={ticket}"),  # spent
            await refused(f"{ws}?token={token}"),  # the long-lived token
            await refused(f"{ws}?ticket={await sync_to_async(_post_ticket)(web, token)}",
                          origin="https://evil.example"),
        ]
        good = await sync_to_async(_post_ticket)(web, token)
        async with websockets.connect(f"{ws}?ticket={good}", origin=web) as socket:  # the page's own origin
            assert json.loads(await socket.recv())["type"] == "welcome"
        return statuses

    # A refusal before accept is a rejected handshake under daphne (ASGI: close before accept = HTTP 403).
    assert async_to_sync(scenario)() == [403, 403, 403]
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(urllib.request.Request(web + "/api/v1/ws-tickets/", method="POST"), timeout=10)
    assert caught.value.code == 401
