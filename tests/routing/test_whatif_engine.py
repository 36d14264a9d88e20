"""The what-if simulator on hand-built days: exact times from the engine's rules (no database)."""

import datetime as dt
import uuid

import pytest

from routing import domain, engine
from routing.whatif import Contact, Day, InvalidWhatIf, Policy, QueueSetup, Simulation, candidate_policy, measure

START = dt.datetime(2026, 11, 16, 8, 0, tzinfo=dt.UTC)


def contact(n: int, at: float, *, queue="billing", channel="chat", handle=100.0, wrap=0.0, patience=None,
            delay=0.0, vip=False) -> Contact:
    return Contact(uuid.UUID(int=n), uuid.UUID(int=1000 + n), channel, queue, at, vip=vip, answer_delay=delay,
                   handle=handle, wrap=wrap, patience=patience)


def policy(*, skills=None, expansion=(), agents=None, vip_boost=0) -> Policy:
    p = domain.QueuePolicy(name="billing", skills=skills or {}, expansion=tuple(expansion), vip_boost=vip_boost)
    return Policy({"billing": QueueSetup(engine.QueueConfig.of(p), sl_seconds=20)},
                  agents or {"ann": domain.AgentView("ann", "available", {"billing": 3}, capacity={"chat": 1,
                                                                                                 "voice": 1})})


def day(contacts, presence=None, initial=None, hours=1) -> Day:
    return Day(START, START + dt.timedelta(hours=hours), contacts, presence or {}, initial or {"ann": "available"})


def answered(outcome) -> dict:
    return {c.int: round(t, 3) for c, (_, t) in outcome.answered.items()}


def test_one_slot_serves_one_contact_at_a_time_in_arrival_order():
    out = Simulation(day([contact(1, 0), contact(2, 10), contact(3, 20)]), policy()).run()
    assert answered(out) == {1: 0, 2: 100, 3: 200}
    assert out.handled["ann"] == (3, 300.0, 0.0) and out.occupied["ann"] == [(0, 300)]


def test_a_second_chat_slot_halves_the_waits():
    wider = policy(agents={"ann": domain.AgentView("ann", "available", {"billing": 3}, capacity={"chat": 2})})
    out = Simulation(day([contact(1, 0), contact(2, 10), contact(3, 20)]), wider).run()
    assert answered(out) == {1: 0, 2: 10, 3: 100}


def test_after_call_work_keeps_the_agent_from_the_next_call_for_the_recorded_wrap_up():
    calls = [contact(1, 0, channel="voice", wrap=30), contact(2, 5, channel="voice", wrap=30)]
    out = Simulation(day(calls), policy()).run()
    assert answered(out) == {1: 0, 2: 130}  # 100 s of talk, then 30 s of after-call work
    assert out.occupied["ann"] == [(0, 260)] and out.handled["ann"] == (2, 200.0, 60.0)
    agent = measure(day(calls), policy(), out)["agents"][0]
    assert (agent["handle_seconds"], agent["staffed_seconds"], agent["occupancy"]) == (260.0, 3600.0, round(260 / 3600, 4))


def test_criteria_expand_at_the_step_s_time_and_not_before():
    relaxed = policy(skills={"billing": 4}, expansion=[domain.ExpansionStep(30, -1)])
    out = Simulation(day([contact(1, 0)]), relaxed).run()
    assert answered(out) == {1: 30}  # ann has billing 3: qualified once the step lowers 4 to 3
    strict = policy(skills={"billing": 4})
    assert Simulation(day([contact(1, 0, patience=50)]), strict).run().abandoned == {uuid.UUID(int=1): 50}


def test_priority_goes_first_and_patience_runs_out_while_waiting():
    boosted = policy(vip_boost=10)
    out = Simulation(day([contact(1, 0), contact(2, 1), contact(3, 2, vip=True), contact(4, 3, patience=150)]),
                     boosted).run()
    assert answered(out) == {1: 0, 3: 100, 2: 200}  # the VIP before the earlier contact
    assert out.abandoned == {uuid.UUID(int=4): 153}


def test_presence_as_recorded_and_offers_held_when_leaving_are_declined_and_routed_again():
    agents = {name: domain.AgentView(name, "available", {"billing": 3}, capacity={"chat": 1}) for name in ("ann", "bob")}
    d = day([contact(1, 0, delay=10)], presence={"ann": [(5, "break")], "bob": [(50, "available")]},
            initial={"ann": "available", "bob": "offline"})
    out = Simulation(d, policy(agents=agents)).run()
    assert {c.int: v for c, v in out.answered.items()} == {1: ("bob", 60)}  # declined by ann at 5, bob from 50


def test_an_added_agent_copies_skills_and_recorded_presence():
    base = policy()
    more = candidate_policy(base, {"agents": {"cid": {"copy_of": "ann"}}})
    assert more.copies == {"cid": "ann"} and more.agents["cid"].skills == {"billing": 3}
    out = Simulation(day([contact(1, 0), contact(2, 0)]), more).run()
    assert answered(out) == {1: 0, 2: 0}
    figures = measure(day([contact(1, 0), contact(2, 0)]), more, out)
    assert [a["agent_id"] for a in figures["agents"]] == ["ann", "cid"]
    assert figures["totals"]["service_level"] == 1.0 and figures["totals"]["agents_staffed"] == 2


