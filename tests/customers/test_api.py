"""Customer API: authentication, validation, optimistic concurrency, erasure."""

import uuid

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from customers.models import Customer, CustomerProfile, TimelineEntry
from events import store
from events.crypto import ERASED
from events.models import Event, OutboxEntry
from events.projection import apply_envelopes
from events.projection import get as get_projection
from events.replay import replay

pytestmark = pytest.mark.django_db(transaction=True)


def project_everything():
    for name in ("customers.directory", "customers.timeline"):
        apply_envelopes(get_projection(name), store.read_all(limit=100_000))


def register(api, **data):
    body = {"display_name": "Ada Lovelace", **data}
    response = api.post("/api/v1/customers/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.mark.parametrize("path", ["/api/v1/customers/", f"/api/v1/customers/{uuid.uuid4()}/", "/api/v1/events/",
                                  "/api/schema/", "/api/docs/"])
def test_requests_without_a_token_get_401(path):
    response = APIClient().get(path)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_token_gets_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-real-token")
    assert client.get("/api/v1/customers/").status_code == 401


def test_issue_token_prints_a_token_that_works(user, capsys):
    call_command("issue_token", user.username)
    token = capsys.readouterr().out.strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/customers/").status_code == 200


def test_register_appends_an_event_and_the_projections_show_it(api, user):
    created = register(api, preferred_channel="chat")
    assert created["version"] == 1
    event = Event.objects.get(stream_id=created["id"])
    assert event.event_type == "customers.CustomerRegistered"
    assert event.actor == {"type": "user", "id": str(user.pk), "name": "agent1"}
    assert OutboxEntry.objects.filter(position=event.position).exists()
    project_everything()
    profile = api.get(f"/api/v1/customers/{created['id']}/").json()
    assert profile["display_name"] == "Ada Lovelace" and profile["preferred_channel"] == "chat"
    timeline = api.get(f"/api/v1/customers/{created['id']}/timeline/").json()
    (entry,) = timeline["results"]
    assert entry["event_type"] == "customers.CustomerRegistered"
    assert "display_name" not in entry["data"] and "display_name" in entry["personal_fields"]


