"""Escalations: to a specialist queue (routed like other work) or to the supervisors, with a response clock
whose breach alerts the supervisors; the whole path on the record."""

import datetime as dt
import uuid

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth import get_user_model
from django.utils import timezone

from events import store
from events.store import Metadata
from followups import services
from followups.models import Escalation
from interactions import services as interaction_services
from interactions.models import Interaction
from routing import services as routing_services
from tests.conftest import client_for
from tests.routing.factories import make_agent, make_queue, make_waiting
from tests.routing.test_realtime import connect

pytestmark = pytest.mark.django_db(transaction=True)
M = Metadata()


@pytest.fixture
def handled():
    make_queue("billing", skills={"billing": 2})
    make_queue("retention", skills={"retention": 3})
    ann = make_agent("ann", skills={"billing": 3})
    iid = make_waiting("billing")
    assert routing_services.work_route(interaction_id=uuid.UUID(iid)).agent_id == "ann"
    interaction_services.interaction_accept(interaction_id=iid, agent_id="ann", meta=M)
    return ann, iid


def test_an_escalation_to_a_specialist_queue_is_routed_and_its_clock_stops_when_taken_up(handled):
    ann, iid = handled
    api = client_for(ann.user)
    bad = api.post(f"/api/v1/interactions/{iid}/escalate/", {"target": "queue", "queue": "nowhere", "reason": "x",
                                                             "respond_within_minutes": 10}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "queue"
    made = api.post(f"/api/v1/interactions/{iid}/escalate/", {"target": "queue", "queue": "retention",
                                                              "reason": "wants to cancel; above my authority",
                                                              "respond_within_minutes": 10}, format="json")
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["status"] == "open" and body["queue"] == "retention"
    row = Interaction.objects.get(id=iid)
    assert (row.status, row.queue) == ("queued", "retention")  # transferred, waiting to be routed
    make_agent("rita", skills={"retention": 4})
    routing_services.dispatch()
    assert Interaction.objects.get(id=iid).agent_id == "rita"
    interaction_services.interaction_accept(interaction_id=iid, agent_id="rita", meta=M)
    escalation = Escalation.objects.get()
    assert (escalation.status, escalation.accepted_by) == ("accepted", "rita")
    kinds = [e.event_type for e in store.read_stream(escalation.id)]
    assert kinds == ["followups.Escalated", "followups.EscalationAccepted"]
    transferred = [e for e in store.read_stream(uuid.UUID(iid)) if e.event_type == "interactions.InteractionTransferred"]
    assert "escalated: wants to cancel" in transferred[0].data["note"]


def test_an_escalation_to_the_supervisors_alerts_them_and_a_breach_alerts_them_again(handled):
    ann, iid = handled
    boss = get_user_model().objects.create_user(username="boss", password="x", is_staff=True)
    ann_api, boss_api = client_for(ann.user), client_for(boss)

    async def scenario():
        board, ok, _ = await connect("/ws/wallboard/", boss)
        assert ok
        made = await sync_to_async(ann_api.post)(f"/api/v1/interactions/{iid}/escalate/", {
            "target": "supervisor", "reason": "threatening legal action", "respond_within_minutes": 5},
            format="json")
        raised = await board.receive_json_from(timeout=5)
        late = timezone.now() + dt.timedelta(minutes=6)
        assert await sync_to_async(services.escalations_breached)(now=late) == 1
        breached = await board.receive_json_from(timeout=5)
        assert await sync_to_async(services.escalations_breached)(now=late) == 0  # once
        await board.disconnect()
        return made.json(), raised, breached

    made, raised, breached = async_to_sync(scenario)()
    assert raised["type"] == "followups.escalation" and raised["escalation_id"] == made["id"]
    assert breached["type"] == "followups.escalation_breached" and breached["overdue_seconds"] >= 60
    assert Interaction.objects.get(id=iid).agent_id == "ann"  # the agent keeps the contact meanwhile
    assert ann_api.post(f"/api/v1/escalations/{made['id']}/accept/").status_code == 403
    taken = boss_api.post(f"/api/v1/escalations/{made['id']}/accept/")
    assert taken.status_code == 200 and taken.json()["accepted_by"] == "boss" and taken.json()["breached"] is True
    assert boss_api.post(f"/api/v1/escalations/{made['id']}/accept/").status_code == 409
    kinds = [e.event_type for e in store.read_stream(uuid.UUID(made["id"]))]
    assert kinds == ["followups.Escalated", "followups.EscalationBreached", "followups.EscalationAccepted"]
    assert [e["id"] for e in ann_api.get("/api/v1/escalations/", {"status": "all"}).json()] == [made["id"]]


def test_only_the_agent_handling_a_contact_escalates_it(handled):
    _, iid = handled
    bob = make_agent("bob")
    refused = client_for(bob.user).post(f"/api/v1/interactions/{iid}/escalate/", {
        "target": "supervisor", "reason": "x", "respond_within_minutes": 5}, format="json")
    assert refused.status_code == 404 and not Escalation.objects.exists()  # not bob's contact: it does not exist