def test_measure_counts_as_the_kpis_do():
    d = day([contact(1, 0), contact(2, 0, patience=2), contact(3, 0, patience=40), contact(4, 0)])
    figures = measure(d, policy(), Simulation(d, policy()).run())
    t = figures["totals"]
    assert (t["arrived"], t["answered"], t["abandoned"], t["short_abandons"]) == (4, 2, 1, 1)
    assert t["service_level"] == round(1 / 3, 4)  # contact 4 waited 100 s (> 20 s); the short abandon left out
    assert t["asa_seconds"] == 50.0 and t["abandonment_rate"] == round(1 / 3, 4)
    assert t["occupancy"] == round(200 / 3600, 4)


@pytest.mark.parametrize(("spec", "field"), [
    ([], "policy"),
    ({"routing": {}}, "policy.routing"),
    ({"queues": {"billing": {"skill": {"billing": 2}}}}, "policy.queues.billing.skill"),
    ({"queues": {"billing": {"skills": {"billing": 9}}}}, "policy.queues.billing.skills.billing"),
    ({"queues": {"billing": {"expansion": [{"after_seconds": 30}, {"after_seconds": 10}]}}},
     "policy.queues.billing.expansion"),
    ({"queues": {"billing": {"expansion": [{"after_seconds": "soon"}]}}}, "policy.queues.billing.expansion"),
    ({"queues": {"billing": {"tie_break": "random"}}}, "policy.queues.billing.tie_break"),
    ({"queues": {"billing": {"priority": 1.5}}}, "policy.queues.billing.priority"),
    ({"queues": {"billing": {"overflow_queue": "billing"}}}, "policy.queues.billing.overflow_queue"),
    ({"agents": {"ann": {"capacity": {"fax": 1}}}}, "policy.agents.ann.capacity.fax"),
    ({"agents": {"ann": {"capacity": {"chat": -1}}}}, "policy.agents.ann.capacity.chat"),
    ({"agents": {"zed": {"skills": {"billing": 2}}}}, "policy.agents.zed.copy_of"),
    ({"agents": {"ann": {"copy_of": "ann"}}}, "policy.agents.ann.copy_of"),
    ({"agents": {"*": {"languages": "en"}}}, "policy.agents.*.languages"),
    ({"queues": {"billing": {"expansion": [{"after_seconds": 30, "admit_secondary": "false"}]}}},
     "policy.queues.billing.expansion"),
    ({"queues": {"billing": {"expansion": [{"after_seconds": 10 * i} for i in range(1, 30)]}}},
     "policy.queues.billing.expansion"),
    ({"queues": {"billing": {"vip_boost": -1}}}, "policy.queues.billing.vip_boost"),
])
def test_a_policy_routing_cannot_use_is_refused_naming_the_field(spec, field):
    with pytest.raises(InvalidWhatIf) as refused:
        candidate_policy(policy(), spec)
    assert refused.value.field == field, str(refused.value)


def test_a_candidate_changes_only_what_it_names():
    base = policy(skills={"billing": 2})
    changed = candidate_policy(base, {"queues": {"billing": {"expansion": [{"after_seconds": 20,
                                                                             "min_proficiency_delta": -1}]}},
                                      "agents": {"*": {"capacity": {"chat": 3}}}})
    q = changed.queues["billing"].config
    assert q.policy.skills == {"billing": 2} and q.relaxed == -1
    assert changed.agents["ann"].capacity == {"chat": 3, "voice": 1} and changed.agents["ann"].skills == {"billing": 3}
    assert base.agents["ann"].capacity == {"chat": 1, "voice": 1}  # the recorded policy untouched


def test_work_nobody_in_the_policy_can_take_waits_and_is_counted_unanswered():
    d = day([contact(1, 0, channel="email"), contact(2, 5)])
    out = Simulation(d, policy()).run()  # ann has no email slot
    assert answered(out) == {2: 5}
    t = measure(d, policy(), out)["totals"]
    assert (t["arrived"], t["answered"], t["unanswered"]) == (2, 1, 1)


def test_two_queues_overflowing_into_each_other_take_turns_at_each_sweep_until_the_customer_hangs_up():
    a = domain.QueuePolicy(name="billing", skills={"french": 1})
    b = domain.QueuePolicy(name="sales", skills={"french": 1})
    bouncing = Policy({"billing": QueueSetup(engine.QueueConfig.of(a), overflow_queue="sales", overflow_after=0),
                       "sales": QueueSetup(engine.QueueConfig.of(b), overflow_queue="billing", overflow_after=0)},
                      policy().agents)
    out = Simulation(day([contact(1, 0, patience=60)]), bouncing).run()  # nobody speaks French
    assert out.abandoned == {uuid.UUID(int=1): 60} and out.answered == {}
    assert 10 <= out.events <= 20  # an overflow every ROUTING_SWEEP_SECONDS (5 s), not an endless loop


def test_an_offer_declined_by_leaving_is_accepted_only_by_the_next_offer_s_own_answer():
    agents = {name: domain.AgentView(name, "available", {"billing": 3}, capacity={"chat": 1}) for name in ("ann", "bob")}
    d = day([contact(1, 0, delay=10)], presence={"ann": [(2, "break")], "bob": [(3, "available")]},
            initial={"ann": "available", "bob": "offline"})
    out = Simulation(d, policy(agents=agents)).run()
    assert {c.int: v for c, v in out.answered.items()} == {1: ("bob", 13)}  # not at 10: ann's answer was void


@pytest.mark.parametrize(("flag_at", "order"), [(50, {3: 100, 2: 200}), (150, {2: 100, 3: 200})])
def test_a_red_flag_raises_priority_from_when_it_is_raised(flag_at, order):
    c = contact(3, 2)
    c.flags = [(flag_at, 10, "")]
    out = Simulation(day([contact(1, 0), contact(2, 1), c]), policy()).run()
    assert answered(out) == {1: 0, **order}
