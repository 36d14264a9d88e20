"""Channel provider webhooks: signatures, idempotency, each channel's mapping onto the lifecycle, bad input."""

import json
import threading
import time
import uuid

import pytest
from django.db import connection
from rest_framework.test import APIClient

from customers.models import Customer
from events import store
from events.models import Event
from interactions import domain, webhooks
from interactions.models import Conversation, EmailMessage, Interaction, ProviderMessage

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "s3cret-acme"
PHONE = "+1 415 555 0123"


@pytest.fixture(autouse=True)
def secrets(settings):
    settings.WEBHOOK_SECRETS = {"acme": SECRET, "mailco": "s3cret-mail"}
    settings.WEBHOOK_TIMESTAMP_TOLERANCE = 300


def send(channel, payload=None, *, provider="acme", secret=SECRET, ts=None, age=0, raw=None, signature=None,
         headers=True):
    body = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
    ts = str(int(time.time()) - age) if ts is None else str(ts)
    extra = {}
    if headers:
        extra = {"HTTP_X_TIMESTAMP": ts, "HTTP_X_SIGNATURE": signature or webhooks.sign(secret, ts, body)}
    return APIClient().post(f"/api/v1/webhooks/{channel}/{provider}/", data=body, content_type="application/json",
                            **extra)


def ok(channel, payload, status=201, **kwargs):
    response = send(channel, payload, **kwargs)
    assert response.status_code == status, response.content
    return response.json()


def msg_id():
    return uuid.uuid4().hex


def sms(body="Hi 👋", **extra):
    return {"provider_message_id": msg_id(), "from": {"kind": "phone", "value": PHONE}, "body": body, **extra}


def call(event, call_id, **extra):
    return {"provider_message_id": msg_id(), "conversation_id": call_id, "event": event, **extra}


def types_of(interaction_id):
    """The interaction's own events (conversation intelligence adds its scores and flags on the same stream)."""
    return [e.event_type.split(".")[1] for e in store.read_stream(uuid.UUID(str(interaction_id)))
            if e.event_type.startswith("interactions.")]


def last_message(interaction_id) -> dict:
    return [e.data for e in store.read_stream(uuid.UUID(str(interaction_id)))
            if e.event_type == "interactions.MessageRecorded"][-1]


def nothing_stored():
    return (Event.objects.count(), Interaction.objects.count(), ProviderMessage.objects.count(),
            Customer.objects.count()) == (0, 0, 0, 0)


# --- signatures -------------------------------------------------------------


def test_a_signed_delivery_is_accepted():
    out = ok("sms", sms())
    assert out["customer_created"] is True and out["duplicate"] is False
    assert out["interaction"]["channel"] == "sms" and out["interaction"]["status"] == "queued"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"secret": "wrong"},
        {"age": 302},
        {"age": -302},
        {"ts": "yesterday"},
        {"headers": False},
        {"signature": "00" * 32},
    ],
    ids=["bad-secret", "stale", "future", "not-a-time", "missing", "bad-signature"],
)
def test_unsigned_wrongly_signed_or_stale_deliveries_are_401_and_store_nothing(kwargs):
    response = send("sms", sms(), **kwargs)
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "bad_signature"
    assert nothing_stored()


def test_the_signature_covers_the_raw_body():
    body = json.dumps(sms()).encode()
    ts = str(int(time.time()))
    signature = webhooks.sign(SECRET, ts, body)
    tampered = body.replace(b"Hi", b"Yo")
    assert send("sms", raw=tampered, ts=ts, signature=signature).status_code == 401
    assert nothing_stored()


def test_the_tolerance_is_configurable(settings):
    settings.WEBHOOK_TIMESTAMP_TOLERANCE = 10
    assert send("sms", sms(), age=60).status_code == 401
    settings.WEBHOOK_TIMESTAMP_TOLERANCE = 3600
    assert send("sms", sms(), age=60).status_code == 201


