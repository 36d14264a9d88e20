"""Routing against the real database: offers, capacity, accept/decline/timeout, races, presence."""

import datetime as dt
import threading
import uuid

import pytest
from django.db import connection
from django.utils import timezone

from events import store
from events.store import Metadata
from interactions import services as interaction_services
from interactions.models import Interaction
from routing import services
from routing.models import Agent, Work
from tests.routing.factories import make_agent, make_queue, make_waiting

pytestmark = pytest.mark.django_db(transaction=True)


def status(interaction_id):
    row = Interaction.objects.get(id=interaction_id)
    return row.status, row.agent_id


def test_a_queued_interaction_is_offered_to_the_best_qualified_agent_with_the_reason_recorded():
    make_queue("billing", skills={"billing": 3})
    make_agent("ann", skills={"billing": 3})
    make_agent("bob", skills={"billing": 5})
    make_agent("cid", skills={"support": 5})
    iid = make_waiting("billing")
    assert Work.objects.get(interaction_id=iid).status == Work.WAITING  # kept in step by the hook
    decision = services.work_route(interaction_id=uuid.UUID(iid))
    assert decision.agent_id == "bob" and status(iid) == ("offered", "bob")
    events = store.read_stream(uuid.UUID(iid))
    routed, offered = events[-2:]
    assert (routed.event_type, offered.event_type) == ("routing.InteractionRouted", "interactions.InteractionOffered")
    assert routed.data["agent_id"] == "bob" and routed.data["side"] == "interaction"
    why = routed.data["explanation"]
    assert why["available"] == 3 and why["considered"] == 2  # cid (no billing) was never a candidate
    scores = {c["agent_id"]: (c["score"], c["reasons"]) for c in why["candidates"]}
    assert scores == {"bob": (5.0, ["billing 5"]), "ann": (3.0, ["billing 3"])}
    work = Work.objects.get(interaction_id=iid)
    assert (work.status, work.agent_id) == (Work.OFFERED, "bob") and work.offer_expires_at > timezone.now()
    assert services.work_route(interaction_id=uuid.UUID(iid)) is None  # run twice: nothing more


def test_nobody_qualified_waits_and_an_agent_who_becomes_free_takes_the_most_urgent_work():
    make_queue("billing", skills={"billing": 3}, vip_boost=10)
    make_queue("sales", skills={"sales": 1}, priority=5)
    first, second = make_waiting("billing"), make_waiting("billing")
    urgent = make_waiting("sales")
    assert services.work_route(interaction_id=uuid.UUID(first)).agent_id is None
    assert status(first) == ("queued", None)
    make_agent("ann", skills={"billing": 4, "sales": 2}, presence="offline", capacity={"chat": 2})
    services.agent_presence_set(agent_id="ann", presence="available")
    offered = services.agent_route(agent_id="ann")
    assert offered == [urgent, first]  # higher priority first, then longest waiting; two free chat slots
    assert status(second) == ("queued", None)
    assert services.agent_route(agent_id="ann") == []  # full: idempotent


def test_accept_decline_and_timeout():
    make_queue("billing", skills={"billing": 1}, offer_timeout_seconds=10, max_missed_offers=2)
    make_agent("ann", skills={"billing": 5})
    make_agent("bob", skills={"billing": 4})
    iid = make_waiting("billing")
    services.work_route(interaction_id=uuid.UUID(iid))
    interaction_services.interaction_decline(interaction_id=iid, agent_id="ann", reason="rejected", meta=Metadata())
    assert Work.objects.get(interaction_id=iid).declined_by == ["ann"]
    assert services.work_route(interaction_id=uuid.UUID(iid)).agent_id == "bob"  # not ann again
    assert not services.offer_expire(interaction_id=uuid.UUID(iid))  # not yet due
    later = timezone.now() + dt.timedelta(seconds=11)
    assert services.offer_expire(interaction_id=uuid.UUID(iid), now=later)
    assert status(iid) == ("queued", None) and Agent.objects.get(user__username="bob").missed_offers == 1
    assert not services.offer_expire(interaction_id=uuid.UUID(iid), now=later)  # run twice: nothing more
    declined = [e.data for e in store.read_stream(uuid.UUID(iid)) if e.event_type == "interactions.OfferDeclined"]
    assert declined == [{"agent_id": "ann", "reason": "rejected"}, {"agent_id": "bob", "reason": "timeout"}]


