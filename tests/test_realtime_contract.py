"""The real-time contract (README): a welcome with each stream's seq, consecutive seq per stream on every push,
and a gap that a client sees and repairs over REST. Over real sockets (Channels' communicator, the real
channel layer on Redis); the page side in headless Chromium."""

import uuid

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model

from contactcenter.realtime import notify, seq_current, seq_reserve
from customers.realtime import timeline_group
from events import store
from events.projection import apply_envelopes
from events.projection import get as get_projection
from routing import services
from routing.management.commands.simulate import Simulation
from routing.models import Agent
from routing.realtime import WALLBOARD, agent_group
from tests.conftest import client_for
from tests.routing.conftest import web  # noqa: F401  (daphne on the test's database)
from tests.routing.factories import make_agent, make_queue, make_waiting
from tests.routing.test_pages import browser, sign_in  # noqa: F401  (headless Chromium)
from tests.routing.test_realtime import connect

pytestmark = pytest.mark.django_db(transaction=True)


def _sent(future):
    future.result(timeout=10)  # the notifier thread has handed them to the channel layer


def _lose_one(stream: str) -> int:
    """A push to `stream` numbered and lost on the way (as when a send fails after its number was taken); its seq.

    On the notifier's own loop, like a real push: from a thread where Playwright runs its event loop too.
    """
    import asyncio

    from contactcenter import realtime

    return asyncio.run_coroutine_threadsafe(seq_reserve(get_channel_layer(), stream, 1),
                                            realtime._ensure_loop()).result(timeout=10)


def test_every_push_carries_its_stream_and_consecutive_seq_and_the_welcome_says_the_start():
    ann = make_agent("ann")
    boss = get_user_model().objects.create_user(username="boss", password="x", is_staff=True)
    desk_stream = agent_group(ann.pk)

    async def scenario():
        desk, ok, _ = await connect("/ws/agent/", ann.user, welcome=False)
        welcome = await desk.receive_json_from(timeout=5)
        presence = {"type": "routing.presence", "agent_id": "ann", "presence": "break", "reason": "", "since": ""}
        await sync_to_async(_sent)(notify([(desk_stream, presence), (WALLBOARD, {"type": "routing.alarm", "queue": "q",
                                            "longest_wait_seconds": 1, "service_level_seconds": 1}),
                                           (desk_stream, presence)]))
        await sync_to_async(_sent)(notify([(desk_stream, presence)]))
        got = [await desk.receive_json_from(timeout=5) for _ in range(3)]
        # A socket that joins later starts where the stream is now; the wallboard's stream has its own counter.
        late, _, _ = await connect("/ws/agent/", ann.user, welcome=False)
        board, _, _ = await connect("/ws/wallboard/", boss, welcome=False)
        late_welcome = await late.receive_json_from(timeout=5)
        board_welcome = await board.receive_json_from(timeout=5)
        for socket in (desk, late, board):
            await socket.disconnect()
        return welcome, got, late_welcome, board_welcome

    welcome, got, late_welcome, board_welcome = async_to_sync(scenario)()
    start = welcome["seq"][desk_stream]
    assert welcome["type"] == "welcome" and set(welcome["seq"]) == {desk_stream}
    assert [(m["stream"], m["seq"]) for m in got] == [(desk_stream, start + 1), (desk_stream, start + 2),
                                                      (desk_stream, start + 3)]
    assert late_welcome["seq"] == {desk_stream: start + 3}
    assert board_welcome["seq"][WALLBOARD] >= 1  # the alarm was pushed there, counted on its own stream


def test_the_wallboard_queue_state_keeps_the_seq_of_the_hint_it_replaces():
    make_queue("billing")
    boss = get_user_model().objects.create_user(username="boss", password="x", is_staff=True)

    async def scenario():
        board, _, _ = await connect("/ws/wallboard/", boss, welcome=False)
        start = (await board.receive_json_from(timeout=5))["seq"][WALLBOARD]
        await sync_to_async(_sent)(notify([(WALLBOARD, {"type": "routing.queue", "queue": "billing"})]))
        update = await board.receive_json_from(timeout=5)
        await board.disconnect()
        return start, update

    start, update = async_to_sync(scenario)()
    assert update["type"] == "routing.queue" and update["waiting"] == 0  # the state, read by the consumer
    assert (update["stream"], update["seq"]) == (WALLBOARD, start + 1)


