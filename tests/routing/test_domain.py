"""Routing decisions, without a database: eligibility, expansion, scores, tie-breaks, explanations."""

import datetime as dt

import pytest

from routing import domain
from routing.domain import AgentView, ExpansionStep, QueuePolicy, WaitingView

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
BILLING = QueuePolicy(name="billing", skills={"billing": 3}, secondary={"sales": 2},
                      expansion=(ExpansionStep(30, -1), ExpansionStep(60, -2, admit_secondary=True)))


def agent(name, presence="available", skills=None, **kw):
    return AgentView(agent_id=name, presence=presence, skills=skills or {}, **kw)


def waiting(waited=0, channel="chat", **kw):
    return WaitingView(interaction_id="i1", channel=channel, queue="billing",
                       enqueued_at=NOW - dt.timedelta(seconds=waited), **kw)


def test_the_most_proficient_available_agent_wins_and_the_explanation_says_why():
    agents = [agent("ann", skills={"billing": 3}), agent("bob", skills={"billing": 5}),
              agent("cid", presence="break", skills={"billing": 5}), agent("dan", skills={"billing": 2})]
    decision = domain.decide_route(BILLING, waiting(), agents, now=NOW)
    assert decision.agent_id == "bob" and decision.step == 0
    why = decision.explanation()
    assert why["considered"] == 4 and why["candidates"][0] == {
        "agent_id": "bob", "eligible": True, "score": 5.0, "reasons": ["billing 5"]}
    reasons = {c["agent_id"]: c["reasons"] for c in why["candidates"]}
    assert reasons["cid"] == ["presence break"] and reasons["dan"] == ["billing 2 < 3"]


def test_criteria_expand_with_waiting_time_like_a_bullseye():
    low = [agent("dan", skills={"billing": 2}), agent("sue", skills={"sales": 4})]
    assert domain.decide_route(BILLING, waiting(10), low, now=NOW).agent_id is None
    assert domain.decide_route(BILLING, waiting(30), low, now=NOW).agent_id == "dan"  # step 1: billing >= 2
    only_sales = [agent("sue", skills={"sales": 4, "billing": 1})]
    late = domain.decide_route(BILLING, waiting(61), only_sales, now=NOW)
    assert late.agent_id == "sue" and late.step == 2  # billing >= 1 and secondary sales admitted
    assert late.candidates[0].score == 1 + 4 / 2


def test_capacity_per_channel_and_the_voice_rule():
    busy = agent("ann", skills={"billing": 5}, load={"chat": 3})
    assert domain.decide_route(BILLING, waiting(), [busy], now=NOW).agent_id is None
    on_call = agent("ann", skills={"billing": 5}, load={"voice": 1})
    assert not domain.has_room(on_call, "chat")[0] and not domain.has_room(on_call, "voice")[0]
    chatting = agent("ann", skills={"billing": 5}, load={"chat": 1})
    assert not domain.has_room(chatting, "voice")[0] and domain.has_room(chatting, "email")[0]
    both = agent("ann", skills={"billing": 5}, load={"chat": 1}, voice_with_others=True)
    assert domain.has_room(both, "voice")[0]


def test_language_declines_and_the_preferred_agent():
    german = QueuePolicy(name="de", language="de", skills={"billing": 1})
    assert domain.decide_route(german, waiting(), [agent("ann", skills={"billing": 5}, languages=("en",)),
                                                    agent("jan", skills={"billing": 1}, languages=("de", "en"))],
                               now=NOW).agent_id == "jan"
    two = [agent("ann", skills={"billing": 5}), agent("bob", skills={"billing": 4})]
    assert domain.decide_route(BILLING, waiting(declined_by=("ann",)), two, now=NOW).agent_id == "bob"
    assert domain.decide_route(BILLING, waiting(preferred_agent="bob"), two, now=NOW).agent_id == "bob"


@pytest.mark.parametrize("tie_break, expected", [("longest_idle", "old"), ("lowest_occupancy", "free")])
def test_ties_go_by_the_queue_s_tie_break(tie_break, expected):
    policy = QueuePolicy(name="q", skills={"billing": 1}, tie_break=tie_break)
    agents = [agent("old", skills={"billing": 3}, idle_since=NOW - dt.timedelta(minutes=9), load={"chat": 2}),
              agent("free", skills={"billing": 3}, idle_since=NOW - dt.timedelta(minutes=1))]
    assert domain.decide_route(policy, waiting(), agents, now=NOW).agent_id == expected