def test_secrets_come_from_the_environment_when_the_setting_is_absent(settings, monkeypatch):
    del settings.WEBHOOK_SECRETS
    monkeypatch.setenv("WEBHOOK_SECRETS", "envco=abc, other=def")
    assert webhooks.secrets() == {"envco": "abc", "other": "def"}
    assert send("sms", sms(), provider="envco", secret="abc").status_code == 201
    assert send("sms", sms(), provider="envco", secret=SECRET).status_code == 401


def test_an_unknown_provider_is_404_naming_provider():
    response = send("sms", sms(), provider="nobody")
    assert response.status_code == 404 and response.json()["field"] == "provider"
    assert nothing_stored()


# --- idempotency ------------------------------------------------------------


def test_a_repeated_delivery_returns_the_original_result_and_changes_nothing():
    payload = sms()
    first = ok("sms", payload)
    events = Event.objects.count()
    again = ok("sms", payload, status=200)
    assert again["duplicate"] is True
    assert again["positions"] == first["positions"] and again["interaction"]["id"] == first["interaction"]["id"]
    assert again["customer_created"] is True  # as it was the first time
    assert Event.objects.count() == events and ProviderMessage.objects.count() == 1


def test_racing_duplicates_store_once():
    payload = sms()
    barrier = threading.Barrier(6)
    codes = []

    def deliver():
        try:
            barrier.wait()
            codes.append(send("sms", payload).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] * 5 + [201]
    assert Interaction.objects.count() == 1 and ProviderMessage.objects.count() == 1
    assert types_of(Interaction.objects.get().id) == ["InteractionCreated", "InteractionQueued", "MessageRecorded"]


