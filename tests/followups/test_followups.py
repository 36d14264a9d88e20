"""Follow-up tasks with a due time: promised, done or cancelled, overdue ones alerted once; and every open promise
visible per agent, per customer (also in the customer context) and in the admin."""

import datetime as dt
import uuid

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth import get_user_model
from django.utils import timezone

from events import store
from events.projection import apply_envelopes
from events.projection import get as get_projection
from events.store import Metadata
from followups import services
from followups.models import FollowUp
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
    make_queue("billing")
    ann = make_agent("ann", capacity={"chat": 2})
    iid = make_waiting("billing")
    routing_services.dispatch()
    interaction_services.interaction_accept(interaction_id=iid, agent_id="ann", meta=M)
    return ann, iid


def soon(minutes):
    return (timezone.now() + dt.timedelta(minutes=minutes)).isoformat()


def test_an_agent_promises_a_follow_up_and_marks_it_done_and_bad_input_is_refused(handled):
    ann, iid = handled
    api = client_for(ann.user)
    for body, field in [({"interaction_id": iid, "due_at": soon(60)}, "note"),
                        ({"interaction_id": iid, "note": "x"}, "due_at"),
                        ({"due_at": soon(60), "note": "x"}, "customer_id")]:
        refused = api.post("/api/v1/followups/", body, format="json")
        assert refused.status_code == 400 and field in str(refused.json()), (body, refused.content)
    unknown = api.post("/api/v1/followups/", {"interaction_id": str(uuid.uuid4()), "due_at": soon(60), "note": "x"},
                       format="json")
    assert unknown.status_code == 404  # no such contact (or not hers: the same answer)
    assert FollowUp.objects.count() == 0  # nothing half-written
    made = api.post("/api/v1/followups/", {"interaction_id": iid, "due_at": soon(60),
                                           "note": "Confirm the refund to card 4111 1111 1111 1111 landed"},
                    format="json")
    assert made.status_code == 201, made.content
    task = made.json()
    customer = str(Interaction.objects.get(id=iid).customer_id)
    assert (task["agent_id"], task["status"], task["customer_id"]) == ("ann", "open", customer)
    assert "4111 1111" not in task["note"] and "[card ****1111]" in task["note"]
    done = api.post(f"/api/v1/followups/{task['id']}/done/", {"text": "it landed"}, format="json")
    assert done.status_code == 200 and done.json()["status"] == "done" and done.json()["closed_by"] == "ann"
    assert api.post(f"/api/v1/followups/{task['id']}/done/", {}, format="json").status_code == 409
    kinds = [e.event_type for e in store.read_stream(uuid.UUID(task["id"]))]
    assert kinds == ["followups.FollowUpCreated", "followups.FollowUpDone"]
    # Both events carry the customer: they are on the customer's timeline.
    assert {e.customer_id for e in store.read_stream(uuid.UUID(task["id"]))} == {uuid.UUID(customer)}


def test_only_the_owner_or_a_supervisor_sees_and_closes_a_follow_up_and_only_supervisors_assign(handled):
    ann, iid = handled
    bob = make_agent("bob")
    boss = get_user_model().objects.create_user(username="boss", password="x", is_staff=True)
    task = services.followup_create(agent_id="ann", interaction_id=uuid.UUID(iid), due_at=timezone.now(),
                                    note="send the form", meta=M)
    bob_api = client_for(bob.user)
    assert bob_api.post(f"/api/v1/followups/{task.id}/done/", {}, format="json").status_code == 404
    assert bob_api.get("/api/v1/followups/").json() == []
    assert bob_api.get("/api/v1/followups/?agent_id=ann").json() == []  # agents see their own only
    assign = bob_api.post("/api/v1/followups/", {"interaction_id": iid, "due_at": soon(5), "note": "x",
                                                 "agent_id": "ann"}, format="json")
    assert assign.status_code == 404  # ann's contact is not bob's to see (it left the queue when ann took it)
    boss_api = client_for(boss)
    assert [t["id"] for t in boss_api.get("/api/v1/followups/?agent_id=ann").json()] == [str(task.id)]
    assigned = boss_api.post("/api/v1/followups/", {"interaction_id": iid, "due_at": soon(5), "note": "call HQ",
                                                    "agent_id": "bob"}, format="json")
    assert assigned.status_code == 201 and assigned.json()["agent_id"] == "bob"
    cancel = boss_api.post(f"/api/v1/followups/{task.id}/cancel/", {}, format="json")
    assert cancel.status_code == 400 and cancel.json()["field"] == "reason"
    cancel = boss_api.post(f"/api/v1/followups/{task.id}/cancel/", {"text": "customer withdrew"}, format="json")
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"


