"""Call transcripts scored and masked; red flags from the customer's history; the de-escalation skill preferred;
the mood on the API and on the agent's socket."""

import datetime as dt
import uuid

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from events import store
from events.store import Metadata
from intelligence.models import FlagPolicy, Mood
from interactions import services as interaction_services
from interactions.models import Interaction
from quality.models import Survey
from routing import domain as rdomain
from routing import services as routing_services
from routing.models import Work
from tests.interactions.test_webhooks import (
    call,
    ok,
    secrets,  # noqa: F401  (the signing secrets fixture)
)
from tests.routing.factories import make_agent, make_queue, make_waiting
from tests.routing.test_realtime import connect

pytestmark = pytest.mark.django_db(transaction=True)
M = Metadata()


@pytest.fixture(autouse=True)
def seeded():
    """The word list and policies the migrations seed (a transactional test's flush removed them)."""
    import importlib

    from django.apps import apps

    for name in ("0002_default_terms_and_policies", "0003_flags_prefer_skill"):
        importlib.import_module(f"intelligence.migrations.{name}").seed(apps, None)


def events_of(iid):
    return [(e.event_type.split(".")[1], e.data) for e in store.read_stream(uuid.UUID(str(iid)))]


def flags_of(iid):
    return [d for k, d in events_of(iid) if k == "RedFlagRaised"]


def again(customer_id, queue="billing"):
    """Another inbound chat from the same customer."""
    return str(interaction_services.interaction_create(channel="chat", direction="inbound", meta=M,
                                                       customer_id=customer_id, queue=queue).interaction.id)


# --- transcripts ------------------------------------------------------------------------------------------

def test_a_call_transcript_is_masked_and_the_customer_s_segments_are_scored_and_flagged(settings):
    settings.SENTIMENT_FLAG_THRESHOLD = -0.6
    make_queue("support")
    it = ok("voice", call("ringing", "tc-1", agent_id="agent1", queue="support",
                          **{"from": {"kind": "phone", "value": "+1 415 555 0199"}}))["interaction"]
    ok("voice", call("answered", "tc-1"))
    ok("voice", call("transcript", "tc-1", speaker="agent", body="Thanks for calling, how can I help?",
                     offset_seconds=1.5))
    ok("voice", call("transcript", "tc-1", speaker="customer", offset_seconds=4,
                     body="You idiot, this is the worst service. My card is 4111 1111 1111 1111 and cvv 123"))
    history = events_of(it["id"])
    segments = [d for k, d in history if k == "TranscriptSegmentRecorded"]
    assert [s["speaker"] for s in segments] == ["agent", "customer"] and segments[1]["offset_seconds"] == 4
    assert "4111" not in segments[1]["text"] and "[card ****1111]" in segments[1]["text"]
    assert "123" not in segments[1]["text"].replace("****1111", "")
    scores = [d for k, d in history if k == "SentimentScored"]
    assert len(scores) == 1 and scores[0]["source"] == "transcript" and scores[0]["compound"] < -0.6
    assert {f["kind"] for f in flags_of(it["id"])} == {"abuse", "negative_sentiment"}
    # The raw words never reached the event store.
    assert not any("4111 1111" in str(d) for _, d in history)


def test_a_transcript_needs_a_speaker_and_text_and_a_connected_call():
    make_queue("support")
    ok("voice", call("ringing", "tc-2", queue="support", **{"from": {"kind": "phone", "value": "+1 415 555 0198"}}))
    refused = ok("voice", call("transcript", "tc-2", speaker="customer", body="hello"), status=409)
    assert "transcript" in refused["detail"]
    ok("voice", call("answered", "tc-2", agent_id="agent1"))
    assert ok("voice", call("transcript", "tc-2", body="hello"), status=400)["field"] == "speaker"
    assert "speaker" in ok("voice", call("transcript", "tc-2", speaker="caller", body="hi"), status=400)
    assert ok("voice", call("transcript", "tc-2", speaker="customer", body="  "), status=400)["field"] == "body"
    assert [k for k, _ in events_of(Interaction.objects.get().id)].count("TranscriptSegmentRecorded") == 0


# --- history flags ------------------------------------------------------------------------------------------

