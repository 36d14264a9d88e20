"""Bounded input and rate limits: NUL characters, JSON depth, body size, page size, throttles, sign-in lockout.

Against the real PostgreSQL and Redis. Each refusal is a JSON `{"detail", "code", "field"}` (or `scope`) body.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import RequestDataTooBig
from django.test import Client
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.test import APIClient, APIRequestFactory, force_authenticate

from contactcenter import parsers, throttling
from contactcenter.pagination import CappedCursorPagination
from interactions import webhooks
from quality.models import Scorecard
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)

FORM = {"sections": [{"name": "Opening", "weight": 100, "criteria": [{"key": "greeted", "type": "yes_no"}]}]}


def refused(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == code and body["detail"], body
    if field is not None:
        assert body["field"] == field, body
    return body


# --- NUL characters --------------------------------------------------------------------------------------------


def test_a_nul_in_a_json_value_is_400_naming_its_path_not_a_500(staff_api):
    # Before the parser refused them, this scorecard's NUL reached PostgreSQL's jsonb and was a 500.
    form = {"sections": [{"name": "Open\u0000ing", "weight": 100, "criteria": [{"key": "greeted", "type": "yes_no"}]}]}
    response = staff_api.post("/api/v1/scorecards/", {"name": "Quality", "form": form}, format="json")
    refused(response, 400, "nul_character", "form.sections[0].name")
    assert not Scorecard.objects.filter(name="Quality").exists()
    assert staff_api.post("/api/v1/scorecards/", {"name": "Quality", "form": FORM}, format="json").status_code == 201


def test_a_nul_in_a_json_key_is_400_naming_it(staff_api):
    form = {"sections": [{"name": "Opening", "weight": 100, "crit\u0000": 1}]}
    response = staff_api.post("/api/v1/scorecards/", {"name": "Quality", "form": form}, format="json")
    refused(response, 400, "nul_character", "form.sections[0].crit\\u0000")
    top = staff_api.post("/api/v1/customers/", {"display_name": "Ada", "\u0000": "x"}, format="json")
    refused(top, 400, "nul_character", "\\u0000")


def test_a_raw_nul_byte_in_the_body_is_a_parse_error(staff_api):
    response = staff_api.post("/api/v1/customers/", b'{"display_name": "A\x00b"}', content_type="application/json")
    refused(response, 400, "parse_error", "body")


def test_a_nul_in_the_query_string_or_path_is_400_naming_the_parameter(staff_api):
    # Each of these was a 500: the value went straight into a query filter.
    for name in ("queue", "channel", "status"):
        refused(staff_api.get(f"/api/v1/interactions/?{name}=a%00b"), 400, "nul_character", name)
    refused(staff_api.get("/api/v1/interactions/?ok=1&a%00=b"), 400, "nul_character", "a\\u0000")
    refused(staff_api.get("/api/v1/agents/ann%00/"), 400, "nul_character", "path")
    assert staff_api.get("/api/v1/interactions/?queue=a%01b").status_code == 200  # other controls are fine here


def test_safe_json_loads_detects_the_encoding_and_keeps_value_errors_for_malformed_json():
    assert parsers.safe_json_loads('{"a": ["ü"]}'.encode("utf-16")) == {"a": ["ü"]}
    with pytest.raises(ValueError):
        parsers.safe_json_loads(b'{"a": ')
    with pytest.raises(ValueError):
        parsers.safe_json_loads(b'{"a": NaN}')
    with pytest.raises(parsers.InputRefused) as nul:
        parsers.safe_json_loads(b'{"from": {"value": "x\\u0000"}}')
    assert nul.value.body["field"] == "from.value" and not isinstance(nul.value, ValueError)
    assert parsers.safe_json_loads(b'"\\\\u0000"') == "\\u0000"  # an escaped backslash, not a NUL


def test_a_signed_webhook_with_a_nul_is_400_naming_the_field(settings):
    settings.WEBHOOK_SECRETS = {"acme": "s3cret"}
    payload = {"provider_message_id": uuid.uuid4().hex, "from": {"kind": "phone", "value": "+1 415\u0000 555"},
               "body": "hi"}
    raw = json.dumps(payload).encode()
    ts = str(int(time.time()))
    response = APIClient().post("/api/v1/webhooks/sms/acme/", data=raw, content_type="application/json",
                                HTTP_X_TIMESTAMP=ts, HTTP_X_SIGNATURE=webhooks.sign("s3cret", ts, raw))
    refused(response, 400, "nul_character", "from.value")


# --- depth -----------------------------------------------------------------------------------------------------


def nested(levels: int) -> bytes:
    return b'{"display_name": ' + b"[" * (levels - 1) + b"1" + b"]" * (levels - 1) + b"}"


def test_json_nested_deeper_than_the_setting_is_400_before_it_is_decoded(staff_api, settings):
    settings.API_MAX_JSON_DEPTH = 6
    at_limit = staff_api.post("/api/v1/customers/", nested(6), content_type="application/json")
    assert at_limit.status_code == 400 and at_limit.json().get("code") != "too_deep"  # a serializer's 400
    refused(staff_api.post("/api/v1/customers/", nested(7), content_type="application/json"), 400, "too_deep", "body")
    # Brackets inside strings are text, not nesting.
    text = json.dumps({"display_name": "[{" * 50, "email": "x@example.com"})
    assert staff_api.post("/api/v1/customers/", text, content_type="application/json").status_code == 201


def test_a_hundred_thousand_levels_are_a_400_not_a_recursion_error(staff_api):
    body = b"[" * 100_000 + b"]" * 100_000
    refused(staff_api.post("/api/v1/customers/", body, content_type="application/json"), 400, "too_deep", "body")
    unbalanced = b'{"a": ' + b"[" * 100_000
    refused(staff_api.post("/api/v1/customers/", unbalanced, content_type="application/json"), 400, "too_deep")


def test_the_depth_check_is_exact():
    parsers.check_depth('{"a": [[1]], "b": "]]]]"}', limit=3)
    with pytest.raises(parsers.InputRefused):
        parsers.check_depth('{"a": [[[1]]]}', limit=3)
    parsers.check_depth('[[[]], [[]], [[]], "\\"[[[[["]', limit=3)  # an escaped quote does not end a string


# --- body size -------------------------------------------------------------------------------------------------


def asgi_post(path: str, body: bytes, headers: list) -> tuple[int, bytes]:
    from asgiref.sync import async_to_sync
    from asgiref.testing import ApplicationCommunicator

    from contactcenter.asgi import application

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"), *headers],
             "client": ("127.0.0.1", 5000), "server": ("testserver", 80)}

    async def run():
        app = ApplicationCommunicator(application, scope)
        await app.send_input({"type": "http.request", "body": body, "more_body": False})
        start = await app.receive_output(10)
        content = b""
        while True:
            message = await app.receive_output(10)
            content += message.get("body", b"")
            if not message.get("more_body"):
                return start["status"], content

    return async_to_sync(run)()


def test_a_json_body_over_the_limit_is_a_json_413_on_both_paths(staff_api, staff, settings):
    from rest_framework.authtoken.models import Token

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    big = json.dumps({"display_name": "A" * 3000, "email": "big@example.com"}).encode()
    # WSGI (Django's test client, gunicorn-style servers): answered before the body is read.
    body = refused(staff_api.post("/api/v1/customers/", big, content_type="application/json"), 413, "too_large", "body")
    assert "2000 bytes" in body["detail"]
    # ASGI (daphne): contactcenter/asgi.py refuses it while reading, with the same body.
    token = Token.objects.get_or_create(user=staff)[0].key
    status, content = asgi_post("/api/v1/customers/", big, [(b"authorization", f"Bearer {token}".encode())])
    assert status == 413 and json.loads(content) == body
    small = json.dumps({"display_name": "A" * 100, "email": "small@example.com"}).encode()
    assert staff_api.post("/api/v1/customers/", small, content_type="application/json").status_code == 201


def test_drf_itself_applies_the_size_limit_to_json(staff, settings):
    # DRF >= 3.17.2 reads JSON through request.body, which enforces DATA_UPLOAD_MAX_MEMORY_SIZE; without our
    # middleware the error reaches Django as RequestDataTooBig (an HTML 400), hence BoundedInputMiddleware.
    from customers.api.views import CustomerViewSet

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    request = APIRequestFactory().post("/api/v1/customers/", {"display_name": "A" * 200}, format="json")
    request.user = staff
    drf_request = Request(request, parsers=[parsers.JSONParser()])
    with pytest.raises(RequestDataTooBig):
        drf_request.data  # noqa: B018
    request = APIRequestFactory().post("/api/v1/customers/", {"display_name": "A" * 200}, format="json")
    force_authenticate(request, user=staff)
    with pytest.raises(RequestDataTooBig):  # through a view without our middleware: not an answer, an error
        CustomerViewSet.as_view({"post": "create"})(request)


# --- page size -------------------------------------------------------------------------------------------------


class ByUsername(CappedCursorPagination):
    ordering = "username"
    page_size = 2


def page(query: str) -> int:
    request = Request(APIRequestFactory().get(f"/x/?{query}"))
    return len(ByUsername().paginate_queryset(get_user_model().objects.all(), request))


def test_the_page_size_is_the_client_s_choice_up_to_the_ceiling(settings):
    for n in range(8):
        get_user_model().objects.create_user(username=f"u{n}")
    settings.API_MAX_PAGE_SIZE = 5
    assert api_settings.DEFAULT_PAGINATION_CLASS is CappedCursorPagination
    assert page("page_size=3") == 3
    assert page("page_size=1000") == 5
    assert page("") == page("page_size=") == 2  # none asked for: the class's page size
    for bad in ("0", "-1", "abc", "2.5"):
        with pytest.raises(parsers.InputRefused) as error:
            page(f"page_size={bad}")
        assert error.value.body["field"] == "page_size"


# --- rate limits -----------------------------------------------------------------------------------------------


@pytest.fixture
def rates(settings):
    """Set some scopes' rates for this test. Per day, so a test never straddles a window's edge in practice."""

    def set_rates(**scopes):
        merged = dict(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **scopes)
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": merged}

    return set_rates


def a_fresh_ip() -> str:
    # Counters live in Redis for the whole run: each test counts from an address of its own.
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"


def test_a_user_over_their_rate_gets_429_with_retry_after(user, staff, rates):
    rates(user="3/day")
    ip = a_fresh_ip()
    api = client_for(user)
    assert [api.get("/api/v1/promises/", REMOTE_ADDR=ip).status_code for _ in range(3)] == [200] * 3
    over = api.get("/api/v1/promises/", REMOTE_ADDR=ip)
    body = refused(over, 429, "throttled")
    assert body["scope"] == "user" and 0 < int(over["Retry-After"]) <= 86400
    # Someone else from the same address is not held back by this user's count.
    assert client_for(staff).get("/api/v1/promises/", REMOTE_ADDR=ip).status_code == 200


def test_refusals_before_the_view_count_against_the_rate_too(user, rates):
    """A 404 for an id outside the caller's scope, or a 403 for their role, is decided before DRF runs its
    throttles: probing ids must still hit the limit (and then gets 429, not another answer about the id)."""
    rates(user="3/day")
    ip = a_fresh_ip()
    api = client_for(user)
    answers = [api.get(f"/api/v1/customers/{uuid.uuid4()}/", REMOTE_ADDR=ip).status_code for _ in range(2)]
    answers.append(api.get("/api/v1/events/", REMOTE_ADDR=ip).status_code)  # admins only
    assert answers == [404, 404, 403]
    over = api.get(f"/api/v1/customers/{uuid.uuid4()}/", REMOTE_ADDR=ip)
    assert refused(over, 429, "throttled")["scope"] == "user"


def test_all_users_of_one_ip_share_the_ip_rate(user, staff, rates):
    rates(ip="4/day")
    ip = a_fresh_ip()
    first, second = client_for(user), client_for(staff)
    assert [c.get("/api/v1/promises/", REMOTE_ADDR=ip).status_code for c in (first, second, first, second)] == [200] * 4
    assert refused(second.get("/api/v1/promises/", REMOTE_ADDR=ip), 429, "throttled")["scope"] == "ip"
    assert second.get("/api/v1/promises/", REMOTE_ADDR=a_fresh_ip()).status_code == 200


def test_anonymous_callers_are_counted_by_ip_before_their_401(rates):
    rates(anon="2/day")
    ip = a_fresh_ip()
    anonymous = APIClient()
    assert [anonymous.get("/api/v1/customers/", REMOTE_ADDR=ip).status_code for _ in range(2)] == [401, 401]
    over = anonymous.get("/api/v1/customers/", REMOTE_ADDR=ip)
    assert refused(over, 429, "throttled")["scope"] == "anon" and int(over["Retry-After"]) > 0
    assert anonymous.get("/api/v1/customers/", REMOTE_ADDR=a_fresh_ip()).status_code == 401


def test_x_forwarded_for_is_believed_only_from_trusted_proxies(rates, settings):
    rates(anon="1/day")
    spoofing = APIClient()
    ip = a_fresh_ip()
    assert spoofing.get("/api/v1/customers/", REMOTE_ADDR=ip, HTTP_X_FORWARDED_FOR=a_fresh_ip()).status_code == 401
    # A new X-Forwarded-For per request does not make a new caller...
    assert spoofing.get("/api/v1/customers/", REMOTE_ADDR=ip, HTTP_X_FORWARDED_FOR=a_fresh_ip()).status_code == 429
    # ...unless we run behind that many proxies of our own: then the address they saw is the caller.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    assert spoofing.get("/api/v1/customers/", REMOTE_ADDR=ip, HTTP_X_FORWARDED_FOR=a_fresh_ip()).status_code == 401


def test_webhooks_have_their_own_rate(rates, settings):
    rates(webhook="2/day", anon="1/day")
    settings.WEBHOOK_SECRETS = {"acme": "s3cret"}
    ip = a_fresh_ip()
    unsigned = APIClient()
    # Two deliveries pass the rate (and are refused by the signature check); the anon rate does not apply.
    assert [unsigned.post("/api/v1/webhooks/sms/acme/", {}, format="json", REMOTE_ADDR=ip).status_code
            for _ in range(2)] == [401, 401]
    over = unsigned.post("/api/v1/webhooks/sms/acme/", {}, format="json", REMOTE_ADDR=ip)
    assert refused(over, 429, "throttled")["scope"] == "webhook"


def test_an_unreachable_redis_lets_requests_through_with_a_warning(user, rates, settings, caplog):
    rates(user="1/day")
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
                                   "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}}
    throttling.reset_fail_open()
    api = client_for(user)
    try:
        with caplog.at_level(logging.WARNING, logger="contactcenter.throttling"):
            assert [api.get("/api/v1/promises/").status_code for _ in range(3)] == [200, 200, 200]
        warnings = [r for r in caplog.records if r.name == "contactcenter.throttling"]
        assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()  # once, not per request
    finally:
        throttling.reset_fail_open()


def test_rates_parse():
    assert throttling.parse_rate("600/min") == (600, 60)
    assert throttling.parse_rate("5/10s") == (5, 10)
    assert throttling.parse_rate("1000/hour") == (1000, 3600)
    with pytest.raises(ValueError):
        throttling.parse_rate("lots")


# --- sign-in lockout -------------------------------------------------------------------------------------------


def sign_in(path: str, username: str, password: str, ip: str = "10.0.0.1"):
    return Client().post(path, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_failed_sign_ins_lock_the_user_name_from_that_ip_for_a_while(settings):
    settings.AXES_FAILURE_LIMIT = 3
    get_user_model().objects.create_user(username="ann", password="right-pw", is_staff=True)
    get_user_model().objects.create_user(username="bob", password="bob-pw")
    for _ in range(2):
        assert sign_in("/accounts/login/", "ann", "wrong").status_code == 200  # the form again, with its error
    locked = sign_in("/accounts/login/", "ann", "wrong")
    assert locked.status_code == 429 and b"Too many failed sign-ins" in locked.content
    # Locked even with the right password, and on the admin's sign-in page too.
    assert sign_in("/accounts/login/", "ann", "right-pw").status_code == 429
    assert sign_in("/admin/login/", "ann", "right-pw").status_code == 429
    # Only that user name from that address: another user, or ann from elsewhere, may sign in.
    assert sign_in("/accounts/login/", "bob", "bob-pw").status_code == 302
    assert sign_in("/accounts/login/", "ann", "right-pw", ip="10.0.0.2").status_code == 302


def test_the_lockout_ends_after_the_cool_off(settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = 1 / 3600  # one second
    get_user_model().objects.create_user(username="ann", password="right-pw")
    for _ in range(2):
        sign_in("/accounts/login/", "ann", "wrong")
    assert sign_in("/accounts/login/", "ann", "right-pw").status_code == 429
    time.sleep(1.2)
    assert sign_in("/accounts/login/", "ann", "right-pw").status_code == 302