def test_racing_first_messages_of_one_conversation_open_it_once():
    barrier = threading.Barrier(4)
    codes = []

    def deliver(i):
        try:
            barrier.wait()
            codes.append(send("chat", {"provider_message_id": f"m{i}", "conversation_id": "sess-1",
                                       "from": {"kind": "email", "value": "ada@example.com"},
                                       "body": f"message {i}"}).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [201] * 4
    assert Interaction.objects.count() == 1 and Customer.objects.count() == 1
    assert types_of(Interaction.objects.get().id).count("MessageRecorded") == 4


# --- voice ------------------------------------------------------------------


def test_a_call_rings_at_an_agent_is_answered_held_transferred_and_ended_with_a_recording():
    caller = {"kind": "phone", "value": PHONE}
    it = ok("voice", call("ringing", "call-1", agent_id="agent1", queue="support", **{"from": caller}))["interaction"]
    assert (it["status"], it["agent_id"], it["queue"]) == ("offered", "agent1", "support")
    assert ok("voice", call("answered", "call-1"))["interaction"]["status"] == "active"
    assert ok("voice", call("held", "call-1"))["interaction"]["status"] == "held"
    assert ok("voice", call("resumed", "call-1"))["interaction"]["status"] == "active"
    moved = ok("voice", call("transferred", "call-1", to_agent_id="agent2", note="billing 💳"))["interaction"]
    assert (moved["status"], moved["agent_id"]) == ("offered", "agent2")
    ok("voice", call("answered", "call-1", agent_id="agent2"))
    done = ok("voice", call("ended", "call-1", reason="resolved", duration_seconds=95, recording_ref="rec/42",
                            recording_consent=True))["interaction"]
    assert done["status"] == "wrap_up"
    assert types_of(it["id"]) == ["InteractionCreated", "InteractionQueued", "InteractionOffered",
                                  "InteractionAccepted", "InteractionHeld", "InteractionResumed",
                                  "InteractionTransferred", "InteractionAccepted", "InteractionEnded",
                                  "RecordingAttached"]
    recording = store.read_stream(uuid.UUID(it["id"]))[-1]
    assert recording.data == {"recording_ref": "rec/42", "consent": "given"}
    from contactcenter.models import Served  # both agents who answered may read the call and its customer

    assert set(Served.objects.filter(interaction_id=it["id"]).values_list("agent_id", flat=True)) == {
        "agent1", "agent2"}
    assert recording.channel == "voice" and recording.actor == {"type": "provider", "id": "voice/acme",
                                                                "name": "acme"}


def test_a_call_the_provider_routed_itself_is_offered_and_accepted_on_answer():
    ok("voice", call("ringing", "c2", **{"from": {"kind": "phone", "value": PHONE}}))
    it = ok("voice", call("answered", "c2", agent_id="agent7"))["interaction"]
    assert (it["status"], it["agent_id"]) == ("active", "agent7")


def test_a_call_that_ends_while_ringing_is_abandoned():
    ok("voice", call("ringing", "c3", **{"from": {"kind": "phone", "value": PHONE}}))
    it = ok("voice", call("ended", "c3", reason="customer_hung_up", duration_seconds=12))["interaction"]
    assert it["status"] == "abandoned"


@pytest.mark.parametrize("event", ["answered", "held", "ended"])
def test_events_for_a_call_that_never_rang_are_409_and_store_nothing(event):
    response = send("voice", call(event, "ghost", agent_id="agent1", reason="resolved"))
    assert response.status_code == 409
    assert response.json()["code"] == "unknown_conversation" and "ringing" in response.json()["detail"]
    assert nothing_stored()


def test_out_of_order_call_events_are_409_and_store_nothing():
    it = ok("voice", call("ringing", "c4", agent_id="agent1", **{"from": {"kind": "phone", "value": PHONE}}))
    before = Event.objects.count(), ProviderMessage.objects.count()
    for late in (call("held", "c4"), call("ringing", "c4", **{"from": {"kind": "phone", "value": PHONE}})):
        response = send("voice", late)
        assert response.status_code == 409, response.content
    assert (Event.objects.count(), ProviderMessage.objects.count()) == before
    assert Interaction.objects.get(id=it["interaction"]["id"]).status == "offered"


def test_ringing_needs_a_caller():
    response = send("voice", call("ringing", "c5"))
    assert response.status_code == 400 and "from" in response.json()


# --- chat, sms, social --------------------------------------------------------


def test_a_chat_session_starts_exchanges_messages_and_ends():
    who = {"kind": "email", "value": "ada@example.com"}
    it = ok("chat", {"provider_message_id": msg_id(), "conversation_id": "s1", "event": "start", "from": who,
                     "queue": "sales"})["interaction"]
    assert (it["status"], it["queue"]) == ("queued", "sales")
    ok("chat", {"provider_message_id": msg_id(), "conversation_id": "s1", "body": "Grüße 🚀"})
    ok("chat", {"provider_message_id": msg_id(), "conversation_id": "s1", "body": "Hello!", "direction": "outbound"})
    ended = ok("chat", {"provider_message_id": msg_id(), "conversation_id": "s1", "event": "end"})["interaction"]
    assert ended["status"] == "abandoned"  # nobody accepted it
    bodies = [e.data["body"] for e in store.read_stream(uuid.UUID(it["id"]))
              if e.event_type == "interactions.MessageRecorded"]
    assert bodies == ["Grüße 🚀", "Hello!"]
    # After the end, a new message is a new interaction in the same case.
    again = ok("chat", {"provider_message_id": msg_id(), "conversation_id": "s1", "body": "one more thing",
                        "from": who})["interaction"]
    assert again["id"] != it["id"] and again["case_id"] == it["case_id"]
    assert Conversation.objects.get(conversation_id="s1").interaction_id == uuid.UUID(again["id"])


def test_ending_an_unknown_chat_is_409():
    response = send("chat", {"provider_message_id": msg_id(), "conversation_id": "nope", "event": "end"})
    assert response.status_code == 409 and nothing_stored()


def test_sms_both_ways_thread_by_number():
    first = ok("sms", sms("Where is my order?"))["interaction"]
    reply = ok("sms", sms("It ships today", direction="outbound"))["interaction"]
    assert reply["id"] == first["id"]
    messages = [e.data for e in store.read_stream(uuid.UUID(first["id"])) if e.event_type.endswith("MessageRecorded")]
    assert [(m["direction"], m["provider"]) for m in messages] == [("inbound", "acme"), ("outbound", "acme")]


def test_social_direct_messages_thread_and_mentions_stand_alone():
    who = {"kind": "social", "value": "@Ada_L", "provider": "instagram"}
    dm1 = ok("social", {"provider_message_id": msg_id(), "kind": "dm", "from": who, "body": "hi"})["interaction"]
    dm2 = ok("social", {"provider_message_id": msg_id(), "kind": "dm", "from": who, "body": "still there?"})
    m1 = ok("social", {"provider_message_id": msg_id(), "kind": "mention", "from": who, "body": "@brand 👎"})
    assert dm2["interaction"]["id"] == dm1["id"]
    assert m1["interaction"]["id"] != dm1["id"] and m1["interaction"]["customer_id"] == dm1["customer_id"]
    mention = last_message(m1["interaction"]["id"])
    assert (mention["kind"], mention["body"]) == ("mention", "@brand 👎")


def test_a_chat_then_a_call_from_the_same_number_share_the_customer():
    chat = ok("chat", {"provider_message_id": msg_id(), "conversation_id": "s9", "event": "start",
                       "from": {"kind": "phone", "value": "(415) 555-0123"}})
    voice = ok("voice", call("ringing", "c9", **{"from": {"kind": "phone", "value": "+14155550123"}}))
    assert chat["customer_created"] is True and voice["customer_created"] is False
    assert voice["interaction"]["customer_id"] == chat["interaction"]["customer_id"]
    assert Customer.objects.count() == 1


# --- email ------------------------------------------------------------------


def email(message_id, body="Hello", **extra):
    return {"provider_message_id": msg_id(), "message_id": message_id, "subject": "Invoice 2026-11",
            "from": {"kind": "email", "value": "Ada@Example.com"}, "to": ["support@center.example"],
            "body": body, **extra}


def test_email_replies_thread_by_in_reply_to_and_references():
    first = ok("email", email("<a1@mail.example>"), provider="mailco", secret="s3cret-mail")["interaction"]
    reply = ok("email", email("<a2@mail.example>", in_reply_to="<a1@mail.example>"), provider="mailco",
               secret="s3cret-mail")["interaction"]
    # References only (no In-Reply-To), as the header text with an unknown id in front.
    later = ok("email", email("<a3@mail.example>", references="<elsewhere@x> <a1@mail.example> <a2@mail.example>"),
               provider="mailco", secret="s3cret-mail")["interaction"]
    assert first["id"] == reply["id"] == later["id"]
    assert EmailMessage.objects.filter(interaction_id=first["id"]).count() == 3
    stream = store.read_stream(uuid.UUID(first["id"]))
    assert stream[0].data["subject"] == "Invoice 2026-11"
    message = last_message(first["id"])
    assert (message["sender"], message["recipients"]) == ("ada@example.com", ["support@center.example"])
    unrelated = ok("email", email("<b1@mail.example>", in_reply_to="<never-seen@x>"), provider="mailco",
                   secret="s3cret-mail")["interaction"]
    assert unrelated["id"] != first["id"] and unrelated["case_id"] != first["case_id"]


def test_a_reply_to_a_resolved_email_reopens_it(user):
    it = ok("email", email("<r1@x>"), provider="mailco", secret="s3cret-mail")["interaction"]
    from events.store import Metadata
    from interactions import services

    meta = Metadata()
    iid = uuid.UUID(it["id"])
    services.interaction_offer(interaction_id=iid, agent_id="agent1", meta=meta)
    services.interaction_accept(interaction_id=iid, agent_id="agent1", meta=meta)
    services.interaction_end(interaction_id=iid, reason="resolved", meta=meta)
    services.interaction_wrap_up(interaction_id=iid, disposition="answered", meta=meta)
    again = ok("email", email("<r2@x>", in_reply_to="<r1@x>"), provider="mailco", secret="s3cret-mail")
    assert again["interaction"]["id"] == it["id"] and again["interaction"]["status"] == "queued"
    assert types_of(iid)[-3:] == ["InteractionReopened", "InteractionQueued", "MessageRecorded"]


def test_threading_headers_cannot_graft_onto_another_customers_thread():
    ada = ok("email", email("<t1@x>"), provider="mailco", secret="s3cret-mail")["interaction"]
    eve = ok("email", {**email("<t2@x>", in_reply_to="<t1@x>"), "from": {"kind": "email", "value": "eve@evil.example"}},
             provider="mailco", secret="s3cret-mail")["interaction"]
    assert eve["id"] != ada["id"] and eve["customer_id"] != ada["customer_id"]


def test_an_html_email_is_kept_as_its_text_only():
    html = ("<html><head><style>p{color:red}</style><script>alert('x')</script></head><body>"
            "<p>Hello &amp; welcome 😀</p><img src=x onerror=alert(1)><div>Line <b>two</b><br>three</div>"
            "<!-- hidden --></body></html>")
    it = ok("email", {**email("<h1@x>", body=""), "html": html}, provider="mailco", secret="s3cret-mail")
    body = last_message(it["interaction"]["id"])["body"]
    assert body == "Hello & welcome 😀\n\nLine two\nthree"
    assert "<" not in body and "alert" not in body and "color" not in body


# --- bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "payload", "field"),
    [
        ("fax", sms(), "channel"),
        ("sms", {"from": {"kind": "phone", "value": PHONE}, "body": "x"}, "provider_message_id"),
        ("sms", {"provider_message_id": "1", "body": "x"}, "from"),
        ("sms", {"provider_message_id": "1", "from": {"kind": "phone", "value": "not a number"}, "body": "x"},
         "from.value"),
        ("social", {"provider_message_id": "1", "kind": "dm", "body": "x",
                    "from": {"kind": "social", "value": "ada", "provider": "myspace"}}, "from.provider"),
        ("sms", {"provider_message_id": "1", "from": {"kind": "fax", "value": "1"}, "body": "x"}, "from"),
        ("sms", sms(body="x" * 20_001), "body"),
        ("voice", call("exploded", "c1"), "event"),
        ("voice", call("ringing", "c1", direction="sideways", **{"from": {"kind": "phone", "value": PHONE}}),
         "direction"),
        ("social", {"provider_message_id": "1", "from": {"kind": "social", "value": "a", "provider": "x"},
                    "body": "x", "kind": "story"}, "kind"),
        ("email", {"provider_message_id": "1", "from": {"kind": "email", "value": "a@b.example"}}, "body"),
        ("chat", {"provider_message_id": "1", "conversation_id": "s", "occurred_at": "last tuesday",
                  "from": {"kind": "email", "value": "a@b.example"}, "body": "x"}, "occurred_at"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_stores_nothing(channel, payload, field):
    response = send(channel, payload)
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body or body.get("field") == field, body
    assert nothing_stored()


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_400(raw):
    response = send("sms", raw=raw)
    assert response.status_code == 400 and response.json()["field"] == "payload"
    assert nothing_stored()


def test_an_oversized_body_is_refused_naming_the_limit():
    response = send("sms", sms(body="x" * (webhooks.MAX_BYTES + 1)))
    assert response.status_code == 413
    assert str(webhooks.MAX_BYTES) in response.json()["detail"] and response.json()["field"] == "body"
    assert nothing_stored()


def test_occurred_at_becomes_the_business_time():
    it = ok("sms", sms(occurred_at="2026-01-02T03:04:05Z"))["interaction"]
    assert {e.occurred_at.isoformat() for e in store.read_stream(uuid.UUID(it["id"]))} == {"2026-01-02T03:04:05+00:00"}


# --- domain (no database) -----------------------------------------------------


@pytest.mark.django_db(transaction=False)
def test_decide_call_event_maps_provider_events_onto_the_lifecycle():
    case = uuid.uuid4()
    rang = domain.decide_call_event(domain.InteractionState(), event="ringing", case_id=case, agent_id="a1")
    state = domain.fold(rang)
    assert (state.status, state.agent_id) == (domain.OFFERED, "a1")
    with pytest.raises(domain.UnknownConversation):
        domain.decide_call_event(domain.InteractionState(), event="answered")
    with pytest.raises(domain.TransitionRefused):
        domain.decide_call_event(state, event="held")


def test_an_unknown_end_reason_is_400_naming_reason():
    ok("voice", call("ringing", "c8", agent_id="a1", **{"from": {"kind": "phone", "value": PHONE}}))
    ok("voice", call("answered", "c8"))
    before = Event.objects.count()
    response = send("voice", call("ended", "c8", reason="bored"))
    assert response.status_code == 400 and response.json()["field"] == "reason"
    assert Event.objects.count() == before


def test_message_recorded_v1_reads_back_as_v2():
    from events import registry

    data = registry.upcast("interactions.MessageRecorded", 1, {"direction": "inbound", "body": "hi",
                                                                "provider_message_id": None})
    assert registry.from_data("interactions.MessageRecorded", data).recipients == []


def test_input_fields_built_once_keep_no_state_between_requests():
    # The webhook inputs share one template of fields per class (FieldsBuiltOnce);
    # a bad payload must not leave anything behind for the next one, in any thread.
    from interactions.api.serializers import ChatWebhookInput

    bad = ChatWebhookInput(data={"provider_message_id": "x" * 201, "conversation_id": "c1",
                                 "from": {"kind": "fax", "value": "1"}})
    assert not bad.is_valid()
    assert set(bad.errors) == {"provider_message_id", "from"}
    results = []

    def validate(n):
        good = ChatWebhookInput(data={"provider_message_id": f"m{n}", "body": f"hello {n}", "conversation_id": "c",
                                      "from": {"kind": "email", "value": f"c{n}@example.com"}})
        results.append((good.is_valid(), good.validated_data.get("body"), dict(good.errors)))

    threads = [threading.Thread(target=validate, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted((True, f"hello {n}", {}) for n in range(8))
    assert ChatWebhookInput._fields_template["provider_message_id"].parent is None  # the template stays unbound


# --- personal data in text --------------------------------------------------


def test_card_numbers_and_codes_are_masked_before_anything_is_stored():
    from customers.selectors import timeline_list, timeline_open
    from events.projection import apply_envelopes
    from events.projection import get as get_projection

    card = "4111 1111 1111 1111"
    out = ok("sms", sms(f"pay with {card} cvv 737 and my SSN is 078-05-1120"))
    iid = uuid.UUID(out["interaction"]["id"])
    body = last_message(iid)["body"]
    assert body == "pay with [card ****1111] cvv [cvv] and my SSN is [national id]"
    # Nowhere in the store, decrypted or not: not in any event's data, nor in the outbox.
    # Searched with their context: a bare "737" or "4111" turns up in random UUIDs now and then.
    for env in store.read_all(limit=1000):
        text = json.dumps(env.data)
        assert "1111 1111" not in text and "cvv 737" not in text and "078-05" not in text
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM events_event WHERE data::text LIKE '%%4111 1111%%' "
                    "OR data::text LIKE '%%cvv 737%%'")
        assert cur.fetchone()[0] == 0
    apply_envelopes(get_projection("customers.timeline"), store.read_all(limit=1000))
    shown = json.dumps([e.data for e in timeline_open(list(timeline_list(Interaction.objects.get(id=iid).customer_id)))],
                       default=str)
    assert "[card ****1111]" in shown and card not in shown
