"""Interactions through the API: lifecycle, cases across channels, identity resolution, bad input."""

import uuid

import pytest

from customers.models import Customer, TimelineEntry
from events import store
from events.models import Event
from events.projection import apply_envelopes
from events.projection import get as get_projection
from interactions.models import Interaction
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)


def post(api, path, body=None, status=200):
    response = api.post(path, body or {}, format="json")
    assert response.status_code == status, response.content
    return response.json()


def start(api, status=201, **body):
    body = {"channel": "chat", "identity": {"kind": "email", "value": "ada@example.com"}, **body}
    return post(api, "/api/v1/interactions/", body, status=status)


def test_a_chat_from_a_new_email_registers_the_customer_and_runs_its_lifecycle(api, user):
    created = start(api, queue="billing")
    assert created["customer_created"] is True
    it = created["interaction"]
    assert (it["status"], it["queue"], it["version"]) == ("queued", "billing", 2)
    url = f"/api/v1/interactions/{it['id']}"
    post(api, f"{url}/messages/", {"direction": "inbound", "body": "Hallo 👋 — my bill is wrong"})
    post(api, f"{url}/offer/", {"agent_id": user.username})
    accepted = post(api, f"{url}/accept/")["interaction"]
    assert (accepted["status"], accepted["agent_id"]) == ("active", "agent1")
    post(api, f"{url}/hold/")
    post(api, f"{url}/resume/")
    post(api, f"{url}/messages/", {"direction": "outbound", "body": "Fixed it."})
    post(api, f"{url}/end/", {"reason": "resolved", "duration_seconds": 300})
    done = post(api, f"{url}/wrap-up/", {"disposition": "billing.correction", "notes": "credited"})["interaction"]
    assert done["status"] == "resolved" and done["version"] == 11  # 10 of its own, and the inbound text's score
    messages = [e.data for e in store.read_stream(uuid.UUID(it["id"])) if e.event_type == "interactions.MessageRecorded"]
    assert messages[0]["body"] == "Hallo 👋 — my bill is wrong"
    assert all(e.customer_id == uuid.UUID(it["customer_id"]) for e in store.read_stream(uuid.UUID(it["id"])))


def test_a_chat_then_a_call_from_the_same_person_share_customer_and_case(api):
    chat = start(api)["interaction"]
    call = start(api, channel="voice", identity={"kind": "email", "value": " ADA@example.com"},
                 case_id=chat["case_id"])
    assert call["customer_created"] is False
    assert call["interaction"]["customer_id"] == chat["customer_id"]
    assert call["interaction"]["case_id"] == chat["case_id"]
    assert Customer.objects.count() == 1
    apply_envelopes(get_projection("customers.timeline"), store.read_all(limit=10_000))
    channels = set(TimelineEntry.objects.filter(customer_id=chat["customer_id"]).values_list("channel", flat=True))
    assert {"chat", "voice"} <= channels


def test_invalid_transitions_are_409_and_write_nothing(api):
    it = start(api, channel="voice", queue="q")["interaction"]
    before = Event.objects.count()
    refused = api.post(f"/api/v1/interactions/{it['id']}/accept/", {}, format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "invalid_transition"
    assert "queued" in refused.json()["detail"]
    assert api.post(f"/api/v1/interactions/{it['id']}/wrap-up/", {"disposition": "x"},
                    format="json").status_code == 409
    assert Event.objects.count() == before
    assert Interaction.objects.get(id=it["id"]).status == "queued"


def test_only_the_offered_agent_may_accept(api, staff):
    it = start(api, queue="q")["interaction"]
    other = client_for(staff)
    post(other, f"/api/v1/interactions/{it['id']}/offer/", {"agent_id": "someone-else"})  # by hand: an admin
    # The agent who started it may not take it from the one it is offered to: no longer theirs to command (404);
    # the admin may command it, and the domain refuses an accept by anyone but the offered agent (409).
    assert api.post(f"/api/v1/interactions/{it['id']}/accept/", {}, format="json").status_code == 404
    assert other.post(f"/api/v1/interactions/{it['id']}/accept/", {}, format="json").status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": "fax", "customer_id": str(uuid.uuid4())}, "channel"),
        ({"channel": "chat"}, "customer_id"),
        ({"channel": "chat", "identity": {"kind": "phone", "value": "not a number"}}, "phone"),
        ({"channel": "chat", "identity": {"kind": "social", "value": "ada", "provider": "myspace"}}, "provider"),
    ],
)
def test_bad_input_names_the_field_and_stores_nothing(api, body, field):
    response = api.post("/api/v1/interactions/", body, format="json")
    assert response.status_code == 400
    payload = response.json()
    assert field in payload or payload.get("field") == field, payload
    assert Event.objects.count() == 0 and Interaction.objects.count() == 0


def test_an_unknown_customer_id_is_a_400_for_an_admin_and_a_404_for_an_agent(api, staff_api):
    """An admin may see every customer, so is told the id names none; an agent is told only what they would be
    told about a customer of someone else's (404: ids cannot be probed). Nothing is stored either way."""
    body = {"channel": "chat", "customer_id": str(uuid.uuid4())}
    response = staff_api.post("/api/v1/interactions/", body, format="json")
    assert response.status_code == 400 and response.json()["field"] == "customer_id", response.content
    assert api.post("/api/v1/interactions/", body, format="json").status_code == 404
    assert Event.objects.count() == 0 and Interaction.objects.count() == 0


