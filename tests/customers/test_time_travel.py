"""Time travel (history/asof.py): a customer, a queue and an agent as they stood at past instants.

Hand-built sequences against the real store; each instant is taken between two commands (each command commits
its own transaction, so every event before the instant was recorded before it and every event after, after).
"""

import datetime as dt
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from customers import selectors, services
from customers.identity import identity
from customers.models import TimelineEntry
from events import store
from events.crypto import ERASED
from events.models import Event
from events.projection import apply_envelopes
from events.projection import get as get_projection
from events.store import Metadata
from history import asof
from incidents.events import IncidentReported
from interactions import services as interactions
from routing import services as routing
from tests.conftest import client_for
from tests.routing.factories import make_agent, make_queue

pytestmark = pytest.mark.django_db(transaction=True)

META = Metadata()


def project():
    envelopes = store.read_all(limit=100_000)
    for name in ("customers.directory", "customers.timeline"):
        apply_envelopes(get_projection(name), envelopes)


def instant():
    """A moment strictly between the last command and the next."""
    at = timezone.now()
    while timezone.now() <= at:
        pass
    return at


def chat(name):
    return interactions.interaction_create(channel="chat", direction="inbound", meta=META,
                                           ident=identity("email", f"{name}@example.com")).interaction


def positions(customer_id, at):
    return [e.position for e in asof.timeline_as_of(customer_id, at).order_by("occurred_at", "position")]


def own(customer_id):
    return set(Event.objects.filter(customer_id=customer_id).values_list("position", flat=True))


def streams(customer_id, at):
    return {e.stream_id for e in asof.timeline_as_of(customer_id, at)}


@pytest.fixture
def story():
    """Sam and Tess register; each chats; Tess emails; Tess changes her name; an incident is filed on Tess's chat;
    Sam is merged into Tess; Sam's address opens a chat (Tess's now); the merge is undone; Sam is erased."""
    at = {}
    sam = services.customer_register(display_name="Sam", email="sam@example.com", meta=META).customer_id
    tess = services.customer_register(display_name="Tess", email="tess@example.com", meta=META).customer_id
    sam_chat, tess_chat = chat("sam"), chat("tess")
    tess_mail = interactions.interaction_create(channel="email", direction="inbound", meta=META,
                                                customer_id=tess).interaction
    at["registered"] = instant()
    services.customer_change_details(customer_id=tess, expected_version=2, meta=META, display_name="Tessa")
    report = uuid.uuid4()
    store.append(stream_type="incident", stream_id=report, customer_id=tess, expected_version=0, events=[
        IncidentReported(interaction_id=tess_chat.id, agent_id="bob", kind="abuse", contact_started_at="",
                         duration_seconds=None, channel="chat", action_taken="warned", supervisor="sup",
                         description="shouting")])
    at["changed"] = instant()
    services.customer_merge(customer_id=tess, source_id=sam, expected_version=3, meta=META)
    late = chat("sam")
    assert late.customer_id == tess
    at["merged"] = instant()
    services.customer_unmerge(customer_id=tess, source_id=sam, expected_version=4, meta=META)
    at["unmerged"] = instant()
    services.customer_erase(customer_id=sam, reason="request 42", meta=META)
    at["erased"] = instant()
    project()
    return {"sam": sam, "tess": tess, "sam_chat": sam_chat, "tess_chat": tess_chat, "tess_mail": tess_mail,
            "late": late, "report": report, "at": at}