def test_an_overdue_follow_up_alerts_the_supervisors_and_its_agent_once(handled):
    ann, iid = handled
    boss = get_user_model().objects.create_user(username="boss", password="x", is_staff=True)
    late = services.followup_create(agent_id="ann", interaction_id=uuid.UUID(iid), note="send the label",
                                    due_at=timezone.now() - dt.timedelta(minutes=3), meta=M)
    services.followup_create(agent_id="ann", interaction_id=uuid.UUID(iid), note="later",
                             due_at=timezone.now() + dt.timedelta(hours=3), meta=M)

    async def scenario():
        board, ok1, _ = await connect("/ws/wallboard/", boss)
        desk, ok2, _ = await connect("/ws/agent/", ann.user)
        assert ok1 and ok2
        assert await sync_to_async(services.followups_overdue)() == 1
        frames = [await board.receive_json_from(timeout=5), await desk.receive_json_from(timeout=5)]
        assert await sync_to_async(services.followups_overdue)() == 0  # once
        assert await board.receive_nothing(timeout=0.5)
        await board.disconnect()
        await desk.disconnect()
        return frames

    for frame in async_to_sync(scenario)():
        assert frame["type"] == "followups.overdue" and frame["followup_id"] == str(late.id)
        assert frame["agent_id"] == "ann" and frame["overdue_seconds"] >= 180
    overdue = [e for e in store.read_stream(late.id) if e.event_type == "followups.FollowUpOverdue"]
    assert len(overdue) == 1 and FollowUp.objects.get(id=late.id).overdue


def test_every_open_promise_shows_per_agent_per_customer_and_in_the_customer_context(handled):
    from followups.models import Callback

    ann, iid = handled
    customer = Interaction.objects.get(id=iid).customer_id
    api = client_for(ann.user)
    assert api.post("/api/v1/callbacks/", {"customer_id": str(customer), "reason": "promised",
                                           "due_at": soon(30), "origin_interaction_id": iid},
                    format="json").status_code == 201
    assert api.post("/api/v1/followups/", {"interaction_id": iid, "due_at": soon(10), "note": "email the quote"},
                    format="json").status_code == 201
    assert api.post(f"/api/v1/interactions/{iid}/escalate/", {"target": "supervisor", "reason": "angry",
                                                              "respond_within_minutes": 20},
                    format="json").status_code == 201
    mine = api.get("/api/v1/promises/").json()
    assert [p["kind"] for p in mine] == ["followup", "escalation", "callback"]  # soonest due first
    assert {p["customer_id"] for p in mine} == {str(customer)}
    bob = make_agent("bob")
    assert client_for(bob.user).get("/api/v1/promises/").json() == []
    boss = get_user_model().objects.create_user(username="boss", password="x", is_staff=True)
    theirs = client_for(boss).get(f"/api/v1/promises/?customer_id={customer}").json()
    assert len(theirs) == 3
    assert client_for(boss).get("/api/v1/promises/?customer_id=nope").status_code == 400
    apply_envelopes(get_projection("customers.directory"), store.read_all(limit=10_000))
    context = api.get(f"/api/v1/customers/{customer}/context/").json()
    assert [p["kind"] for p in context["open_promises"]] == ["followup", "escalation", "callback"]
    Callback.objects.update(status="completed")
    assert [p["kind"] for p in client_for(boss).get("/api/v1/promises/").json()] == ["followup", "escalation"]
