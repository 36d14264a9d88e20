"""Callbacks: a dropped call turns into a callback that reaches the same agent; promises listed and cancelled."""

import datetime as dt
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from events import store
from events.store import Metadata
from followups import services
from followups.models import Callback
from interactions import services as interaction_services
from interactions.models import Interaction
from routing import services as routing_services
from routing.models import Work
from tests.conftest import client_for
from tests.routing.factories import make_agent, make_queue, make_waiting

pytestmark = pytest.mark.django_db(transaction=True)
M = Metadata()


def handled_by(agent, queue="support", channel="voice"):
    """A call from a new customer, routed to `agent` (alone available) and accepted; returns its id."""
    iid = make_waiting(queue, channel=channel)
    assert routing_services.work_route(interaction_id=uuid.UUID(iid)).agent_id == agent
    interaction_services.interaction_accept(interaction_id=iid, agent_id=agent, meta=M)
    return iid


def test_a_dropped_call_becomes_a_callback_that_reaches_the_same_agent(settings):
    settings.CALLBACK_AFTER_DROP_SECONDS = 120
    make_queue("support", skills={"support": 2})
    ann = make_agent("ann", skills={"support": 3})
    iid = handled_by("ann")
    api = client_for(ann.user)
    assert api.post(f"/api/v1/interactions/{iid}/end/", {"reason": "technical_drop"}, format="json").status_code == 200
    callback = Callback.objects.get()
    origin = Interaction.objects.get(id=iid)
    assert (callback.reason, callback.agent_id, callback.queue, callback.channel, callback.status) == (
        "technical_drop", "ann", "support", "voice", "scheduled")
    assert callback.case_id == origin.case_id and callback.origin_interaction_id == origin.id
    assert timezone.now() + dt.timedelta(seconds=100) < callback.due_at
    interaction_services.interaction_wrap_up(interaction_id=iid, disposition="dropped", meta=M)
    # Not due yet: nothing starts. Due: a callback interaction in the same case waits, ann preferred.
    assert services.callbacks_due() == 0
    later = timezone.now() + dt.timedelta(seconds=121)
    assert services.callbacks_due(now=later) == 1 and services.callbacks_due(now=later) == 0  # once
    callback.refresh_from_db()
    back = Interaction.objects.get(id=callback.interaction_id)
    assert (back.direction, back.case_id, back.status, back.queue) == ("outbound", origin.case_id, "queued",
                                                                       "support")
    assert Work.objects.get(interaction_id=back.id).preferred_agent == "ann"
    # Bob is more skilled and also free; the promise goes to ann.
    make_agent("bob", skills={"support": 5})
    routing_services.dispatch()
    assert Interaction.objects.get(id=back.id).agent_id == "ann"
    interaction_services.interaction_accept(interaction_id=back.id, agent_id="ann", meta=M)
    interaction_services.interaction_end(interaction_id=back.id, reason="resolved", meta=M)
    interaction_services.interaction_wrap_up(interaction_id=back.id, disposition="called back", meta=M)
    callback.refresh_from_db()
    assert callback.status == "completed"
    kinds = [e.event_type for e in store.read_stream(callback.id)]
    assert kinds == ["followups.CallbackScheduled", "followups.CallbackStarted", "followups.CallbackCompleted"]
    assert {e.customer_id for e in store.read_stream(callback.id)} == {origin.customer_id}  # on their timeline


def test_agents_promise_list_and_cancel_their_callbacks_and_no_one_else_s():
    make_queue("billing")
    ann, bob = make_agent("ann"), make_agent("bob")
    boss = get_user_model().objects.create_user(username="boss", password="x", is_staff=True)
    iid = make_waiting("billing")
    customer = str(Interaction.objects.get(id=iid).customer_id)
    due = (timezone.now() + dt.timedelta(hours=2)).isoformat()
    a, b, s = client_for(ann.user), client_for(bob.user), client_for(boss)
    bad = a.post("/api/v1/callbacks/", {"customer_id": customer, "reason": "technical_drop", "due_at": due},
                 format="json")
    assert bad.status_code == 400 and "reason" in bad.json()
    other = a.post("/api/v1/callbacks/", {"customer_id": customer, "reason": "promised", "due_at": due,
                                          "origin_interaction_id": str(uuid.uuid4())}, format="json")
    assert other.status_code == 404  # no such contact, or none of ann's: the same answer
    assert a.post("/api/v1/callbacks/", {"customer_id": customer, "reason": "promised", "due_at": due,
                                         "origin_interaction_id": iid}, format="json").status_code == 404  # not hers
    interaction_services.interaction_offer(interaction_id=iid, agent_id="ann", meta=M)
    interaction_services.interaction_accept(interaction_id=iid, agent_id="ann", meta=M)  # now she serves them
    made = a.post("/api/v1/callbacks/", {"customer_id": customer, "reason": "promised", "due_at": due,
                                         "origin_interaction_id": iid, "note": "card 4111 1111 1111 1111"},
                  format="json")
    assert made.status_code == 201 and made.json()["agent_id"] == "ann" and made.json()["queue"] == "billing"
    cid = made.json()["id"]
    assert "[card ****1111]" in store.read_stream(uuid.UUID(cid))[0].data["note"]
    assert [c["id"] for c in a.get("/api/v1/callbacks/").json()] == [cid]
    assert b.get("/api/v1/callbacks/").json() == []  # bob's own: none
    assert [c["id"] for c in s.get("/api/v1/callbacks/", {"customer_id": customer}).json()] == [cid]
    assert b.post(f"/api/v1/callbacks/{cid}/cancel/", {"reason": "x"}, format="json").status_code == 404  # not his
    assert a.post(f"/api/v1/callbacks/{cid}/cancel/", {"reason": "customer called in"},
                  format="json").status_code == 200
    again = a.post(f"/api/v1/callbacks/{cid}/cancel/", {"reason": "again"}, format="json")
    assert again.status_code == 409
    assert a.get("/api/v1/callbacks/").json() == [] and len(a.get("/api/v1/callbacks/", {"status": "all"}).json()) == 1
    assert services.callbacks_due(now=timezone.now() + dt.timedelta(days=1)) == 0  # cancelled: never started