def test_an_oversized_message_is_refused(api):
    it = start(api)["interaction"]
    response = api.post(f"/api/v1/interactions/{it['id']}/messages/",
                        {"direction": "inbound", "body": "x" * 20_001}, format="json")
    assert response.status_code == 400 and "20000" in response.json()["body"][0]


def test_a_case_of_another_customer_is_refused(api):
    mine = start(api)["interaction"]
    response = api.post("/api/v1/interactions/", {"channel": "sms", "case_id": mine["case_id"],
                                                  "identity": {"kind": "phone", "value": "+1 415 555 0123"}},
                        format="json")
    assert response.status_code == 400 and response.json()["field"] == "case_id"


def test_interactions_need_a_token():
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/interactions/").status_code == 401


def test_the_fast_answer_equals_the_documented_serializer(api, user):
    # The lifecycle and webhook answers are built without a serializer (the
    # intake path is hot); the schema documents InteractionOutput, so the two
    # must agree field for field, including nulls and time formats.
    from interactions.api.serializers import InteractionOutput, interaction_json

    it = start(api, queue="billing")["interaction"]
    post(api, f"/api/v1/interactions/{it['id']}/offer/", {"agent_id": user.username})
    row = Interaction.objects.get(id=it["id"])
    assert interaction_json(row) == InteractionOutput(row).data
    assert row.agent_id and row.queue  # both set: a null-only comparison would prove less
    fresh = Interaction.objects.get(id=start(api, identity={"kind": "phone", "value": "+14155550123"})
                                    ["interaction"]["id"])
    assert fresh.agent_id is None and interaction_json(fresh) == InteractionOutput(fresh).data


def test_message_text_reads_on_the_customer_timeline_and_matches_the_documented_shape(api):
    from customers.api.serializers import TimelineEntryOutput, timeline_json
    from customers.selectors import timeline_open

    it = start(api, queue="billing")["interaction"]
    post(api, f"/api/v1/interactions/{it['id']}/messages/", {"direction": "inbound", "body": "Hallo 👋 — my bill"})
    apply_envelopes(get_projection("customers.timeline"), store.read_all(limit=10_000))
    entries = api.get(f"/api/v1/customers/{it['customer_id']}/timeline/?event_type=interactions.MessageRecorded").json()
    (message,) = entries["results"]
    assert message["data"]["body"] == "Hallo 👋 — my bill" and "body" in message["personal_fields"]
    for entry in timeline_open(list(TimelineEntry.objects.filter(customer_id=it["customer_id"]))):
        assert timeline_json(entry) == TimelineEntryOutput(entry).data


def test_the_list_filters_by_agent_and_status_newest_first(api, user):
    first = start(api, queue="billing")["interaction"]
    second = start(api, queue="billing", identity={"kind": "email", "value": "grace@example.com"})["interaction"]
    post(api, f"/api/v1/interactions/{first['id']}/offer/", {"agent_id": user.username})
    everything = api.get("/api/v1/interactions/").json()["results"]
    assert [i["id"] for i in everything] == [second["id"], first["id"]]
    offered = api.get(f"/api/v1/interactions/?agent_id={user.username}&status=offered").json()["results"]
    assert [i["id"] for i in offered] == [first["id"]]


def test_ending_for_abuse_is_refused_until_the_warnings_are_on_record(api, user, settings):
    settings.ABUSE_WARNINGS_REQUIRED = 2
    url = f"/api/v1/interactions/{start(api, queue='billing')['interaction']['id']}"
    post(api, f"{url}/offer/", {"agent_id": user.username})
    post(api, f"{url}/accept/")
    post(api, f"{url}/warn/", {"reason": "abuse", "text": "Please keep it civil, or I will end the chat."})
    before = Event.objects.count()
    refused = post(api, f"{url}/end/", {"reason": "agent_ended_abuse"}, status=409)
    assert refused["code"] == "protocol_refused"
    assert "2 warning(s)" in refused["detail"] and "(1 given)" in refused["detail"]
    assert Event.objects.count() == before  # nothing written
    bad = post(api, f"{url}/warn/", {"reason": "rudeness"}, status=400)
    assert "reason" in bad
    post(api, f"{url}/warn/", {"reason": "abuse", "text": "This is my second warning."})
    done = post(api, f"{url}/end/", {"reason": "agent_ended_abuse"})["interaction"]
    assert done["status"] == "wrap_up"
    types = [e.event_type for e in store.read_stream(uuid.UUID(done["id"]))]
    assert types.count("interactions.WarningGiven") == 2 and types[-1] == "interactions.InteractionEnded"


def test_a_customer_request_ends_without_warnings(api, user):
    url = f"/api/v1/interactions/{start(api, queue='billing')['interaction']['id']}"
    post(api, f"{url}/offer/", {"agent_id": user.username})
    post(api, f"{url}/accept/")
    assert post(api, f"{url}/end/", {"reason": "customer_request"})["interaction"]["status"] == "wrap_up"