def test_the_timeline_as_of_each_instant(story):
    sam, tess, at = story["sam"], story["tess"], story["at"]
    late = story["late"].id
    # Before the merge: each their own, on every channel they used.
    assert streams(tess, at["registered"]) == {tess, story["tess_chat"].id, story["tess_mail"].id}
    assert streams(sam, at["registered"]) == {sam, story["sam_chat"].id}
    assert {e.channel for e in asof.timeline_as_of(tess, at["registered"])} >= {"chat", "email"}
    # A merge after T is not applied.
    assert not streams(tess, at["changed"]) & streams(sam, at["changed"])
    # Merged: Sam's history on Tess's timeline, Sam's own timeline empty, the late chat on Tess's.
    assert own(sam) - {e.position for e in Event.objects.filter(recorded_at__gt=at["merged"])} <= set(
        positions(tess, at["merged"]))
    assert positions(sam, at["merged"]) == []
    assert late in streams(tess, at["merged"])
    # Unmerged: Sam's own again with the chat his address brought in; Tess keeps hers.
    assert late in streams(sam, at["unmerged"]) and late not in streams(tess, at["unmerged"])
    assert story["sam_chat"].id in streams(sam, at["unmerged"]) and sam not in streams(tess, at["unmerged"])
    # Now: exactly what the live projection shows.
    for cid in (sam, tess):
        live = list(TimelineEntry.objects.filter(customer_id=cid).order_by("occurred_at", "position")
                    .values_list("position", flat=True))
        assert positions(cid, at["erased"]) == live


def test_the_timeline_api_as_of_withholds_decrypts_and_pages(story, admin_client_api):
    sam, tess, at = story["sam"], story["tess"], story["at"]
    url = f"/api/v1/customers/{tess}/timeline/"
    answer = admin_client_api.get(url, {"as_of": at["changed"].isoformat()}).json()
    entries = answer["results"]
    assert [e["position"] for e in entries] == positions(tess, at["changed"])
    incident = [e for e in entries if e["stream_type"] == "incident"]
    assert incident and incident[0]["data"] == {"withheld": True, "read_at": f"/api/v1/incidents/{story['report']}/"}
    registered = next(e for e in entries if e["event_type"] == "customers.CustomerRegistered")
    assert registered["data"]["display_name"] == "Tess" and registered["personal_fields"] == ["display_name", "email"]
    # Live and as-of entries of one event are the same shape (same serializer).
    live = admin_client_api.get(url).json()["results"]
    assert set(live[0]) == set(entries[0])
    # Erased stays erased: Sam's registration, as of before his erasure, reads "[erased]".
    sam_entries = admin_client_api.get(f"/api/v1/customers/{sam}/timeline/",
                                       {"as_of": at["registered"].isoformat()}).json()["results"]
    first = next(e for e in sam_entries if e["event_type"] == "customers.CustomerRegistered")
    assert first["data"]["display_name"] == ERASED and first["data"]["email"] == ERASED
    # Paging: a page of 2, then the next, covers the same entries in order.
    one = admin_client_api.get(url, {"as_of": at["changed"].isoformat(), "page_size": 2}).json()
    two = admin_client_api.get(one["next"]).json()
    assert [e["position"] for e in one["results"] + two["results"]] == [e["position"] for e in entries[:4]]


def test_the_context_as_of(story, admin_client_api):
    sam, tess, at = story["sam"], story["tess"], story["at"]
    before = admin_client_api.get(f"/api/v1/customers/{tess}/context/", {"as_of": at["registered"].isoformat()})
    assert before.status_code == 200, before.content
    body = before.json()
    assert body["customer"]["display_name"] == "Tess"  # changed after T: not shown
    assert body["identities"] == [{"kind": "email", "provider": ""}]
    assert {i["id"] for i in body["open_interactions"]} == {str(story["tess_chat"].id), str(story["tess_mail"].id)}
    assert body["customer"]["merged_into"] is None
    after = admin_client_api.get(f"/api/v1/customers/{tess}/context/", {"as_of": at["changed"].isoformat()}).json()
    assert after["customer"]["display_name"] == "Tessa"
    merged = admin_client_api.get(f"/api/v1/customers/{tess}/context/", {"as_of": at["merged"].isoformat()}).json()
    assert str(story["sam_chat"].id) in {i["id"] for i in merged["open_interactions"]}
    assert str(story["late"].id) in {c["interaction_id"] for c in merged["last_contacts"]}
    sam_merged = admin_client_api.get(f"/api/v1/customers/{sam}/context/", {"as_of": at["merged"].isoformat()}).json()
    assert sam_merged["customer"]["merged_into"] == str(tess)
    assert sam_merged["customer"]["display_name"] == ERASED and not sam_merged["customer"]["erased"]
    sam_back = admin_client_api.get(f"/api/v1/customers/{sam}/context/", {"as_of": at["unmerged"].isoformat()}).json()
    assert sam_back["customer"]["merged_into"] is None
    assert {i["id"] for i in sam_back["open_interactions"]} == {str(story["sam_chat"].id), str(story["late"].id)}
    gone = admin_client_api.get(f"/api/v1/customers/{sam}/context/", {"as_of": at["erased"].isoformat()}).json()
    assert gone["customer"]["erased"] is True
    # Not registered yet at T: 404.
    early = admin_client_api.get(f"/api/v1/customers/{tess}/context/",
                                 {"as_of": (at["registered"] - dt.timedelta(days=1)).isoformat()})
    assert early.status_code == 404


