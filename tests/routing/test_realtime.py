"""The agent desk's socket and the wallboard: who may listen, and what they hear."""

import uuid

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from contactcenter.asgi import application
from contactcenter.tickets import ticket_issue
from events import store
from events.projection import apply_envelopes
from events.projection import get as get_projection
from events.store import Metadata
from interactions import services as interaction_services
from routing import services
from tests.routing.factories import make_agent, make_queue, make_waiting

pytestmark = pytest.mark.django_db(transaction=True)


async def connect(path, user=None, *, welcome=True):
    """A socket opened the way clients do: a ticket from REST's service (single use), then ?ticket=.

    The welcome (each stream's current seq) is read here unless `welcome` is False, so a test's first
    receive is the first push.
    """
    ticket = (await sync_to_async(lambda: ticket_issue(user)[0])()) if user else None
    communicator = WebsocketCommunicator(application, path + (f"?ticket={ticket}" if ticket else ""),
                                         headers=[(b"host", b"localhost"), (b"origin", b"http://localhost")])
    connected, code = await communicator.connect(timeout=10)
    if connected and welcome:
        hello = await communicator.receive_json_from(timeout=5)
        assert hello["type"] == "welcome", hello
    return communicator, connected, code


def test_only_agents_get_an_agent_socket_and_only_supervisors_the_wallboard():
    ann = make_agent("ann")
    plain = get_user_model().objects.create_user(username="visitor", password="x")

    async def scenario():
        results = {}
        for name, path, user in [("anonymous agent", "/ws/agent/", None), ("visitor agent", "/ws/agent/", plain),
                                 ("ann agent", "/ws/agent/", ann.user), ("ann wallboard", "/ws/wallboard/", ann.user)]:
            communicator, connected, code = await connect(path, user)
            results[name] = (connected, code)
            await communicator.disconnect()  # refused too: the consumer runs until the socket is gone
        return results

    results = async_to_sync(scenario)()
    assert results["anonymous agent"] == (False, 4401) and results["visitor agent"] == (False, 4403)
    assert results["ann agent"][0] is True and results["ann wallboard"] == (False, 4403)


def test_the_agent_hears_the_offer_with_context_then_the_assignment_and_the_wallboard_sees_the_queue():
    make_queue("billing")
    ann = make_agent("ann")
    boss = get_user_model().objects.create_user(username="boss", password="x", is_staff=True)
    iid = make_waiting("billing")
    apply_envelopes(get_projection("customers.directory"), store.read_all(limit=10_000))

    async def scenario():
        desk, ok, _ = await connect("/ws/agent/", ann.user)
        board, ok2, _ = await connect("/ws/wallboard/", boss)
        assert ok and ok2
        await sync_to_async(services.work_route)(interaction_id=uuid.UUID(iid))
        offer = await desk.receive_json_from(timeout=5)
        queue_update = await board.receive_json_from(timeout=5)
        await sync_to_async(interaction_services.interaction_accept)(interaction_id=iid, agent_id="ann",
                                                                      meta=Metadata())
        assigned = await desk.receive_json_from(timeout=5)
        await desk.disconnect()
        await board.disconnect()
        return offer, queue_update, assigned

    offer, queue_update, assigned = async_to_sync(scenario)()
    assert offer["type"] == "routing.offer" and offer["interaction_id"] == iid and offer["queue"] == "billing"
    assert offer["context"]["open_interactions"][0]["id"] == iid
    assert queue_update["type"] == "routing.queue" and queue_update["queue"] == "billing"
    assert queue_update["offered"] == 1 and queue_update["agents"] == {"available": 1}
    assert {k: v for k, v in assigned.items() if k not in ("stream", "seq")} == {
        "type": "routing.assigned", "interaction_id": iid, "status": "active"}
    assert assigned["stream"] == offer["stream"] and assigned["seq"] == offer["seq"] + 1  # one stream, in order


def test_an_idle_agent_socket_stays_open_and_still_hears_an_offer():
    """redis-py 8's default 5 s read timeout equals channels_redis's blocking pop: an idle socket would die."""
    from channels.layers import get_channel_layer

    from routing.realtime import agent_group

    ann = make_agent("ann")

    async def scenario():
        communicator, connected, _ = await connect("/ws/agent/", ann.user)
        assert connected
        # Idle for longer than one blocking pop of the channel layer (5 s).
        assert await communicator.receive_nothing(timeout=6, interval=0.5)
        await get_channel_layer().group_send(agent_group(ann.pk), {"type": "routing.presence", "agent_id": "ann",
                                                                   "presence": "break", "reason": "probe"})
        frame = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return frame

    assert async_to_sync(scenario)()["reason"] == "probe"