def test_an_agent_who_misses_too_many_offers_is_set_on_a_break():
    make_queue("billing", offer_timeout_seconds=5, max_missed_offers=2)
    make_agent("ann", capacity={"chat": 1})
    later = timezone.now() + dt.timedelta(seconds=6)
    for _ in range(2):
        iid = make_waiting("billing")
        assert services.work_route(interaction_id=uuid.UUID(iid)).agent_id == "ann"
        assert services.offer_expire(interaction_id=uuid.UUID(iid), now=later)
        Work.objects.filter(interaction_id=iid).update(declined_by=["ann"])  # leave ann free for the next one
    ann = Agent.objects.get(user__username="ann")
    assert (ann.presence, ann.presence_reason) == ("break", "missed offers")


def test_an_agent_going_offline_with_an_offer_has_it_rerouted_at_once():
    make_queue("billing")
    make_agent("ann", skills={"x": 5})
    iid = make_waiting("billing")
    assert services.work_route(interaction_id=uuid.UUID(iid)).agent_id == "ann"
    services.agent_presence_set(agent_id="ann", presence="offline", reason="end of shift")
    assert status(iid) == ("queued", None)
    make_agent("bob")
    assert services.work_route(interaction_id=uuid.UUID(iid)).agent_id == "bob"
    presence = [e.data for e in store.read_all() if e.event_type == "routing.AgentPresenceChanged"]
    assert presence == [{"agent_id": "ann", "presence": "offline", "reason": "end of shift"}]


def test_abandoned_and_finished_work_frees_the_slot():
    make_queue("billing")
    make_agent("ann", capacity={"chat": 1})
    first, second = make_waiting("billing"), make_waiting("billing")
    services.work_route(interaction_id=uuid.UUID(first))
    assert services.work_route(interaction_id=uuid.UUID(second)).agent_id is None  # ann is full
    interaction_services.interaction_abandon(interaction_id=second, meta=Metadata())
    assert not Work.objects.filter(interaction_id=second).exists()
    interaction_services.interaction_accept(interaction_id=first, agent_id="ann", meta=Metadata())
    assert Work.objects.get(interaction_id=first).status == Work.ASSIGNED
    third = make_waiting("billing")
    assert services.work_route(interaction_id=uuid.UUID(third)).agent_id is None
    interaction_services.interaction_end(interaction_id=first, reason="resolved", meta=Metadata())
    interaction_services.interaction_wrap_up(interaction_id=first, disposition="done", meta=Metadata())
    assert not Work.objects.filter(interaction_id=first).exists()
    assert services.work_route(interaction_id=uuid.UUID(third)).agent_id == "ann"