def test_the_last_contacts_and_open_work_follow_the_lifecycle_as_of():
    make_queue("q")
    cid = services.customer_register(display_name="Ola", email="ola@example.com", meta=META).customer_id
    i = interactions.interaction_create(channel="chat", direction="inbound", meta=META, customer_id=cid,
                                        queue="q").interaction
    interactions.interaction_offer(interaction_id=i.id, agent_id="x", meta=META)
    interactions.interaction_accept(interaction_id=i.id, agent_id="x", meta=META)
    open_at = instant()
    interactions.interaction_end(interaction_id=i.id, reason="resolved", meta=META)
    interactions.interaction_wrap_up(interaction_id=i.id, disposition="done", meta=META)
    done_at = instant()
    then = asof.customer_context_as_of(cid, open_at)
    assert [x.id for x in then.open_interactions] == [i.id] and then.open_interactions[0].status == "active"
    assert then.last_contacts[0]["outcome"] == "open"
    now = asof.customer_context_as_of(cid, done_at)
    assert i.id not in [x.id for x in now.open_interactions]  # (the wrap-up may open a survey: another contact)
    contact = next(c for c in now.last_contacts if c["interaction_id"] == i.id)
    assert (contact["outcome"], contact["disposition"], contact["end_reason"]) == ("resolved", "done", "resolved")
    project()  # at the present instant, repeat contact is what the live rule says
    assert now.repeat_of == selectors.repeat_contacts(cid, now=done_at)


@pytest.mark.parametrize("value", ["yesterday", "2999-01-01T00:00:00Z"])
def test_an_as_of_that_is_malformed_or_in_the_future_is_a_400_naming_it(story, admin_client_api, value):
    for path in ("timeline", "context"):
        response = admin_client_api.get(f"/api/v1/customers/{story['tess']}/{path}/", {"as_of": value})
        assert response.status_code == 400
        assert list(response.json()) == ["as_of"]  # the input at fault, as every query's field errors read


def test_an_agent_outside_the_scope_gets_404(story):
    from django.contrib.auth.models import Group

    stranger = make_agent("stranger", skills={}, presence="offline")
    stranger.user.groups.add(Group.objects.get_or_create(name="agent")[0])
    client = client_for(stranger.user)
    for path in ("timeline", "context"):
        response = client.get(f"/api/v1/customers/{story['tess']}/{path}/",
                              {"as_of": story["at"]["changed"].isoformat()})
        assert response.status_code == 404


