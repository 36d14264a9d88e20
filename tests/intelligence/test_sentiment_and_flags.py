"""Every inbound text scored as it arrives, red flags with their evidence, and what a flag changes."""

import uuid

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth import get_user_model

from events import store
from events.projection import apply_envelopes
from events.projection import get as get_projection
from events.store import Metadata
from intelligence.models import FlagPolicy, FlagTerm, Mood
from interactions import services as interaction_services
from routing import services as routing_services
from routing.models import Work
from tests.routing.factories import make_agent, make_queue, make_waiting
from tests.routing.test_realtime import connect

pytestmark = pytest.mark.django_db(transaction=True)
M = Metadata()


@pytest.fixture
def terms(settings):
    settings.SENTIMENT_FLAG_THRESHOLD = -1.0  # only the test about it raises negative-sentiment flags
    FlagTerm.objects.all().delete()
    FlagPolicy.objects.all().delete()
    FlagTerm.objects.bulk_create([FlagTerm(term="idiot", kind="abuse"), FlagTerm(term="cancel my account",
                                                                                  kind="churn")])
    FlagPolicy.objects.create(kind="abuse", priority_boost=0, alert_supervisors=True)
    FlagPolicy.objects.create(kind="churn", priority_boost=25, alert_supervisors=False)
    make_queue("billing")


def say(iid, body, direction="inbound"):
    return interaction_services.message_record(interaction_id=iid, direction=direction, body=body, meta=M)


def events_of(iid):
    return [(e.event_type.split(".")[1], e.data) for e in store.read_stream(uuid.UUID(str(iid)))]


def test_each_inbound_text_is_scored_with_the_message_and_the_running_sentiment_follows(terms, settings):
    settings.SENTIMENT_WEIGHT, settings.SENTIMENT_FLAG_THRESHOLD = 0.5, -1.0  # no negative-sentiment flag here
    iid = make_waiting("billing")
    first = say(iid, "Thanks, that is great, really helpful!")
    say(iid, "Happy to help", direction="outbound")  # the agent's words are not scored
    say(iid, "Actually this is terrible and I am very angry")
    history = events_of(iid)
    kinds = [k for k, _ in history]
    assert kinds[-5:] == ["MessageRecorded", "SentimentScored", "MessageRecorded", "MessageRecorded",
                          "SentimentScored"]
    # Recorded together: the score is in the same append as the message it is about.
    assert first.positions[-1] - first.positions[0] == 1
    good, bad = [d for k, d in history if k == "SentimentScored"]
    assert good["compound"] > 0.5 and bad["compound"] < -0.5
    assert good["running"] == good["compound"] and bad["texts"] == 2
    assert bad["running"] == pytest.approx((good["compound"] + bad["compound"]) / 2, abs=1e-3)
    mood = Mood.objects.get(interaction_id=iid)
    assert (mood.texts, mood.running, mood.lowest) == (2, bad["running"], bad["compound"])


def test_a_flag_term_raises_a_red_flag_once_with_its_evidence_and_alerts_the_supervisors(terms):
    boss = get_user_model().objects.create_user(username="boss", password="x", is_staff=True)
    iid = make_waiting("billing")

    async def scenario():
        board, ok, _ = await connect("/ws/wallboard/", boss)
        assert ok
        await sync_to_async(say)(iid, "You are an IDIOT, my card is 4111 1111 1111 1111")
        frames = [await board.receive_json_from(timeout=5)]
        while frames[-1].get("type") != "intelligence.flag":  # a queue push may come first (no order between them)
            frames.append(await board.receive_json_from(timeout=5))
        await sync_to_async(say)(iid, "idiot idiot")  # the same kind again: no second flag, no second alert
        later = []  # other wallboard pushes may come (the queue's figures): only a second alert is wrong
        while not await board.receive_nothing(timeout=1):
            later.append(await board.receive_json_from(timeout=1))
        assert not [f for f in later if f.get("type") == "intelligence.flag"], later
        await board.disconnect()
        return frames

    alert = async_to_sync(scenario)()[-1]
    assert alert["type"] == "intelligence.flag" and alert["kind"] == "abuse" and alert["interaction_id"] == iid
    flags = [d for k, d in events_of(iid) if k == "RedFlagRaised"]
    assert len(flags) == 1 and flags[0]["kind"] == "abuse" and flags[0]["term"] == "idiot"
    assert "IDIOT" in flags[0]["evidence"] and "[card ****1111]" in flags[0]["evidence"]  # masked like the text
    assert "4111 1111" not in flags[0]["evidence"]
    assert flags[0]["effects"] == ["supervisors alerted"]
    assert Mood.objects.get(interaction_id=iid).flags == ["abuse"]


def test_a_flag_with_a_priority_boost_moves_the_waiting_interaction_ahead(terms):
    first, second = make_waiting("billing"), make_waiting("billing")
    before = Work.objects.get(interaction_id=second).priority
    say(second, "I want to cancel my account today")
    work = Work.objects.get(interaction_id=second)
    assert (work.priority, work.flag_boost) == (before + 25, 25)
    flag = [d for k, d in events_of(second) if k == "RedFlagRaised"][0]
    assert (flag["kind"], flag["priority_boost"], flag["effects"]) == ("churn", 25, ["priority +25"])
    make_agent("ann", capacity={"chat": 1})
    routing_services.dispatch()
    assert Work.objects.get(interaction_id=second).agent_id == "ann"  # the later one, flagged, goes first
    assert Work.objects.get(interaction_id=first).status == Work.WAITING


def test_sharply_negative_text_is_a_flag_and_a_new_term_applies_at_once(terms, settings):
    settings.SENTIMENT_FLAG_THRESHOLD = -0.6
    iid = make_waiting("billing")
    say(iid, "This is awful, horrible, the worst service ever and I hate it")
    say(iid, "I will go to Acme instead")
    assert [d["kind"] for k, d in events_of(iid) if k == "RedFlagRaised"] == ["negative_sentiment"]
    FlagTerm.objects.create(term="Acme", kind="competitor")  # added in the admin
    say(iid, "Acme is cheaper")
    flags = [d for k, d in events_of(iid) if k == "RedFlagRaised"]
    assert [f["kind"] for f in flags] == ["negative_sentiment", "competitor"] and flags[1]["effects"] == []


def test_the_customer_context_shows_the_sentiment_trend(terms):
    from customers.selectors import customer_context
    from interactions.models import Interaction

    customer = None
    for text in ("great, thanks", "lovely, perfect", "fine thanks", "this is bad", "terrible, awful",
                 "horrible and useless"):
        iid = make_waiting("billing") if customer is None else str(interaction_services.interaction_create(
            channel="chat", direction="inbound", meta=M, customer_id=customer, queue="billing").interaction.id)
        customer = Interaction.objects.get(id=iid).customer_id
        say(iid, text)
    apply_envelopes(get_projection("customers.directory"), store.read_all(limit=10_000))
    trend = customer_context(customer).sentiment
    assert trend["trend"] == "declining" and len(trend["interactions"]) == 6
    assert trend["latest"] < 0 < trend["interactions"][0]["running"]
