"""Routing over REST: presence (and who may set it), queue stats, and why an interaction went where."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from events.models import Event
from events.store import Metadata
from interactions import services as interaction_services
from routing import services
from tests.conftest import client_for
from tests.routing.factories import make_agent, make_queue, make_waiting

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_agent_sets_their_own_presence_and_no_one_else_s():
    ann, bob = make_agent("ann", presence="offline"), make_agent("bob", presence="offline")
    api = client_for(ann.user)
    response = api.post("/api/v1/agents/me/presence/", {"presence": "available"}, format="json")
    assert response.status_code == 200 and response.json()["presence"] == "available"
    assert api.get("/api/v1/agents/me/").json()["agent_id"] == "ann"
    before = Event.objects.count()
    refused = api.post("/api/v1/agents/bob/presence/", {"presence": "available"}, format="json")
    assert refused.status_code == 404 and Event.objects.count() == before  # bob is not in ann's scope
    bad = api.post("/api/v1/agents/me/presence/", {"presence": "napping"}, format="json")
    assert bad.status_code == 400 and "napping" in bad.json()["presence"][0] and Event.objects.count() == before
    assert APIClient().post("/api/v1/agents/me/presence/", {"presence": "break"}, format="json").status_code == 401
    bob.user.is_staff = True
    bob.user.save()
    staff = client_for(bob.user)
    done = staff.post("/api/v1/agents/ann/presence/", {"presence": "break", "reason": "coaching"}, format="json")
    assert done.status_code == 200 and done.json()["presence_reason"] == "coaching"
    assert staff.post("/api/v1/agents/nobody/presence/", {"presence": "break"}, format="json").status_code == 404


def test_queue_stats_now_and_today():
    make_queue("billing", service_level_seconds=20)
    ann = make_agent("ann", capacity={"chat": 1})
    answered, abandoned, waiting = make_waiting("billing"), make_waiting("billing"), make_waiting("billing")
    services.work_route(interaction_id=uuid.UUID(answered))
    interaction_services.interaction_accept(interaction_id=answered, agent_id="ann", meta=Metadata())
    interaction_services.interaction_abandon(interaction_id=abandoned, meta=Metadata())
    stats = client_for(ann.user).get("/api/v1/queues/billing/stats/").json()
    assert (stats["waiting"], stats["offered"], stats["in_hand"]) == (1, 0, 1)
    assert stats["longest_wait_seconds"] > 0 and stats["agents"] == {"available": 1}
    assert (stats["answered"], stats["answered_within_target"], stats["service_level"], stats["abandoned"]) == \
        (1, 1, 1.0, 1)
    assert 0 <= stats["average_speed_of_answer_seconds"] < 20
    assert client_for(ann.user).get("/api/v1/queues/nowhere/stats/").status_code == 404
    assert waiting


def test_why_did_this_go_to_that_agent():
    make_queue("billing", skills={"billing": 2})
    ann = make_agent("ann", skills={"billing": 2})
    make_agent("bob", skills={"billing": 4})
    iid = make_waiting("billing")
    services.work_route(interaction_id=uuid.UUID(iid))
    trail = client_for(ann.user).get(f"/api/v1/interactions/{iid}/routing/").json()
    kinds = [step["event_type"] for step in trail]
    assert kinds == ["interactions.InteractionQueued", "routing.InteractionRouted", "interactions.InteractionOffered"]
    routed = trail[1]["data"]
    assert routed["agent_id"] == "bob" and routed["explanation"]["candidates"][0]["agent_id"] == "bob"
    assert routed["explanation"]["candidates"][1] == {"agent_id": "ann", "eligible": True, "score": 2.0,
                                                      "reasons": ["billing 2"]}
    assert client_for(ann.user).get(f"/api/v1/interactions/{uuid.uuid4()}/routing/").status_code == 404
    assert APIClient().get(f"/api/v1/interactions/{iid}/routing/").status_code == 401


def test_agents_and_queues_are_listed():
    make_queue("billing", skills={"billing": 2})
    make_queue("support")
    ann = make_agent("ann", skills={"billing": 3})
    make_agent("bob")
    api = client_for(ann.user)
    agents = api.get("/api/v1/agents/").json()["results"]
    assert [(a["agent_id"], a["skills"]) for a in agents] == [("ann", {"billing": 3})]  # an agent sees themself
    boss = get_user_model().objects.create_user("boss", password="x", is_staff=True)
    agents = client_for(boss).get("/api/v1/agents/").json()["results"]
    assert [(a["agent_id"], a["skills"]) for a in agents] == [("ann", {"billing": 3}), ("bob", {})]
    queues = api.get("/api/v1/queues/").json()["results"]  # billing (her skill) and support (asks for none)
    assert [(q["name"], q["skills"]) for q in queues] == [
        ("billing", [{"skill": "billing", "min_proficiency": 2, "secondary": False}]), ("support", [])]