def test_racing_workers_never_exceed_capacity_nor_offer_one_interaction_twice():
    make_queue("billing")
    for name in ("ann", "bob", "cid"):
        make_agent(name, capacity={"chat": 2})
    waiting = [make_waiting("billing") for _ in range(12)]
    errors = []

    def worker(ids):
        try:
            for iid in ids:
                services.work_route(interaction_id=uuid.UUID(iid))
                services.dispatch(limit=2)
            for name in ("ann", "bob", "cid"):
                services.agent_route(agent_id=name)
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(waiting[k::2] + waiting,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    offered = [e for e in store.read_all(limit=100_000) if e.event_type == "interactions.InteractionOffered"]
    assert len(offered) == 6 == len({e.stream_id for e in offered})  # 3 agents x 2 slots, each interaction once
    per_agent = {}
    for e in offered:
        per_agent[e.data["agent_id"]] = per_agent.get(e.data["agent_id"], 0) + 1
    assert per_agent == {"ann": 2, "bob": 2, "cid": 2}
    assert Work.objects.filter(status=Work.WAITING).count() == 6


def test_one_dispatch_pass_offers_a_batch_most_urgent_first_within_capacity():
    make_queue("billing", skills={"billing": 1}, vip_boost=10)
    make_queue("sales", skills={"sales": 1}, priority=5)
    make_agent("ann", skills={"billing": 5, "sales": 1}, capacity={"chat": 2})
    make_agent("bob", skills={"billing": 2}, capacity={"chat": 2, "email": 1})
    billing = [make_waiting("billing") for _ in range(5)]
    sale = make_waiting("sales")
    email = make_waiting("billing", channel="email")
    result = services.dispatch()
    offered = dict(result.offered)
    # sales first (priority 5), then billing by waiting time; ann (billing 5) takes the first billing chat
    assert [str(i) for i, _ in result.offered] == [sale, billing[0], billing[1], billing[2], email]
    assert offered[uuid.UUID(sale)] == "ann" and offered[uuid.UUID(billing[0])] == "ann"
    assert {offered[uuid.UUID(billing[1])], offered[uuid.UUID(billing[2])]} == {"bob"}
    assert offered[uuid.UUID(email)] == "bob"
    assert [status(i)[0] for i in billing[3:]] == ["queued", "queued"]  # every chat slot is taken
    for iid, agent in result.offered:
        routed, offer = store.read_stream(iid)[-2:]
        assert routed.data["agent_id"] == offer.data["agent_id"] == agent
        assert routed.recorded_at == offer.recorded_at  # decided and offered in one transaction
    assert services.dispatch().offered == []  # nothing fits any more: idempotent
    loads = {(w.agent_id, w.channel): 0 for w in Work.objects.exclude(agent_id=None)}
    for w in Work.objects.exclude(agent_id=None):
        loads[(w.agent_id, w.channel)] += 1
    assert loads == {("ann", "chat"): 2, ("bob", "chat"): 2, ("bob", "email"): 1}


def test_work_nobody_can_take_does_not_crowd_out_work_someone_can():
    make_queue("billing")
    make_queue("phones")
    make_agent("ann", capacity={"chat": 1, "voice": 0})
    calls = [make_waiting("phones", channel="voice") for _ in range(3)]  # nobody takes calls
    declined = make_waiting("billing")
    services.work_route(interaction_id=uuid.UUID(declined))
    interaction_services.interaction_decline(interaction_id=declined, agent_id="ann", reason="no", meta=Metadata())
    chat = make_waiting("billing")
    result = services.dispatch(limit=1)
    assert [(str(i), a) for i, a in result.offered] == [(chat, "ann")]  # not a call, not what ann declined
    assert all(status(c) == ("queued", None) for c in calls) and status(declined) == ("queued", None)


def test_vip_customers_and_repeat_contacts_wait_with_their_boosts():
    from customers import services as customer_services
    from events.projection import get as get_projection
    from events.replay import replay

    make_queue("billing", priority=1, vip_boost=10, repeat_boost=3)
    vip = customer_services.customer_register(display_name="Vera", meta=Metadata()).customer_id
    customer_services.customer_change_details(customer_id=vip, expected_version=1, meta=Metadata(), vip_tier="gold")
    replay(get_projection("customers.directory"), progress=False)  # the profile the boost reads
    first = interaction_services.interaction_create(channel="chat", direction="inbound", meta=Metadata(),
                                                    customer_id=vip, queue="billing").interaction
    again = interaction_services.interaction_create(channel="email", direction="inbound", meta=Metadata(),
                                                    customer_id=vip, case_id=first.case_id, queue="billing")
    plain = make_waiting("billing")
    priority = dict(Work.objects.values_list("interaction_id", "priority"))
    assert priority[first.id] == 11 and priority[again.interaction.id] == 14 and priority[uuid.UUID(plain)] == 1
    assert Work.objects.get(interaction_id=again.interaction.id).repeat


def test_routing_requests_coalesce_into_one_queued_dispatch_task():
    from contactcenter.celery import app

    def queued():
        with app.connection_for_write() as conn:
            return conn.default_channel.client.llen("routing")

    services.dispatch_requested_clear()
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("routing")
    make_queue("billing")
    make_waiting("billing")  # a request (nobody to route to; the task would find nothing)
    make_waiting("billing")
    services.agent_presence_set(agent_id=make_agent("ann", presence="offline").user.username, presence="available")
    assert queued() == 1  # three requests, one task waiting for a worker
    services.dispatch_requested_clear()  # what the task does first: a later request queues another
    make_waiting("billing")
    assert queued() == 2
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("routing")
    services.dispatch_requested_clear()


def test_the_cached_routing_configuration_follows_every_change_and_only_those():
    def version():
        with connection.cursor() as cur:
            cur.execute("SELECT n FROM routing_configversion")
            return cur.fetchone()[0]

    make_queue("billing", skills={"billing": 4})
    ann = make_agent("ann", skills={"billing": 2}, languages=["en"])
    first = make_waiting("billing")
    assert services.work_route(interaction_id=uuid.UUID(first)).agent_id is None
    before = version()
    services.agent_presence_set(agent_id="ann", presence="break")
    services.agent_presence_set(agent_id="ann", presence="available")
    assert version() == before  # presence is read on every pass; it does not reload the configuration
    with connection.cursor() as cur:  # a change made in SQL, behind Django's back, counts too
        cur.execute("UPDATE routing_agentskill SET proficiency = 4 WHERE agent_id = %s", [ann.pk])
    assert version() > before
    assert services.work_route(interaction_id=uuid.UUID(first)).agent_id == "ann"
    make_queue("german", language="de")
    second = make_waiting("german")
    assert services.work_route(interaction_id=uuid.UUID(second)).agent_id is None
    ann.languages = ["en", "de"]
    ann.save(update_fields=["languages"])
    assert services.work_route(interaction_id=uuid.UUID(second)).agent_id == "ann"


def test_the_demo_data_routes_a_chat_and_a_call_to_the_right_agent(capsys):
    from django.core.management import call_command

    call_command("seed_demo")
    call_command("seed_demo")  # safe to run again
    assert "demo agents: ann" in capsys.readouterr().out
    from quality.models import Scorecard

    assert list(Scorecard.objects.values_list("name", "version", "active")) == [("Contact quality", 1, True)]
    for name in ("ann", "bob"):
        services.agent_presence_set(agent_id=name, presence="available")
    chat, call = make_waiting("billing"), make_waiting("support", channel="voice")
    assert services.work_route(interaction_id=uuid.UUID(chat)).agent_id == "ann"
    assert services.work_route(interaction_id=uuid.UUID(call)).agent_id == "bob"


def test_overflow_after_waiting_keeps_the_customer_s_wait():
    make_queue("tier2")
    make_queue("billing", skills={"billing": 5}, overflow_queue_id="tier2", overflow_after_seconds=30)
    make_agent("ann", skills={"general": 3})
    iid = make_waiting("billing")
    enqueued = Work.objects.get(interaction_id=iid).enqueued_at
    assert services.sweep()["overflowed"] == 0 and status(iid) == ("queued", None)  # nobody qualifies; not yet due
    later = timezone.now() + dt.timedelta(seconds=31)
    result = services.sweep(now=later)
    assert result["overflowed"] == 1 and result["routed"] == 1
    assert status(iid) == ("offered", "ann")
    work = Work.objects.get(interaction_id=iid)
    assert work.queue == "tier2" and work.enqueued_at == enqueued
    kinds = [e.event_type for e in store.read_stream(uuid.UUID(iid))]
    assert kinds[-4:] == ["routing.InteractionOverflowed", "interactions.InteractionQueued",
                          "routing.InteractionRouted", "interactions.InteractionOffered"]
    overflow = [e.data for e in store.read_stream(uuid.UUID(iid)) if e.event_type == "routing.InteractionOverflowed"]
    assert overflow[0]["reason"] == "waited" and overflow[0]["to_queue"] == "tier2"


def test_a_closed_queue_overflows_at_once():
    from routing.domain import is_open

    make_queue("night")
    now = timezone.now()
    closed_hours = {"tz": "UTC", "from": (now + dt.timedelta(hours=1)).strftime("%H:%M"),
                    "to": (now + dt.timedelta(hours=2)).strftime("%H:%M")}
    assert not is_open(closed_hours, now)
    make_queue("billing", business_hours=closed_hours, overflow_queue_id="night")
    iid = make_waiting("billing")
    assert services.work_overflow(interaction_id=uuid.UUID(iid))
    assert Work.objects.get(interaction_id=iid).queue == "night"
    assert not services.work_overflow(interaction_id=uuid.UUID(iid))  # moved once


def test_a_call_that_ends_puts_the_agent_in_after_call_work_until_wrap_up_or_timeout(settings):
    make_queue("support")
    make_agent("bob")
    calls = [make_waiting("support", channel="voice") for _ in range(2)]
    for iid in calls:
        assert services.work_route(interaction_id=uuid.UUID(iid)).agent_id == "bob"
        interaction_services.interaction_accept(interaction_id=iid, agent_id="bob", meta=Metadata())
        interaction_services.interaction_end(interaction_id=iid, reason="resolved", meta=Metadata())
        bob = Agent.objects.get(user__username="bob")
        assert (bob.presence, bob.presence_reason) == ("after_call_work", "after call")
        if iid == calls[0]:
            interaction_services.interaction_wrap_up(interaction_id=iid, disposition="ok", meta=Metadata())
            assert Agent.objects.get(user__username="bob").presence == "available"
    settings.ROUTING_AFTER_CALL_SECONDS = 60
    assert services.sweep()["after_call_ended"] == 0
    assert services.sweep(now=timezone.now() + dt.timedelta(seconds=61))["after_call_ended"] == 1
    bob = Agent.objects.get(user__username="bob")
    assert (bob.presence, bob.presence_reason) == ("available", "after-call work timed out")


def test_the_candidate_search_honours_language_and_expanding_criteria():
    make_queue("de-billing", skills={"billing": 3}, language="de",
               expansion=[{"after_seconds": 30, "min_proficiency_delta": -1}])
    make_agent("ann", skills={"billing": 5}, languages=["en"])
    make_agent("jan", skills={"billing": 2}, languages=["de"])
    iid = make_waiting("de-billing")
    assert services.work_route(interaction_id=uuid.UUID(iid)).agent_id is None  # jan: billing 2 < 3; ann: no German
    later = timezone.now() + dt.timedelta(seconds=31)
    decision = services.work_route(interaction_id=uuid.UUID(iid), now=later)
    assert decision.agent_id == "jan" and decision.step == 1


def test_the_agent_states_projection_follows_presence_and_replay_equals_live():
    from events.projection import apply_envelopes
    from events.projection import get as get_projection
    from events.replay import replay
    from routing.models import AgentState

    make_agent("ann", presence="offline")
    for presence in ("available", "break", "available", "offline"):
        services.agent_presence_set(agent_id="ann", presence=presence, reason="x" if presence == "break" else "")
    projection = get_projection("routing.agent_states")
    events = store.read_all(limit=10_000)
    apply_envelopes(projection, events[:2])
    apply_envelopes(projection, events)  # overlapping redelivery: applied once
    live = list(AgentState.objects.values())
    assert [(s["agent_id"], s["presence"], s["changes"]) for s in live] == [("ann", "offline", 4)]
    replay(projection, progress=False)
    assert list(AgentState.objects.values()) == live


def test_work_waits_until_an_agent_s_skills_change_then_the_sweep_routes_it():
    from routing.models import AgentSkill, Skill

    make_queue("spanish", skills={"spanish": 3})
    ann = make_agent("ann", skills={"billing": 5})
    iid = make_waiting("spanish")
    assert services.sweep()["routed"] == 0 and status(iid) == ("queued", None)
    AgentSkill.objects.create(agent=ann, skill=Skill.objects.get_or_create(name="spanish")[0], proficiency=4)
    assert services.sweep()["routed"] == 1 and status(iid) == ("offered", "ann")


def test_the_preferred_agent_gets_the_customer_again_within_the_window():
    make_queue("billing", skills={"billing": 1}, preferred_agent_hours=24)
    make_agent("ann", skills={"billing": 2})
    make_agent("bob", skills={"billing": 5})
    first = make_waiting("billing", email="ada@example.com")
    interaction_services.interaction_offer(interaction_id=first, agent_id="ann", meta=Metadata())  # a manual offer
    interaction_services.interaction_accept(interaction_id=first, agent_id="ann", meta=Metadata())
    interaction_services.interaction_end(interaction_id=first, reason="resolved", meta=Metadata())
    interaction_services.interaction_wrap_up(interaction_id=first, disposition="ok", meta=Metadata())
    again = make_waiting("billing", email="ada@example.com")
    decision = services.work_route(interaction_id=uuid.UUID(again))
    assert decision.agent_id == "ann"  # 2 + preferred bonus 5 beats bob's 5
    assert "preferred agent" in decision.explanation()["candidates"][0]["reasons"]
    stranger = make_waiting("billing", email="grace@example.com")
    assert services.work_route(interaction_id=uuid.UUID(stranger)).agent_id == "bob"


def test_a_queue_past_its_service_level_threshold_raises_an_alarm(caplog):
    make_queue("billing", skills={"billing": 5}, service_level_seconds=20)
    make_queue("sales", service_level_seconds=60)
    make_waiting("billing")
    make_waiting("sales")
    assert services.sweep()["alarms"] == []
    later = timezone.now() + dt.timedelta(seconds=25)
    assert services.sweep(now=later)["alarms"] == ["billing"]
    assert "queue billing: an interaction has waited 25 s" in caplog.text