def test_priority_boosts_and_the_agent_side_order():
    policy = QueuePolicy(name="billing", priority=1, vip_boost=10, repeat_boost=3)
    assert domain.priority(policy, waiting(vip=True, repeat=True)) == 14
    a = WaitingView("a", "chat", "billing", NOW - dt.timedelta(seconds=50))
    b = WaitingView("b", "chat", "billing", NOW - dt.timedelta(seconds=10), vip=True)
    c = WaitingView("c", "chat", "billing", NOW - dt.timedelta(seconds=90))
    assert [w.interaction_id for w in domain.order_waiting({"billing": policy}, [a, b, c])] == ["b", "c", "a"]


@pytest.mark.parametrize("policy, field", [
    (QueuePolicy(name="q", skills={"billing": 6}), "skills"),
    (QueuePolicy(name="q", skills={"billing": 2}, secondary={"billing": 1}), "skills"),
    (QueuePolicy(name="q", expansion=(ExpansionStep(30), ExpansionStep(20))), "expansion"),
    (QueuePolicy(name="q", expansion=(ExpansionStep(30, min_proficiency_delta=1),)), "expansion"),
    (QueuePolicy(name="q", tie_break="random"), "tie_break"),
])
def test_invalid_policies_are_refused_naming_the_field(policy, field):
    with pytest.raises(domain.InvalidPolicy) as refused:
        domain.validate_policy(policy)
    assert refused.value.field == field


@pytest.mark.parametrize("tie_break", domain.TIE_BREAKS)
def test_the_dispatcher_s_short_list_chooses_exactly_as_scoring_every_agent(tie_break):
    """routing.engine (live routing and the what-if simulator) scores only the best-ranked free agents (ties included): the choice must not change."""
    import random
    from types import SimpleNamespace

    from routing.engine import FreeAgent, QueueConfig, Qualified, pool

    rnd = random.Random(7)
    policy = QueuePolicy(name="billing", skills={"billing": 2, "tv": 1}, secondary={"sales": 2}, language="en",
                         expansion=(ExpansionStep(30, -1, admit_secondary=True),), tie_break=tie_break)
    for trial in range(200):
        views = {}
        for k in range(rnd.randint(1, 60)):
            name = f"a{k}"
            views[name] = FreeAgent(k, agent(
                name, skills={s: rnd.choice([1, 4, 5]) for s in ("billing", "tv", "sales") if rnd.random() < 0.8},
                languages=("en",) if rnd.random() < 0.9 else ("de",), capacity={"chat": 2, "voice": 1},
                load={"chat": rnd.choice([0, 0, 1, 2])} if rnd.random() < 0.5 else {"voice": rnd.choice([0, 1])},
                idle_since=NOW - dt.timedelta(seconds=rnd.randint(0, 600))))
        work = waiting(waited=rnd.choice([0, 45]), channel=rnd.choice(["chat", "voice"]),
                       declined_by=tuple(rnd.sample(sorted(views), min(2, len(views)))),
                       preferred_agent=rnd.choice([None, "a0", "a3"]),
                       prefer_skill=rnd.choice(["", "", "", "tv", "sales"]))  # a red flag asks for a skill
        step = domain.step_in_force(policy, (NOW - work.enqueued_at).total_seconds())
        ranked = Qualified({"billing": QueueConfig(policy)}, views).ranked("billing", step)
        row = SimpleNamespace(declined_by=list(work.declined_by), channel=work.channel, prefer_skill=work.prefer_skill)
        short = domain.decide_route(policy, work, pool(ranked, views, None, row, work.preferred_agent, 2), now=NOW)
        full = domain.decide_route(policy, work, [a.base for a in views.values()], now=NOW)
        assert short.agent_id == full.agent_id, trial
        if full.agent_id:
            best = max(c.score for c in full.candidates if c.eligible)
            assert next(c.score for c in short.candidates if c.agent_id == short.agent_id) == best
