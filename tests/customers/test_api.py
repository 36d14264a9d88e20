"""Customer API: authentication, validation, optimistic concurrency, erasure."""

import json
import uuid

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from customers.models import Customer, CustomerIdentity, CustomerProfile, TimelineEntry
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
    assert entry["data"]["display_name"] == "Ada Lovelace" and "display_name" in entry["personal_fields"]
    # ... but the read model itself only holds it encrypted under the customer's key
    stored = TimelineEntry.objects.get(position=entry["position"])
    assert "Ada" not in json.dumps(stored.data) and str(stored.key_id) == created["id"]


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
    assert body["code"] == "version_conflict" and body["current_version"] == 3  # changed, and the email linked
    assert Event.objects.filter(stream_id=created["id"]).count() == 3
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
    changed = api.patch(f"/api/v1/customers/{gone['id']}/", {"expected_version": 2, "phone": "+1 415 555 0199"},
                        format="json")
    assert changed.status_code == 200 and changed.json()["version"] == 4  # changed, and the phone linked
    project_everything()
    before = list(Event.objects.order_by("position").values_list("position", "event_type", "stream_version", "data"))

    response = staff_api.post(f"/api/v1/customers/{gone['id']}/erase/", {"reason": "GDPR request 42"}, format="json")
    assert response.status_code == 200 and response.json()["version"] == 5
    again = staff_api.post(f"/api/v1/customers/{gone['id']}/erase/", {"reason": "again"}, format="json")
    assert again.status_code == 200 and again.json()["positions"] == []  # idempotent

    # The store: history unchanged (one event added), personal fields unreadable.
    after = list(Event.objects.order_by("position").values_list("position", "event_type", "stream_version", "data"))
    assert after[: len(before)] == before and len(after) == len(before) + 1
    registered, linked, changed, linked_phone, erased = store.read_stream(uuid.UUID(gone["id"]))
    assert registered.data["display_name"] == ERASED and registered.data["email"] == ERASED
    assert linked.data == {"kind": "email", "value": ERASED, "provider": ""}
    assert changed.data["phone"] == ERASED and linked_phone.data["value"] == ERASED
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
        assert TimelineEntry.objects.filter(customer_id=gone["id"]).count() == 5
        # The timeline keeps personal fields encrypted: with the key gone they read as erased.
        entries = api.get(f"/api/v1/customers/{gone['id']}/timeline/").json()["results"]
        personal = [e["data"][f] for e in entries for f in e["personal_fields"]]
        assert len(personal) >= 4 and set(personal) == {ERASED}
        kept = api.get(f"/api/v1/customers/{keep['id']}/timeline/").json()["results"]
        assert kept[0]["data"]["display_name"] == "Grace Hopper"

    # Changing an erased customer is refused; its email no longer leads to it.
    refused = api.patch(f"/api/v1/customers/{gone['id']}/", {"expected_version": 5, "display_name": "X"},
                        format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "customer_erased"
    assert register(api, email="ada@example.com")["id"] != gone["id"]


def test_email_and_phone_become_identities_and_cannot_be_taken_twice(api):
    first = register(api, email="Ada@Example.com", phone="+1 415-555-0123")
    linked = [e.data for e in store.read_stream(uuid.UUID(first["id"])) if e.event_type == "customers.IdentityLinked"]
    assert {(d["kind"], d["value"]) for d in linked} == {("email", "ada@example.com"), ("phone", "+14155550123")}
    taken = api.post("/api/v1/customers/", {"display_name": "Impostor", "phone": "(415) 555 0123"}, format="json")
    assert taken.status_code == 409
    assert taken.json()["code"] == "identity_taken" and taken.json()["field"] == "phone"
    assert first["id"] not in taken.content.decode()  # whose it is is not said: the caller may not see them
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


# --- profile -----------------------------------------------------------------


def test_profile_fields_are_changed_projected_and_shown(api):
    created = register(api)
    url = f"/api/v1/customers/{created['id']}/"
    hours = {"tz": "Europe/Berlin", "from": "09:00", "to": "17:00"}
    response = api.patch(url, {"expected_version": 1, "language": "de-de", "contact_hours": hours, "vip_tier": "gold",
                               "tags": ["Churn-Risk", "b2b"], "notes": "prefers mornings"}, format="json")
    assert response.status_code == 200 and response.json()["version"] == 2
    (changed,) = store.read_stream(uuid.UUID(created["id"]), after_version=1)
    assert changed.event_type == "customers.ProfileUpdated"
    assert Event.objects.get(position=changed.position).data["notes"] != "prefers mornings"  # personal: encrypted
    project_everything()
    profile = api.get(url).json()
    assert (profile["language"], profile["contact_hours"], profile["vip_tier"], profile["tags"], profile["notes"],
            profile["version"]) == ("de-DE", hours, "gold", ["churn-risk", "b2b"], "prefers mornings", 2)
    # Clearing, and a partial change leaves the rest alone.
    api.patch(url, {"expected_version": 2, "contact_hours": {}, "tags": []}, format="json")
    project_everything()
    profile = api.get(url).json()
    assert (profile["contact_hours"], profile["tags"], profile["vip_tier"], profile["version"]) == ({}, [], "gold", 3)


@pytest.mark.parametrize(("body", "field"), [
    ({"language": "english"}, "language"),
    ({"contact_hours": {"tz": "Europe/Berlin", "from": "9", "to": "17:00"}}, "contact_hours"),
    ({"contact_hours": {"tz": "Nowhere/City", "from": "09:00", "to": "17:00"}}, "contact_hours"),
    ({"vip_tier": "diamond"}, "vip_tier"),
    ({"tags": ["x" * 40]}, "tags"),
    ({"tags": "vip"}, "tags"),
])
def test_bad_profile_values_are_a_400_naming_the_field(api, body, field):
    created = register(api)
    response = api.patch(f"/api/v1/customers/{created['id']}/", {"expected_version": 1, **body}, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    assert Event.objects.count() == 1


def test_a_changed_email_or_phone_is_linked_and_one_taken_is_refused(api):
    ada = register(api, email="ada@example.com")
    grace = register(api, display_name="Grace", phone="+1 415 555 0123")
    url = f"/api/v1/customers/{ada['id']}/"
    taken = api.patch(url, {"expected_version": 2, "phone": "(415) 555-0123"}, format="json")
    assert taken.status_code == 409 and taken.json()["code"] == "identity_taken" and taken.json()["field"] == "phone"
    assert Customer.objects.get(id=ada["id"]).version == 2 and Event.objects.filter(stream_id=ada["id"]).count() == 2

    # Its own email again links nothing new; a new email is normalised and linked.
    same = api.patch(url, {"expected_version": 2, "email": "ADA@example.com", "vip_tier": "silver"}, format="json")
    assert same.json()["version"] == 4
    moved = api.patch(url, {"expected_version": 4, "email": "Ada.L@Example.com"}, format="json")
    assert moved.json()["version"] == 6
    last = store.read_stream(uuid.UUID(ada["id"]), after_version=4)
    assert [(e.event_type, e.data.get("email") or e.data.get("value")) for e in last] == [
        ("customers.CustomerDetailsChanged", "ada.l@example.com"), ("customers.IdentityLinked", "ada.l@example.com")]
    assert register(api, display_name="X", email="x@example.com")
    assert api.post("/api/v1/customers/", {"display_name": "Y", "email": "ada.l@example.com"},
                    format="json").status_code == 409
    assert grace["id"] != ada["id"]


# --- merge -------------------------------------------------------------------


def merge(client, target, source, **extra):
    return client.post(f"/api/v1/customers/{target['id']}/merge/",
                       {"source_id": source["id"], "expected_version": target["version"], **extra}, format="json")


def test_merge_moves_identities_timeline_and_makes_the_source_read_only(api, staff_api):
    from customers import services
    from customers.identity import identity
    from events.store import Metadata

    target = register(api, email="ada@example.com")
    source = register(api, display_name="A. Lovelace", phone="+1 415 555 0123")
    assert merge(api, target, source).status_code == 403
    response = merge(staff_api, target, source)
    assert response.status_code == 200 and response.json()["version"] == 3, response.content

    # The source's phone now leads to the target, on any channel.
    found, created = services.customer_resolve(ident=identity("phone", "4155550123"), meta=Metadata())
    assert (str(found), created) == (target["id"], False)
    project_everything()
    moved = api.get(f"/api/v1/customers/{source['id']}/").json()
    assert moved["merged_into"] == target["id"] and moved["version"] == 3
    timeline = api.get(f"/api/v1/customers/{target['id']}/timeline/").json()["results"]
    assert {e["stream_id"] for e in timeline} == {target["id"], source["id"]}
    assert len(timeline) == 6 and api.get(f"/api/v1/customers/{source['id']}/timeline/").json()["results"] == []

    refused = api.patch(f"/api/v1/customers/{source['id']}/", {"expected_version": 3, "vip_tier": "gold"},
                        format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "customer_merged"
    again = merge(staff_api, {**target, "version": 3}, source)
    assert again.status_code == 409 and again.json()["code"] == "customer_merged"
    into_source = merge(staff_api, {**source, "version": 3}, target)
    assert into_source.status_code == 409 and into_source.json()["code"] == "customer_merged"


def test_merge_refusals(api, staff_api):
    a, b, gone = register(api), register(api, display_name="B"), register(api, display_name="C")
    staff_api.post(f"/api/v1/customers/{gone['id']}/erase/", {"reason": "r"}, format="json")
    itself = merge(staff_api, a, a)
    assert itself.status_code == 400 and itself.json()["field"] == "source_id"
    assert merge(staff_api, {**gone, "version": 2}, a).json()["code"] == "customer_erased"
    assert merge(staff_api, a, gone).json()["code"] == "customer_erased"
    unknown = merge(staff_api, a, {"id": str(uuid.uuid4())})
    assert unknown.status_code == 400 and unknown.json()["field"] == "source_id"
    assert merge(staff_api, {**a, "version": 7}, b).json()["code"] == "version_conflict"
    assert "source_id" in merge(staff_api, a, {"id": "nope"}).json()
    assert Customer.objects.filter(merged_into__isnull=False).count() == 0


# --- timeline ----------------------------------------------------------------


def test_timeline_is_in_occurred_order_and_filters(api):
    import datetime as dt

    from events.store import Metadata
    from interactions.events import InteractionCreated, MessageRecorded

    created = register(api)
    cid = uuid.UUID(created["id"])
    t0 = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
    chat, mail = uuid.uuid4(), uuid.uuid4()
    # Arrival order differs from occurred order: the email was sent first but recorded last.
    for stream, channel, minutes in ((chat, "chat", 10), (mail, "email", 5)):
        store.append(stream_type="interaction", stream_id=stream, customer_id=cid, expected_version=0,
                     events=[InteractionCreated(channel=channel, direction="inbound", case_id=uuid.uuid4())],
                     meta=Metadata(channel=channel), occurred_at=t0 + dt.timedelta(minutes=minutes))
    store.append(stream_type="interaction", stream_id=chat, customer_id=cid, expected_version=1,
                 events=[MessageRecorded(direction="inbound", body="hi")], meta=Metadata(channel="chat"),
                 occurred_at=t0 + dt.timedelta(minutes=5))  # the same instant as the email: position breaks the tie
    store.append(stream_type="interaction", stream_id=mail, customer_id=cid, expected_version=1,
                 events=[MessageRecorded(direction="inbound", body="hello")], meta=Metadata(channel="email"),
                 occurred_at=t0 + dt.timedelta(minutes=1))
    project_everything()
    url = f"/api/v1/customers/{cid}/timeline/"
    entries = api.get(url).json()["results"]
    assert [(e["channel"], e["event_type"].split(".")[1]) for e in entries] == [
        ("email", "MessageRecorded"), ("email", "InteractionCreated"), ("chat", "MessageRecorded"),
        ("chat", "InteractionCreated"), ("", "CustomerRegistered")]
    assert [e["channel"] for e in api.get(url, {"channel": "chat"}).json()["results"]] == ["chat", "chat"]
    only = api.get(url, {"event_type": "interactions.MessageRecorded", "since": "2026-05-01T12:02:00Z",
                         "until": "2026-05-01T13:00:00+00:00"}).json()["results"]
    assert [e["stream_id"] for e in only] == [str(chat)]
    # Pages follow the same order.
    first = api.get(url, {"page_size": 2}).json()
    second = api.get(first["next"]).json()
    assert first["results"] + second["results"] == entries[:4]
    for params, field in (({"since": "yesterday"}, "since"), ({"until": "2026-13-01"}, "until"),
                          ({"event_type": "nope.Nothing"}, "event_type"),
                          ({"since": "2026-05-02T00:00Z", "until": "2026-05-01T00:00Z"}, "until")):
        response = api.get(url, params)
        assert response.status_code == 400 and field in response.json(), params


def test_context_endpoint(api):
    created = register(api, email="ada@example.com")
    api.patch(f"/api/v1/customers/{created['id']}/", {"expected_version": 2, "vip_tier": "platinum",
                                                      "language": "fr-ca"}, format="json")
    project_everything()
    body = api.get(f"/api/v1/customers/{created['id']}/context/").json()
    assert body["customer"]["id"] == created["id"] and body["vip_tier"] == "platinum"
    assert body["preferences"] == {"preferred_channel": "", "language": "fr-CA", "contact_hours": {}}
    assert body["identities"] == [{"kind": "email", "provider": ""}]
    assert (body["open_interactions"], body["open_cases"], body["last_contacts"]) == ([], [], [])
    assert body["repeat_contact"] is False
    assert api.get(f"/api/v1/customers/{uuid.uuid4()}/context/").status_code == 404


def test_erasing_a_merge_target_erases_everyone_merged_into_it(api, staff_api):
    target = register(api, display_name="Ada", email="ada@example.com")
    middle = register(api, display_name="A. Lovelace", phone="+1 415 555 0123")
    first = register(api, display_name="Countess", email="countess@example.com")
    other = register(api, display_name="Grace", email="grace@example.com")
    assert merge(staff_api, middle, first).status_code == 200  # first -> middle
    assert merge(staff_api, target, {**middle, "version": 3}).status_code == 200  # middle (and first) -> target
    project_everything()
    timeline = api.get(f"/api/v1/customers/{target['id']}/timeline/").json()["results"]
    names = {e["data"]["display_name"] for e in timeline if e["event_type"] == "customers.CustomerRegistered"}
    assert names == {"Ada", "A. Lovelace", "Countess"}  # readable before

    response = staff_api.post(f"/api/v1/customers/{target['id']}/erase/", {"reason": "GDPR 7"}, format="json")
    assert response.status_code == 200 and len(response.json()["positions"]) == 3  # one CustomerErased each
    for customer in (target, middle, first):
        erased = store.read_stream(uuid.UUID(customer["id"]))
        assert erased[0].data["display_name"] == ERASED and erased[-1].event_type == "customers.CustomerErased"
        assert not CustomerIdentity.objects.filter(customer_id=customer["id"]).exists()
    assert store.read_stream(uuid.UUID(middle["id"]))[-1].data["reason"] == f"merged into erased customer {target['id']}"
    assert store.read_stream(uuid.UUID(other["id"]))[0].data["display_name"] == "Grace"
    project_everything()
    timeline = api.get(f"/api/v1/customers/{target['id']}/timeline/").json()["results"]
    personal = {e["data"][f] for e in timeline for f in e["personal_fields"]}
    assert personal == {ERASED}
    for customer in (target, middle, first):
        assert CustomerProfile.objects.get(customer_id=customer["id"]).erased


def test_an_expected_version_beyond_a_database_integer_is_a_400_not_a_500(api):
    """Found by the fuzzer (make fuzz): a version past PostgreSQL's integer range reached the database."""
    first = register(api, email="big@example.com")
    response = api.patch(f"/api/v1/customers/{first['id']}/", {"expected_version": 92607182268, "contact_hours": {}},
                         format="json")
    assert response.status_code == 400 and "expected_version" in response.json(), response.content
    assert Event.objects.count() == 2
