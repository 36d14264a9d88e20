"""The platform around the apps: probes, schema, WebSocket auth, deploy checks, the catalog."""

import json
import os
import subprocess
import sys
import uuid

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from contactcenter.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def test_healthz_answers_without_authentication():
    response = APIClient().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_reports_every_dependency_and_the_backlog(topic):
    response = APIClient().get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert {k: v["ok"] for k, v in body["checks"].items()} == {"database": True, "redis": True, "kafka": True}
    assert body["outbox"]["count"] == 0
    assert isinstance(body["projections"], list)


def test_readyz_says_not_ready_when_the_database_is_unreachable(settings):
    env = dict(os.environ, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none", DJANGO_SETTINGS_MODULE="contactcenter.test_settings")
    code = (
        "import django; django.setup();"
        "from django.test import Client; r = Client().get('/readyz');"
        "import json; b = json.loads(r.content); print(r.status_code, b['checks']['database']['ok'])"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.split() == ["503", "False"], out.stderr


def test_readyz_with_kafka_away_reports_it_but_stays_ready(settings):
    """The API keeps accepting while Kafka is down (the outbox holds the events), so the probe says ready."""
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", DJANGO_SETTINGS_MODULE="contactcenter.test_settings")
    db = settings.DATABASES["default"]
    env["DATABASE_URL"] = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    code = (
        "import django; django.setup();"
        "from django.test import Client; r = Client().get('/readyz');"
        "import json; b = json.loads(r.content); print(r.status_code, b['checks']['kafka']['ok'], b['status'])"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.split() == ["200", "False", "ready"], out.stderr[-2000:]


def test_openapi_schema_and_offline_swagger_ui(staff):
    client = APIClient()
    client.force_login(staff)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/v1/customers/" in schema.json()["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html and "cdn." not in html
    asset = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200


async def _ws_connect(path, user=None):
    """A socket with a fresh ticket of `user` (none without); its welcome is read here."""
    from asgiref.sync import sync_to_async

    from contactcenter.tickets import ticket_issue

    if user is not None:
        ticket = await sync_to_async(lambda: ticket_issue(user)[0])()
        path += f"?ticket={ticket}"
    communicator = WebsocketCommunicator(application, path, headers=[(b"host", b"localhost"), (b"origin", b"http://localhost")])
    connected, code = await communicator.connect(timeout=10)
    if connected:
        assert (await communicator.receive_json_from(timeout=5))["type"] == "welcome"
    return communicator, connected, code


def test_websocket_refuses_a_connection_without_a_token():
    from asgiref.sync import async_to_sync

    async def refused():
        communicator, connected, code = await _ws_connect("/ws/customers/00000000-0000-0000-0000-000000000001/timeline/")
        # The consumer runs until the socket is gone: tell it, or its channel-layer receive outlives the test.
        await communicator.disconnect()
        return connected, code

    connected, code = async_to_sync(refused)()
    assert not connected and code == 4401


def test_websocket_with_a_ticket_receives_timeline_pushes(staff):
    from asgiref.sync import async_to_sync

    from customers.realtime import notify_timeline
    from events.store import Envelope

    customer = "00000000-0000-0000-0000-000000000002"

    async def scenario():
        communicator, connected, _ = await _ws_connect(f"/ws/customers/{customer}/timeline/", staff)
        assert connected
        from asgiref.sync import sync_to_async

        import datetime as dt
        import uuid

        env = Envelope(7, uuid.uuid4(), "customers.CustomerRegistered", 2, "customer", uuid.UUID(customer), 1,
                       uuid.UUID(customer), dt.datetime.now(dt.UTC), dt.datetime.now(dt.UTC), None, None, {}, "", {})
        await sync_to_async(notify_timeline)([env])
        message = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return message

    message = async_to_sync(scenario)()
    assert message["type"] == "timeline.changed" and message["position"] == 7 and message["customer_id"] == customer


def test_a_merged_customers_events_are_pushed_to_the_targets_timeline(staff):
    from asgiref.sync import async_to_sync, sync_to_async

    from customers.models import TimelineMerge
    from customers.realtime import notify_timeline
    from events.store import Envelope

    import datetime as dt

    source, target = uuid.uuid4(), uuid.uuid4()
    TimelineMerge.objects.create(source_id=source, target_id=target)

    async def scenario():
        on_target, connected, _ = await _ws_connect(f"/ws/customers/{target}/timeline/", staff)
        on_source, connected_too, _ = await _ws_connect(f"/ws/customers/{source}/timeline/", staff)
        assert connected and connected_too
        env = Envelope(9, uuid.uuid4(), "interactions.MessageRecorded", 2, "interaction", uuid.uuid4(), 3,
                       source, dt.datetime.now(dt.UTC), dt.datetime.now(dt.UTC), None, None, {}, "chat", {})
        await sync_to_async(notify_timeline)([env])
        message = await on_target.receive_json_from(timeout=5)
        nothing = await on_source.receive_nothing(timeout=0.5)
        await on_target.disconnect()
        await on_source.disconnect()
        return message, nothing

    message, nothing = async_to_sync(scenario)()
    assert message["customer_id"] == str(target) and message["position"] == 9 and nothing


def test_check_deploy_passes_with_production_values():
    env = dict(
        os.environ,
        DEBUG="false",
        SECRET_KEY="x7!Qz-production-like-secret-key-with-enough-entropy-0123456789abcdef",
        ALLOWED_HOSTS="cc.example.com",
        DJANGO_SETTINGS_MODULE="contactcenter.settings",
    )
    out = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env=env,
                         cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_default_secret_key_is_refused_by_check_deploy():
    env = dict(os.environ, DEBUG="false", ALLOWED_HOSTS="cc.example.com", DJANGO_SETTINGS_MODULE="contactcenter.settings")
    env.pop("SECRET_KEY", None)
    out = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env=env,
                         cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "SECRET_KEY" in out.stdout + out.stderr


def test_event_catalog_in_docs_is_up_to_date():
    out = subprocess.run([sys.executable, "manage.py", "event_catalog", "--check"], cwd=settings.BASE_DIR,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def _asgi_http(path: str, *, method: str = "GET", headers=(), chunks=(b"",)):
    """One HTTP request through the ASGI application daphne serves: (status, headers, body)."""
    from asgiref.sync import async_to_sync
    from asgiref.testing import ApplicationCommunicator

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), *headers], "client": ("127.0.0.1", 5000),
             "server": ("testserver", 80)}

    async def run():
        app = ApplicationCommunicator(application, scope)
        for n, chunk in enumerate(chunks):
            await app.send_input({"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1})
        start = await app.receive_output(10)
        body = b""
        while True:
            message = await app.receive_output(10)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        return start["status"], dict(start["headers"]), body

    return async_to_sync(run)()


def test_http_through_the_asgi_application_reaches_django_with_auth(user):
    # HTTP runs through Django's WSGI handler in a thread pool (contactcenter/asgi.py):
    # the answer, the authentication and the body must all get through.
    status, _, _ = _asgi_http("/api/v1/customers/")
    assert status == 401
    token = Token.objects.create(user=user).key
    status, headers, body = _asgi_http("/api/v1/customers/", headers=[(b"authorization", f"Bearer {token}".encode())])
    assert status == 200 and headers[b"content-type"] == b"application/json" and b'"results"' in body
    raw = b'{"display_name": "Ada \xf0\x9f\x91\x8b", "email": "ada@example.com"}'
    status, _, body = _asgi_http("/api/v1/customers/", method="POST", chunks=(raw[:10], raw[10:]), headers=[
        (b"authorization", f"Bearer {token}".encode()), (b"content-type", b"application/json")])
    assert status == 201, body
    from events import store

    registered = store.read_stream(uuid.UUID(json.loads(body)["id"]))[0]
    assert registered.data["display_name"] == "Ada 👋"  # the chunked body arrived whole and intact


def test_an_oversized_body_is_refused_before_django_reads_it(user):
    token = Token.objects.create(user=user).key
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    status, _, body = _asgi_http("/api/v1/customers/", method="POST", chunks=(b"x" * limit, b"y"), headers=[
        (b"authorization", f"Bearer {token}".encode()), (b"content-type", b"application/json")])
    assert status == 413 and f"{limit} bytes".encode() in body and b'"field": "body"' in body