def test_the_queue_and_the_agent_as_of(admin_client_api):
    make_queue("support", skills={"support": 1})
    bob = make_agent("bob", skills={"support": 3}, presence="offline")
    i = interactions.interaction_create(channel="chat", direction="inbound", meta=META,
                                        ident=identity("email", "q@example.com"), queue="support").interaction
    queued = instant()
    routing.agent_presence_set(agent_id="bob", presence="break", reason="lunch")
    on_break = instant()
    interactions.interaction_offer(interaction_id=i.id, agent_id="bob", meta=META)
    offered = instant()
    interactions.interaction_accept(interaction_id=i.id, agent_id="bob", meta=META)
    accepted = instant()
    interactions.interaction_end(interaction_id=i.id, reason="resolved", meta=META)
    interactions.interaction_wrap_up(interaction_id=i.id, disposition="done", meta=META)
    done = instant()

    state = asof.queue_state_as_of("support", queued)
    assert [w["interaction_id"] for w in state["waiting"]] == [i.id] and state["offered"] == []
    queued_at = Event.objects.get(stream_id=i.id, event_type="interactions.InteractionQueued").occurred_at
    assert state["waiting"][0]["waited_seconds"] == round((queued - queued_at).total_seconds(), 3)
    assert state["agents"] == {"offline": 1}
    state = asof.queue_state_as_of("support", on_break)
    assert state["agents"] == {"break": 1} and len(state["waiting"]) == 1
    state = asof.queue_state_as_of("support", offered)
    assert state["waiting"] == [] and [o["agent_id"] for o in state["offered"]] == ["bob"]
    state = asof.queue_state_as_of("support", accepted)
    assert [w["interaction_id"] for w in state["in_hand"]] == [i.id]
    state = asof.queue_state_as_of("support", done)
    assert state["waiting"] == state["offered"] == state["in_hand"] == []

    assert asof.agent_state_as_of("bob", queued)["presence"] == "offline"
    agent = asof.agent_state_as_of("bob", offered)
    assert (agent["presence"], agent["reason"]) == ("break", "lunch")
    assert [(w["interaction_id"], w["status"]) for w in agent["work"]] == [(i.id, "offered")]
    assert [w["status"] for w in asof.agent_state_as_of("bob", accepted)["work"]] == ["active"]
    assert asof.agent_state_as_of("bob", done)["work"] == []

    # The API: the same answers; bob sees his own, a colleague 404.
    answer = admin_client_api.get("/api/v1/queues/support/state/", {"as_of": queued.isoformat()})
    assert answer.status_code == 200, answer.content
    assert answer.json()["waiting"][0]["interaction_id"] == str(i.id)
    mine = client_for(bob.user).get("/api/v1/agents/me/state/", {"as_of": offered.isoformat()})
    assert mine.status_code == 200 and mine.json()["work"][0]["status"] == "offered"
    carl = make_agent("carl", skills={"billing": 3}, presence="offline")
    assert client_for(carl.user).get("/api/v1/agents/bob/state/").status_code == 404
    for path in ("/api/v1/queues/support/state/", "/api/v1/agents/bob/state/"):
        refused = admin_client_api.get(path, {"as_of": "2999-01-01T00:00:00Z"})
        assert refused.status_code == 400 and list(refused.json()) == ["as_of"]


def test_the_interaction_admin_shows_the_context_when_offered(admin_client_api):
    from django.test import Client

    make_queue("q")
    cid = services.customer_register(display_name="Ida", email="ida@example.com", meta=META).customer_id
    i = interactions.interaction_create(channel="chat", direction="inbound", meta=META, customer_id=cid,
                                        queue="q").interaction
    interactions.interaction_offer(interaction_id=i.id, agent_id="x", meta=META)
    services.customer_change_details(customer_id=cid, expected_version=2, meta=META, display_name="Idina")
    admin = get_user_model().objects.create_superuser("root", password="x")
    browser = Client()
    browser.force_login(admin)
    page = browser.get(f"/admin/interactions/interaction/{i.id}/change/").content.decode()
    assert "customer context when offered" in page.lower()
    assert "&quot;display_name&quot;: &quot;Ida&quot;" in page and "Idina" not in page
    assert f"/api/v1/customers/{cid}/context/?as_of=" in page


@pytest.fixture
def admin_client_api(db):
    staff = get_user_model().objects.create_user("timetraveller", password="x", is_staff=True)
    return client_for(staff)
