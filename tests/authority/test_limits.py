"""Agent empowerment within limits: done at once within them, a supervisor's approval above them."""

import uuid
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from authority.models import Action, AuthorityLimit
from events import store
from events.store import Metadata
from interactions import services as interaction_services
from routing import services as routing_services
from tests.conftest import client_for
from tests.routing.factories import make_agent, make_queue, make_waiting
from tests.routing.test_realtime import connect

pytestmark = pytest.mark.django_db(transaction=True)
M = Metadata()


@pytest.fixture
def contact():
    """ann handles a chat; refunds: 50 an action, 80 a day for every agent."""
    AuthorityLimit.objects.all().delete()
    AuthorityLimit.objects.create(kind="refund", per_action=Decimal("50"), per_day=Decimal("80"))
    make_queue("billing")
    ann = make_agent("ann")
    iid = make_waiting("billing")
    assert routing_services.work_route(interaction_id=uuid.UUID(iid)).agent_id == "ann"
    interaction_services.interaction_accept(interaction_id=iid, agent_id="ann", meta=M)
    return ann, iid


def act(api, iid, amount, kind="refund", status=201):
    response = api.post(f"/api/v1/interactions/{iid}/actions/", {"kind": kind, "amount": str(amount),
                                                                  "reason": "late delivery"}, format="json")
    assert response.status_code == status, response.content
    return response.json()


def test_within_the_limits_it_is_done_at_once_and_the_day_s_total_counts(contact):
    ann, iid = contact
    api = client_for(ann.user)
    first = act(api, iid, "40.00")
    assert first["status"] == "done" and first["expected_by"] is None
    second = act(api, iid, "30.00")  # 70 today: still within 80
    assert second["status"] == "done"
    third = act(api, iid, "20.00")  # 90 today: over the day's 80
    assert third["status"] == "pending" and third["expected_by"]
    kinds = [e.event_type for e in store.read_stream(uuid.UUID(third["id"]))]
    assert kinds == ["authority.ApprovalRequested"]
    assert "per day 80" in store.read_stream(uuid.UUID(third["id"]))[0].data["limit"]
    bad = api.post(f"/api/v1/interactions/{iid}/actions/", {"kind": "bribe", "amount": "5", "reason": "x"},
                   format="json")
    assert bad.status_code == 400 and "kind" in bad.json()
    bob = make_agent("bob")
    act(client_for(bob.user), iid, "5.00", status=404)  # ann's contact, not the queue's any more: not bob's to see
    # A group with a higher limit: its members may do more.
    leads = Group.objects.create(name="team leads")
    AuthorityLimit.objects.create(kind="refund", group=leads, per_action=Decimal("500"), per_day=Decimal("2000"))
    ann.user.groups.add(leads)
    assert act(api, iid, "300.00")["status"] == "done"


def test_above_the_limit_it_waits_for_a_supervisor_who_is_alerted_and_the_agent_hears_the_answer(contact):
    ann, iid = contact
    boss = get_user_model().objects.create_user(username="boss", password="x", is_staff=True)
    ann_api, boss_api = client_for(ann.user), client_for(boss)

    async def scenario():
        board, ok1, _ = await connect("/ws/wallboard/", boss)
        desk, ok2, _ = await connect("/ws/agent/", ann.user)
        assert ok1 and ok2
        pending = await sync_to_async(act)(ann_api, iid, "120.00")
        alert = await board.receive_json_from(timeout=5)
        # The agent may not approve their own; the supervisor does.
        denied = await sync_to_async(ann_api.post)(f"/api/v1/approvals/{pending['id']}/approve/", {},
                                                   format="json")
        approved = await sync_to_async(boss_api.post)(f"/api/v1/approvals/{pending['id']}/approve/",
                                                      {"note": "goodwill"}, format="json")
        heard = await desk.receive_json_from(timeout=5)
        await board.disconnect()
        await desk.disconnect()
        return pending, alert, denied.status_code, approved.json(), heard

    pending, alert, denied, approved, heard = async_to_sync(scenario)()
    assert pending["status"] == "pending"
    assert alert["type"] == "authority.approval" and alert["action_id"] == pending["id"] and alert["amount"] == "120.00"
    assert denied == 403
    assert approved["status"] == "done" and approved["decided_by"] == "boss"
    assert heard["type"] == "authority.decided" and heard["approved"] is True
    kinds = [e.event_type for e in store.read_stream(uuid.UUID(pending["id"]))]
    assert kinds == ["authority.ApprovalRequested", "authority.ApprovalDecided", "authority.ActionTaken"]
    assert store.read_stream(uuid.UUID(pending["id"]))[-1].data["approved_by"] == "boss"
    # Decided once: a second answer is refused; a rejected one is never taken.
    assert client_for(boss).post(f"/api/v1/approvals/{pending['id']}/reject/", {}, format="json").status_code == 409
    other = act(client_for(ann.user), iid, "99.00")
    assert client_for(boss).post(f"/api/v1/approvals/{other['id']}/reject/", {}, format="json").json()["status"] \
        == "rejected"
    assert [e.event_type for e in store.read_stream(uuid.UUID(other["id"]))][-1] == "authority.ApprovalDecided"
    assert Action.objects.filter(status="done").count() == 1
