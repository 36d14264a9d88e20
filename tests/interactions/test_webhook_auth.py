"""Only authentic webhook traffic acts: the signature over the raw bytes first, a fresh timestamp, replays answered
as duplicates. Channel webhooks (POST /api/v1/webhooks/{channel}/{provider}/) and the survey webhook."""

import hmac
import json
import time
import uuid

import pytest
from rest_framework.test import APIClient

from events.models import Event
from interactions import webhooks
from interactions.models import Interaction, ProviderMessage
from quality.models import Survey
from tests.interactions.test_webhooks import PHONE, SECRET, call, msg_id, nothing_stored, send, sms
from tests.quality.test_surveys import desk, resolved  # noqa: F401  (desk is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def secrets(settings):
    settings.WEBHOOK_SECRETS = {"acme": SECRET}


def survey_post(raw: bytes, *, ts=None, signature=None, secret=SECRET):
    ts = str(int(time.time())) if ts is None else str(ts)
    return APIClient().post("/api/v1/surveys/webhook/acme/", raw, content_type="application/json",
                            HTTP_X_TIMESTAMP=ts, HTTP_X_SIGNATURE=signature or webhooks.sign(secret, ts, raw))


def replay(path: str, raw: bytes, ts: str, signature: str):
    """The very same signed request again: same bytes, same timestamp, same signature (a captured copy)."""
    return APIClient().post(path, raw, content_type="application/json", HTTP_X_TIMESTAMP=ts,
                            HTTP_X_SIGNATURE=signature)


def test_the_tolerance_is_a_setting_of_300_seconds_by_default():
    from django.conf import settings

    assert settings.WEBHOOK_TIMESTAMP_TOLERANCE == 300
    assert webhooks.tolerance() == 300


# --- the signature comes before anything is parsed ---------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe\x00garbage", b"[1, 2, 3]", b""])
def test_a_bad_signature_on_an_unparseable_body_is_401_not_400(raw):
    response = send("sms", raw=raw, signature="0" * 64)
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "bad_signature"
    # The same body correctly signed is parsed, and only then refused for what it is.
    signed = send("sms", raw=raw)
    assert signed.status_code == 400 and signed.json()["field"] == "payload"
    assert nothing_stored()


def test_the_survey_webhook_checks_the_signature_before_parsing_too():
    bad = survey_post(b"{not json", signature="f" * 64)
    assert bad.status_code == 401 and bad.json()["code"] == "bad_signature"
    unsigned = APIClient().post("/api/v1/surveys/webhook/acme/", b"{not json", content_type="application/json")
    assert unsigned.status_code == 401
    signed = survey_post(b"{not json")
    assert signed.status_code == 400 and signed.json()["field"] == "payload"


@pytest.mark.parametrize("signature", ["é" * 64, "ﬀ" * 10, "zz", " " * 64])
def test_a_signature_header_with_odd_characters_is_401_not_a_server_error(signature):
    response = send("sms", sms(), signature=signature)
    assert response.status_code == 401, response.content
    assert nothing_stored()


@pytest.mark.parametrize("ts", ["1_700_000_000", "+{now}", " {now}", "{now}.0", "１７００００００００", "-{now}",
                                "9" * 5000])
def test_a_timestamp_that_is_not_plain_unix_seconds_is_401_even_when_signed(ts):
    ts = ts.format(now=int(time.time()))
    response = send("sms", sms(), ts=ts)  # signed over exactly this X-Timestamp
    assert response.status_code == 401, response.content
    assert nothing_stored()


@pytest.mark.parametrize("age,status", [(299, 201), (-299, 201), (302, 401), (-302, 401), (86_400, 401)])
def test_only_timestamps_within_the_window_either_side_are_accepted(age, status):
    assert send("sms", sms(), age=age).status_code == status


def test_stale_or_future_survey_answers_are_401_and_count_nothing(desk):  # noqa: F811
    survey = Survey.objects.get(interaction_id=resolved().id)
    raw = json.dumps({"survey_id": str(survey.id), "csat": 5, "nps": 9}).encode()
    for age in (400, -400):
        response = survey_post(raw, ts=int(time.time()) - age)
        assert response.status_code == 401, response.content
    assert not Event.objects.filter(event_type="quality.SurveyAnswered").exists()
    assert survey_post(raw).status_code == 201


def test_the_comparison_is_constant_time_over_bytes(monkeypatch):
    seen = []
    real = hmac.compare_digest

    def spy(a, b):
        seen.append((type(a), type(b)))
        return real(a, b)

    monkeypatch.setattr(webhooks.hmac, "compare_digest", spy)
    assert send("sms", sms(), signature="a" * 64).status_code == 401
    assert send("sms", sms()).status_code == 201
    assert seen == [(bytes, bytes), (bytes, bytes)]