def test_correlation_id_header_is_kept(api):
    cid = uuid.uuid4()
    response = api.post("/api/v1/customers/", {"display_name": "Ada"}, format="json", HTTP_X_CORRELATION_ID=str(cid))
    assert Event.objects.get(stream_id=response.json()["id"]).correlation_id == cid


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({}, "display_name", "required"),
        ({"display_name": "A", "email": "not-an-email"}, "email", "valid email"),
        ({"display_name": "A", "phone": "call me"}, "phone", "phone number"),
        ({"display_name": "A", "preferred_channel": "pigeon"}, "preferred_channel", "not a valid choice"),
        ({"display_name": "x" * 201}, "display_name", "200 characters"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(api, body, field, words):
    response = api.post("/api/v1/customers/", body, format="json")
    assert response.status_code == 400
    assert words in " ".join(response.json()[field])
    assert Event.objects.count() == 0 and Customer.objects.count() == 0


def test_malformed_json_is_a_400(api):
    response = api.post("/api/v1/customers/", "{not json", content_type="application/json")
    assert response.status_code == 400 and "JSON" in response.json()["detail"]


def test_stale_expected_version_is_a_409_and_changes_nothing(api):
    created = register(api)
    url = f"/api/v1/customers/{created['id']}/"
    assert api.patch(url, {"expected_version": 1, "email": "new@example.com"}, format="json").status_code == 200
    stale = api.patch(url, {"expected_version": 1, "email": "lost@example.com"}, format="json")
    assert stale.status_code == 409
    body = stale.json()
    assert body["code"] == "version_conflict" and body["current_version"] == 2
    assert Event.objects.filter(stream_id=created["id"]).count() == 2
    project_everything()
    assert api.get(url).json()["email"] == "new@example.com"


def test_change_without_fields_or_version_is_a_400(api):
    created = register(api)
    url = f"/api/v1/customers/{created['id']}/"
    assert "expected_version" in api.patch(url, {"email": "a@b.cd"}, format="json").json()
    response = api.patch(url, {"expected_version": 1}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "nothing_to_change"


def test_unknown_customer_is_a_404(api):
    assert api.patch(f"/api/v1/customers/{uuid.uuid4()}/", {"expected_version": 1, "phone": "123"},
                     format="json").status_code == 404
    assert api.get(f"/api/v1/customers/{uuid.uuid4()}/timeline/").status_code == 404


def test_only_staff_may_erase_or_read_raw_events(api, staff_api):
    created = register(api)
    assert api.post(f"/api/v1/customers/{created['id']}/erase/", {"reason": "r"}, format="json").status_code == 403
    assert api.get("/api/v1/events/").status_code == 403
    assert api.get(f"/api/v1/events/streams/{created['id']}/").status_code == 403
    assert Customer.objects.get(id=created["id"]).erased_at is None
    page = staff_api.get("/api/v1/events/?after=0&limit=10").json()
    assert [e["stream_id"] for e in page["events"]] == [created["id"]]
    assert page["events"][0]["data"]["display_name"] == "Ada Lovelace"  # decrypted for staff
    assert staff_api.get("/api/v1/events/?limit=5000").status_code == 400


def test_erasure_erases_personal_data_everywhere_and_nothing_else(api, staff_api):
    keep = register(api, display_name="Grace Hopper", email="grace@example.com")
    gone = register(api, email="ada@example.com")
    assert gone["version"] == 2  # registered, and the email linked as an identity
    api.patch(f"/api/v1/customers/{gone['id']}/", {"expected_version": 2, "phone": "+1 555 0199"}, format="json")
    project_everything()
    before = list(Event.objects.order_by("position").values_list("position", "event_type", "stream_version", "data"))

    response = staff_api.post(f"/api/v1/customers/{gone['id']}/erase/", {"reason": "GDPR request 42"}, format="json")
    assert response.status_code == 200 and response.json()["version"] == 4
    again = staff_api.post(f"/api/v1/customers/{gone['id']}/erase/", {"reason": "again"}, format="json")
    assert again.status_code == 200 and again.json()["positions"] == []  # idempotent

    # The store: history unchanged (one event added), personal fields unreadable.
    after = list(Event.objects.order_by("position").values_list("position", "event_type", "stream_version", "data"))
    assert after[: len(before)] == before and len(after) == len(before) + 1
    registered, linked, changed, erased = store.read_stream(uuid.UUID(gone["id"]))
    assert registered.data["display_name"] == ERASED and registered.data["email"] == ERASED
    assert linked.data == {"kind": "email", "value": ERASED, "provider": ""}
    assert changed.data["phone"] == ERASED
    assert erased.data == {"reason": "GDPR request 42"}
    assert store.read_stream(uuid.UUID(keep["id"]))[0].data["display_name"] == "Grace Hopper"

    # The live projection scrubs; a rebuilt one never sees the data again.
    project_everything()
    for rebuild in (False, True):
        if rebuild:
            replay(get_projection("customers.directory"), progress=False)
            replay(get_projection("customers.timeline"), progress=False)
        profile = CustomerProfile.objects.get(customer_id=gone["id"])
        assert (profile.display_name, profile.email, profile.phone, profile.erased) == (ERASED, None, None, True)
        assert CustomerProfile.objects.get(customer_id=keep["id"]).display_name == "Grace Hopper"
        assert TimelineEntry.objects.filter(customer_id=gone["id"]).count() == 4

    # Changing an erased customer is refused; its email no longer leads to it.
    refused = api.patch(f"/api/v1/customers/{gone['id']}/", {"expected_version": 4, "phone": "123"}, format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "customer_erased"
    assert register(api, email="ada@example.com")["id"] != gone["id"]


def test_email_and_phone_become_identities_and_cannot_be_taken_twice(api):
    first = register(api, email="Ada@Example.com", phone="+1 415-555-0123")
    linked = [e.data for e in store.read_stream(uuid.UUID(first["id"])) if e.event_type == "customers.IdentityLinked"]
    assert {(d["kind"], d["value"]) for d in linked} == {("email", "ada@example.com"), ("phone", "+14155550123")}
    taken = api.post("/api/v1/customers/", {"display_name": "Impostor", "phone": "(415) 555 0123"}, format="json")
    assert taken.status_code == 409
    assert taken.json()["code"] == "identity_taken" and taken.json()["field"] == "phone"
    assert Customer.objects.count() == 1 and Event.objects.count() == 3


def test_an_invalid_phone_number_is_a_400_naming_the_field(api):
    response = api.post("/api/v1/customers/", {"display_name": "A", "phone": "+1 000 000"}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "phone"
    assert Event.objects.count() == 0 and Customer.objects.count() == 0


def test_erase_customer_command(api, capsys):
    created = register(api, email="ada@example.com")
    call_command("erase_customer", created["id"])
    assert "erased" in capsys.readouterr().out
    assert store.read_stream(uuid.UUID(created["id"]))[0].data["email"] == ERASED