def test_a_lost_push_is_a_gap_the_client_sees_and_rest_gives_the_truth():
    """An offer is made while its push is lost (numbered, never delivered: as when a send fails or the channel
    layer drops a message for a socket over its capacity). The next push shows the gap; the client follows the
    contract (the simulator's agent, our Python client) and reads its offers over REST, which has the offer."""
    make_queue("billing")
    ann = make_agent("ann", capacity={"chat": 2})
    first, second = make_waiting("billing"), make_waiting("billing")
    apply_envelopes(get_projection("customers.directory"), store.read_all(limit=10_000))
    stream = agent_group(ann.pk)

    async def scenario():
        desk, _, _ = await connect("/ws/agent/", ann.user, welcome=False)
        last = dict((await desk.receive_json_from(timeout=5))["seq"])
        await sync_to_async(services.work_route)(interaction_id=uuid.UUID(first))
        offer = await desk.receive_json_from(timeout=5)
        seen_gap_on_first = Simulation._gap(last, offer)
        # The second offer happens, but its push is lost on the way: its number is taken, nothing arrives.
        layer = get_channel_layer()
        lost = await seq_reserve(layer, stream, 1)
        await sync_to_async(_offer_quietly)(second, "ann")
        # The next push (a presence change) arrives with the seq after the lost one.
        presence = {"type": "routing.presence", "agent_id": "ann", "presence": "available", "reason": "", "since": ""}
        await sync_to_async(_sent)(notify([(stream, presence)]))
        after = await desk.receive_json_from(timeout=5)
        nothing_else = await desk.receive_nothing(timeout=0.3)
        await desk.disconnect()
        return offer, seen_gap_on_first, lost, after, Simulation._gap(last, after), nothing_else

    offer, seen_gap_on_first, lost, after, gap, nothing_else = async_to_sync(scenario)()
    assert offer["type"] == "routing.offer" and not seen_gap_on_first
    assert lost == offer["seq"] + 1 and after["seq"] == lost + 1 and nothing_else
    assert gap  # the client sees it: seq jumped over the lost one
    # The resync the contract names for the desk (the welcome's "resync"): REST has both offers.
    listed = client_for(ann.user).get("/api/v1/interactions/", {"agent_id": "ann", "status": "offered"}).json()
    assert {it["id"] for it in listed["results"]} == {first, second}


def _offer_quietly(interaction_id: str, agent_id: str) -> None:
    """The offer made by routing, with its pushes lost (they are sent after commit; here they never leave)."""
    from django.db import transaction

    from routing import realtime

    sent, realtime.push_after_commit = realtime.push_after_commit, lambda messages_fn: None
    try:
        with transaction.atomic():
            services.work_route(interaction_id=uuid.UUID(interaction_id))
    finally:
        realtime.push_after_commit = sent
    assert Agent.objects.filter(user__username=agent_id).exists()


def test_the_timeline_stream_numbers_its_pushes_and_counts_from_the_welcome(staff):
    customer = uuid.uuid4()
    stream = timeline_group(customer)

    async def scenario():
        socket, _, _ = await connect(f"/ws/customers/{customer}/timeline/", staff, welcome=False)
        welcome = await socket.receive_json_from(timeout=5)
        layer = get_channel_layer()
        for position in (5, 6):
            await sync_to_async(_sent)(notify([(stream, {"type": "timeline.changed", "customer_id": str(customer),
                                                         "position": position, "event_type": "x"})]))
        pushes = [await socket.receive_json_from(timeout=5) for _ in range(2)]
        now = await seq_current(layer, stream)
        await socket.disconnect()
        return welcome, pushes, now

    welcome, pushes, now = async_to_sync(scenario)()
    assert welcome["seq"] == {stream: 0} and welcome["resync"] == [f"/api/v1/customers/{customer}/timeline/"]
    assert [(p["seq"], p["position"]) for p in pushes] == [(1, 5), (2, 6)] and now == 2


# --- the pages ----------------------------------------------------------------------------------------------


def test_the_wallboard_page_resyncs_over_rest_when_it_sees_a_gap(web, browser):  # noqa: F811
    """A presence change whose push is lost: the wallboard shows the old presence until the next push reveals the
    gap, then reads everything over REST and shows the truth."""
    from playwright.sync_api import expect

    make_queue("billing")
    make_agent("ann")
    boss = get_user_model().objects.create_user(username="boss", password="boss", is_staff=True)
    assert boss
    board = sign_in(browser, web, "boss", "/wallboard/")
    expect(board.get_by_test_id("presence-ann")).to_have_text("available")
    status = board.get_by_test_id("socket")
    expect(status).to_have_attribute("data-resyncs", "1")  # the welcome's
    # Changed in the database with its push lost (its number taken, nothing sent).
    Agent.objects.filter(user__username="ann").update(presence="break")
    _lose_one(WALLBOARD)
    board.wait_for_timeout(300)
    expect(board.get_by_test_id("presence-ann")).to_have_text("available")  # the page cannot know yet
    # The next push on the stream (an alarm about another queue) shows the gap: the page reads REST.
    _sent(notify([(WALLBOARD, {"type": "routing.alarm", "queue": "elsewhere", "longest_wait_seconds": 1,
                               "service_level_seconds": 1})]))
    expect(board.get_by_test_id("presence-ann")).to_have_text("break")
    expect(status).to_have_attribute("data-gaps", "1")
    expect(status).to_have_attribute("data-resyncs", "2")
    expect(status).to_have_text("live")


def test_the_desk_page_finds_an_offer_whose_push_was_lost(web, browser):  # noqa: F811
    """The desk resyncs on a gap too: an offer made while its push was lost shows up after the next push."""
    from playwright.sync_api import expect

    make_queue("billing")
    ann = make_agent("ann")
    ann.user.set_password("ann")
    ann.user.save()
    iid = make_waiting("billing")
    desk = sign_in(browser, web, "ann", "/desk/")
    expect(desk.get_by_test_id("socket")).to_have_attribute("data-resyncs", "1")
    desk.wait_for_load_state("networkidle")  # the welcome's resync has read REST (counted when it starts)
    _lose_one(agent_group(ann.pk))
    _offer_quietly(iid, "ann")
    desk.wait_for_timeout(300)
    expect(desk.get_by_test_id("offer")).to_have_count(0)
    presence = {"type": "routing.presence", "agent_id": "ann", "presence": "available", "reason": "", "since": ""}
    _sent(notify([(agent_group(ann.pk), presence)]))
    expect(desk.get_by_test_id("offer")).to_have_count(1)
    expect(desk.get_by_test_id("socket")).to_have_attribute("data-gaps", "1")