# --- replays inside the window change nothing ----------------------------------------------------------------


def _signed(payload: dict) -> tuple[bytes, str, str]:
    raw = json.dumps(payload, ensure_ascii=False).encode()
    ts = str(int(time.time()))
    return raw, ts, webhooks.sign(SECRET, ts, raw)


def _state():
    return (Event.objects.count(), ProviderMessage.objects.count(), Interaction.objects.count(),
            sorted(Interaction.objects.values_list("status", "version")))


CASES = {
    "sms": lambda: sms(),
    "chat": lambda: {"provider_message_id": msg_id(), "conversation_id": "s-r", "event": "start",
                     "from": {"kind": "email", "value": "ada@example.com"}, "body": "hello"},
    "email": lambda: {"provider_message_id": msg_id(), "from": {"kind": "email", "value": "ada@example.com"},
                      "subject": "Hi", "body": "A question"},
    "social": lambda: {"provider_message_id": msg_id(), "kind": "dm", "body": "hey",
                       "from": {"kind": "social", "value": "@ada", "provider": "instagram"}},
    "voice": lambda: call("ringing", "call-r", agent_id="agent1", **{"from": {"kind": "phone", "value": PHONE}}),
}


@pytest.mark.parametrize("channel", list(CASES))
def test_a_replayed_signed_request_answers_200_duplicate_and_changes_nothing(channel):
    path = f"/api/v1/webhooks/{channel}/acme/"
    raw, ts, signature = _signed(CASES[channel]())
    first = replay(path, raw, ts, signature)
    assert first.status_code == 201, first.content
    after_first = _state()
    again = replay(path, raw, ts, signature)
    assert again.status_code == 200, again.content
    body = again.json()
    assert body["duplicate"] is True and body["positions"] == first.json()["positions"]
    assert body["interaction"]["id"] == first.json()["interaction"]["id"]
    assert _state() == after_first


def test_replayed_call_events_do_not_move_the_call_twice():
    """Each call event (answered, held, resumed, ended) replayed: one effect; the call's later state stands."""
    ring = call("ringing", "call-x", agent_id="agent1", **{"from": {"kind": "phone", "value": PHONE}})
    assert send("voice", ring).status_code == 201
    path = "/api/v1/webhooks/voice/acme/"
    sent = []
    for event in (call("answered", "call-x"), call("held", "call-x"), call("resumed", "call-x")):
        raw, ts, signature = _signed(event)
        assert replay(path, raw, ts, signature).status_code == 201
        sent.append((raw, ts, signature))
    before = _state()
    # The "held" again, after "resumed": as a new event it would be legal (put on hold a second time); as a
    # replay of a delivery already acted on, it must change nothing.
    for raw, ts, signature in sent:
        again = replay(path, raw, ts, signature)
        assert again.status_code == 200 and again.json()["duplicate"] is True
    assert _state() == before
    assert Interaction.objects.get().status == "active"
    raw, ts, signature = _signed(call("ended", "call-x", reason="resolved", duration_seconds=10))
    assert replay(path, raw, ts, signature).status_code == 201
    ended = _state()
    assert replay(path, raw, ts, signature).status_code == 200 and _state() == ended


def test_a_provider_retry_signed_anew_is_still_the_same_delivery():
    payload = sms()
    assert send("sms", payload).status_code == 201
    state = _state()
    retry = send("sms", payload, ts=int(time.time()) + 5)  # new timestamp, new signature, same delivery id
    assert retry.status_code == 200 and retry.json()["duplicate"] is True
    assert _state() == state


def test_a_replayed_survey_answer_is_200_and_counted_once(desk):  # noqa: F811
    survey = Survey.objects.get(interaction_id=resolved().id)
    raw, ts, signature = _signed({"survey_id": str(survey.id), "csat": 4, "nps": 8})
    path = "/api/v1/surveys/webhook/acme/"
    assert replay(path, raw, ts, signature).status_code == 201
    events = Event.objects.count()
    for _ in range(2):
        again = replay(path, raw, ts, signature)
        assert again.status_code == 200 and again.json()["csat"] == 4
    assert Event.objects.count() == events
    assert Event.objects.filter(event_type="quality.SurveyAnswered").count() == 1
    survey.refresh_from_db()
    assert (survey.csat, survey.nps) == (4, 8)


def test_a_signed_request_for_another_provider_is_refused(settings):
    """A secret signs for its provider only: a request captured for acme and sent as another provider is 401."""
    other = str(uuid.uuid4())[:8]
    settings.WEBHOOK_SECRETS = {"acme": SECRET, other: "another-secret"}
    raw, ts, signature = _signed(sms())
    assert replay(f"/api/v1/webhooks/sms/{other}/", raw, ts, signature).status_code == 401
    assert nothing_stored()