def test_coming_back_while_an_earlier_contact_is_unresolved_is_a_repeat_contact_flag():
    make_queue("billing")
    first = make_waiting("billing")
    customer = Interaction.objects.get(id=first).customer_id
    assert flags_of(first) == []  # a first contact is no repeat
    second = again(customer)
    flag = flags_of(second)[0]
    assert flag["kind"] == "repeat_contact" and "1 earlier contact(s) in 7 days not resolved" in flag["evidence"]
    assert flag["priority_boost"] == FlagPolicy.objects.get(kind="repeat_contact").priority_boost > 0
    work = Work.objects.get(interaction_id=second)
    assert work.flag_boost == flag["priority_boost"]


def test_a_resolved_earlier_contact_is_no_repeat_but_a_reopened_matter_is(settings):
    make_queue("billing")
    make_agent("ann", capacity={"chat": 2, "email": 2})
    first = make_waiting("billing")
    customer = Interaction.objects.get(id=first).customer_id
    routing_services.dispatch()
    interaction_services.interaction_accept(interaction_id=first, agent_id="ann", meta=M)
    interaction_services.interaction_end(interaction_id=first, reason="resolved", meta=M)
    interaction_services.interaction_wrap_up(interaction_id=first, disposition="fixed", meta=M)
    assert [f["kind"] for f in flags_of(again(customer))] == []
    interaction_services.interaction_reopen(interaction_id=first, reason="customer replied", meta=M)
    flag = [f for f in flags_of(first) if f["kind"] == "repeat_contact"][0]
    assert flag["evidence"] == "the customer came back on a matter closed as resolved"


def test_a_frequent_customer_back_after_a_long_silence_and_a_falling_csat_are_declining_engagement(settings):
    settings.REPEAT_FLAG_DAYS = 0  # only engagement here
    make_queue("billing")
    first = make_waiting("billing")
    customer = Interaction.objects.get(id=first).customer_id
    for _ in range(3):
        again(customer)
    now = timezone.now()
    # Four contacts a week apart, the last 60 days ago.
    for n, iid in enumerate(Interaction.objects.filter(customer_id=customer).order_by("created_at")):
        Interaction.objects.filter(id=iid.id).update(created_at=now - dt.timedelta(days=60 + 7 * (3 - n)))
    back = again(customer)
    flag = flags_of(back)[0]
    assert flag["kind"] == "declining_engagement"
    assert flag["evidence"] == "4 earlier contacts, usually 7.0 days apart, then none for 60 days"
    assert Work.objects.get(interaction_id=back).flag_boost == FlagPolicy.objects.get(
        kind="declining_engagement").priority_boost

    # A customer contacting as usual raises nothing; one whose CSAT fell does.
    other = make_waiting("billing")
    someone = Interaction.objects.get(id=other).customer_id
    for csat, days in ((5, 20), (4, 10), (2, 1)):
        Survey.objects.create(id=uuid.uuid4(), interaction_id=uuid.uuid4(), customer_id=someone, agent_id="ann",
                              channel="chat", kind="csat", outbound_interaction_id=uuid.uuid4(), sent_at=now,
                              answered_at=now - dt.timedelta(days=days), csat=csat)
    flag = flags_of(again(someone))[0]
    assert flag["evidence"] == "CSAT fell to 2 from an average of 4.5 over 2 earlier answer(s)"


# --- de-escalation skill -----------------------------------------------------------------------------------

def test_a_hostile_contact_prefers_the_agent_skilled_in_de_escalation():
    make_queue("billing", skills={"billing": 1}, repeat_boost=0)
    make_agent("ann", skills={"billing": 5}, capacity={"chat": 1})  # the best biller
    make_agent("bob", skills={"billing": 3, "deescalation": 4}, capacity={"chat": 1})
    calm, hostile = make_waiting("billing"), make_waiting("billing")
    interaction_services.message_record(interaction_id=hostile, direction="inbound", meta=M,
                                        body="You useless idiot, sort this out")
    work = Work.objects.get(interaction_id=hostile)
    assert work.prefer_skill == "deescalation"
    flag = [f for f in flags_of(hostile) if f["kind"] == "abuse"][0]
    assert flag["prefer_skill"] == "deescalation" and "prefers agents skilled in deescalation" in flag["effects"]
    routing_services.dispatch()
    assert Work.objects.get(interaction_id=hostile).agent_id == "bob"  # 3 + 2 x 4 beats 5
    assert Work.objects.get(interaction_id=calm).agent_id == "ann"
    routed = [d for k, d in events_of(hostile) if k == "InteractionRouted"]
    assert routed and "deescalation 4 (red flag)" in str(routed[-1])


