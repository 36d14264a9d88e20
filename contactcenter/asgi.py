"""ASGI entry point: HTTP (Django) and WebSocket (Channels) on one server.

HTTP goes through Django's WSGI handler, run in a thread pool, rather than
through Django's ASGI handler. Our views are synchronous, and under the ASGI
handler every synchronous middleware step and the view each hop to a thread
and back: the intake benchmark measured that at about 6 ms of CPU per
request, more than the request's own work (docs/BENCHMARKS.md). Through the
WSGI handler a request makes one hop, and the pool lets requests of one
process wait on PostgreSQL side by side. WebSockets go to Channels as usual.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "contactcenter.settings")

import asyncio  # noqa: E402
import json  # noqa: E402
from tempfile import SpooledTemporaryFile  # noqa: E402

from asgiref.sync import sync_to_async  # noqa: E402
from asgiref.wsgi import WsgiToAsgi, WsgiToAsgiInstance  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

django_wsgi_app = get_wsgi_application()  # sets Django up before the imports below

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from contactcenter.auth import OriginCheck, TicketAuthMiddleware  # noqa: E402
from contactcenter.routing import websocket_urlpatterns  # noqa: E402


class _PooledInstance(WsgiToAsgiInstance):
    # asgiref runs every request of the process on one shared thread
    # (thread_sensitive=True); Django's WSGI handler is thread-safe, so use
    # the event loop's thread pool instead.
    run_wsgi_app = sync_to_async(WsgiToAsgiInstance.__dict__["run_wsgi_app"].func, thread_sensitive=False)

    async def __call__(self, scope, receive, send):
        # As asgiref's, but the body is capped: the whole body is read before
        # Django sees it, so Django's own limits would come too late.
        self.scope = scope
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        with SpooledTemporaryFile(max_size=65536) as body:
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if limit is not None and size > limit:
                    await _too_large(send, limit)
                    return
                body.write(chunk)
                if not message.get("more_body"):
                    break
            body.seek(0)
            self.body_size = size
            self.sync_send = _thread_send(send, asyncio.get_running_loop())
            await self.run_wsgi_app(body)


    def build_environ(self, scope, body):
        # The length of what was read, also for a chunked request (which has no Content-Length header).
        environ = super().build_environ(scope, body)
        environ["CONTENT_LENGTH"] = str(self.body_size)
        return environ


SEND_TIMEOUT_SECONDS = 30


def _thread_send(send, loop: asyncio.AbstractEventLoop):
    """The request thread's way to hand the answer to the server's event loop.

    Not asgiref's AsyncToSync: when the server stops (SIGTERM) while a request thread is still answering,
    AsyncToSync waits for the stopped loop forever, the interpreter waits for that thread at exit, and the
    process never ends (seen in the tests: daphne processes alive long after SIGTERM, holding database
    connections). This gives up at once when the loop no longer runs, and after SEND_TIMEOUT_SECONDS at most.
    """

    def sync_send(message):
        if not loop.is_running():
            raise RuntimeError("the server is stopping: the answer cannot be sent")
        asyncio.run_coroutine_threadsafe(send(message), loop).result(timeout=SEND_TIMEOUT_SECONDS)

    return sync_send


async def _too_large(send, limit: int) -> None:
    payload = json.dumps({"detail": f"the request body is larger than the limit of {limit} bytes",
                          "code": "too_large", "field": "body"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


class DjangoHTTP(WsgiToAsgi):
    """Django's WSGI handler as an ASGI HTTP application (see the module's docstring)."""

    async def __call__(self, scope, receive, send):
        await _PooledInstance(self.wsgi_application, self.duplicate_header_limit)(scope, receive, send)


def _daphne_message_limit() -> None:
    """Make daphne refuse client messages over WS_MAX_MESSAGE_BYTES itself, closing with 1009 (message too big).

    The consumers check the size too (contactcenter.realtime.StreamConsumer.receive), but only once the
    server has buffered the whole message, and daphne refuses an application's close with 1009 (autobahn's
    sendClose takes 1000 and 3000-4999 only). The server's own limit is the right place: it stops reading
    there. Two of daphne's defaults stand in the way, and both are fixed here because daphne imports this
    module before it builds its server:
    - the limit is a command-line option (--websocket-max-message-size, 1 MiB by default): the setting caps
      whatever the command line says, so one setting governs every way the web process is started;
    - autobahn's servers drop the TCP connection on a protocol failure ("failByDrop"), so the client would
      see 1006 (abnormal closure) instead of 1009: daphne's socket factory closes with a close frame instead.
    tests/test_sockets_trust.py checks both against a real daphne.
    """
    try:
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketFactory
    except ImportError:  # another ASGI server: the consumers' check applies
        return
    if getattr(Server.__init__, "limited_by_settings", False):
        return
    server_init, set_options = Server.__init__, WebSocketFactory.setProtocolOptions

    def __init__(self, *args, **kwargs):
        limit = settings.WS_MAX_MESSAGE_BYTES
        for name in ("websocket_max_message_size", "websocket_max_frame_size"):
            kwargs[name] = min(kwargs.get(name) or limit, limit)  # 0 (or absent) would mean "no limit"
        server_init(self, *args, **kwargs)

    def setProtocolOptions(self, *args, **options):
        options.setdefault("failByDrop", False)
        set_options(self, *args, **options)

    __init__.limited_by_settings = True
    Server.__init__ = __init__
    WebSocketFactory.setProtocolOptions = setProtocolOptions


_daphne_message_limit()

application = ProtocolTypeRouter(
    {
        "http": DjangoHTTP(django_wsgi_app),
        # Origin first (a foreign page's handshake never spends a ticket), then the ticket (README,
        # "Real-time contract"); the session cookie is not read on sockets.
        "websocket": OriginCheck(TicketAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