def test_the_skill_bonus_counts_only_for_eligible_agents():
    policy = rdomain.QueuePolicy("q", skills={"billing": 3})
    work = rdomain.WaitingView("i", "chat", "q", timezone.now(), prefer_skill="deescalation")
    base = dict(presence=rdomain.AVAILABLE, capacity={"chat": 1}, load={}, languages=())
    good = rdomain.AgentView("a", skills={"billing": 3, "deescalation": 5}, **base)
    unqualified = rdomain.AgentView("b", skills={"billing": 1, "deescalation": 5}, **base)
    step = (0, 0, False)
    assert rdomain.evaluate(policy, work, good, step=step).score == 3 + rdomain.PREFER_SKILL_BONUS * 5
    assert not rdomain.evaluate(policy, work, unqualified, step=step).eligible


# --- the mood on the API and the agent's socket -----------------------------------------------------------

def test_the_mood_is_for_the_agent_handling_it_and_supervisors_and_the_agent_is_told_of_flags_live(settings):
    settings.SENTIMENT_FLAG_THRESHOLD = -1.0  # the words' flags only
    make_queue("billing")
    ann = make_agent("ann", capacity={"chat": 1})
    bob = make_agent("bob", capacity={"chat": 0})
    boss = get_user_model().objects.create_user(username="boss", password="x", is_staff=True)
    iid = make_waiting("billing")
    routing_services.dispatch()
    interaction_services.interaction_accept(interaction_id=iid, agent_id="ann", meta=M)

    async def scenario():
        desk, connected, _ = await connect("/ws/agent/", ann.user)
        assert connected
        await sync_to_async(interaction_services.message_record)(
            interaction_id=iid, direction="inbound", meta=M, body="I am going to cancel my account, you idiot")
        frames = [await desk.receive_json_from(timeout=5) for _ in range(2)]
        await desk.disconnect()
        return frames

    frames = async_to_sync(scenario)()
    assert {(f["type"], f["kind"]) for f in frames} == {("intelligence.flag", "churn"), ("intelligence.flag", "abuse")}
    assert all(f["interaction_id"] == iid for f in frames)

    def mood(user):
        client = APIClient()
        client.force_authenticate(user)
        return client.get(f"/api/v1/interactions/{iid}/mood/")

    mine = mood(ann.user)
    assert mine.status_code == 200 and set(mine.json()["flags"]) == {"churn", "abuse"}
    assert mine.json()["running"] == Mood.objects.get(interaction_id=iid).running < 0
    assert mood(boss).status_code == 200
    assert mood(bob.user).status_code == 404  # another agent: existence does not leak
    assert APIClient().get(f"/api/v1/interactions/{iid}/mood/").status_code in (401, 403)


def test_the_daily_sweep_flags_a_frequent_customer_who_went_silent_once():
    from django.contrib.auth import get_user_model

    from intelligence import services as intelligence_services
    from intelligence.models import EngagementAlert

    make_queue("billing")
    boss = get_user_model().objects.create_user(username="boss", password="x", is_staff=True)
    now = timezone.now()
    regular = Interaction.objects.get(id=make_waiting("billing")).customer_id
    occasional = Interaction.objects.get(id=make_waiting("billing")).customer_id
    for _ in range(3):
        again(regular)
        again(occasional)
    for customer, every, last in ((regular, 5, 45), (occasional, 40, 45)):  # days apart, days since the last
        for n, row in enumerate(Interaction.objects.filter(customer_id=customer).order_by("created_at")):
            Interaction.objects.filter(id=row.id).update(created_at=now - dt.timedelta(days=last + every * (3 - n)))

    async def scenario():
        board, connected, _ = await connect("/ws/wallboard/", boss)
        assert connected
        flagged = await sync_to_async(intelligence_services.engagement_sweep)(now=now)
        frame = await board.receive_json_from(timeout=5)
        await board.disconnect()
        return flagged, frame

    flagged, frame = async_to_sync(scenario)()
    assert flagged == 1  # the occasional customer's 45 days is near their usual 40: no flag
    assert frame["kind"] == "declining_engagement" and frame["customer_id"] == str(regular)
    alert = EngagementAlert.objects.get()
    event = store.read_stream(alert.id)[0]
    assert event.event_type == "intelligence.EngagementDeclined" and event.customer_id == regular
    assert (event.data["contacts"], event.data["usual_gap_days"], event.data["silent_days"]) == (4, 5.0, 45.0)
    assert intelligence_services.engagement_sweep(now=now) == 0  # once per silence
