"""The interaction lifecycle: given events, when a command, then events (no database)."""

import uuid

import pytest

from interactions import domain
from interactions import events as ev

CASE = uuid.uuid4()


def given(*events):
    return domain.fold(events)


def created(channel="chat"):
    return ev.InteractionCreated(channel=channel, direction="inbound", case_id=CASE)


def connected(channel="chat", agent="a1"):
    return [created(channel), ev.InteractionQueued(queue="billing"), ev.InteractionOffered(agent_id=agent),
            ev.InteractionAccepted(agent_id=agent)]


def test_the_happy_path_of_a_chat():
    state = given(*connected())
    assert (state.status, state.agent_id, state.queue, state.version) == ("active", "a1", "billing", 4)
    assert domain.decide_message(state, direction="inbound", body="hi 👋") == [
        ev.MessageRecorded(direction="inbound", body="hi 👋")]
    state = given(*connected(), ev.InteractionEnded(reason="resolved"))
    assert state.status == "wrap_up"
    (wrapped,) = domain.decide_wrap_up(state, disposition="billing.refund", notes="refunded 12 EUR")
    assert domain.evolve(state, wrapped).status == "resolved"


def test_hold_and_resume():
    state = given(*connected("voice"))
    (held,) = domain.decide_hold(state)
    state = domain.evolve(state, held)
    assert state.status == "held"
    with pytest.raises(domain.TransitionRefused):
        domain.decide_hold(state)
    assert domain.evolve(state, domain.decide_resume(state)[0]).status == "active"


def test_answered_before_ringing_is_refused():
    state = given(created("voice"), ev.InteractionQueued(queue="q"))
    with pytest.raises(domain.TransitionRefused, match="cannot accept an interaction that is queued"):
        domain.decide_accept(state, agent_id="a1")


def test_only_the_offered_agent_may_accept_or_decline():
    state = given(created(), ev.InteractionQueued(queue="q"), ev.InteractionOffered(agent_id="a1"))
    with pytest.raises(domain.TransitionRefused, match="another agent"):
        domain.decide_accept(state, agent_id="a2")
    (declined,) = domain.decide_decline(state, agent_id="a1", reason="timeout")
    after = domain.evolve(state, declined)
    assert (after.status, after.agent_id) == ("queued", None)


def test_a_message_on_a_resolved_interaction_is_refused():
    state = given(*connected(), ev.InteractionEnded(reason="resolved"),
                  ev.InteractionWrappedUp(disposition="done"))
    with pytest.raises(domain.TransitionRefused, match="resolved"):
        domain.decide_message(state, direction="inbound", body="one more thing")


def test_wrap_up_twice_is_refused():
    state = given(*connected(), ev.InteractionEnded(reason="resolved"), ev.InteractionWrappedUp(disposition="d"))
    with pytest.raises(domain.TransitionRefused):
        domain.decide_wrap_up(state, disposition="d")


def test_a_customer_may_write_while_waiting_but_a_call_has_no_messages():
    assert domain.decide_message(given(created(), ev.InteractionQueued(queue="q")), direction="inbound", body="?")
    with pytest.raises(domain.InvalidValue) as exc:
        domain.decide_message(given(*connected("voice")), direction="inbound", body="?")
    assert exc.value.field == "channel"


def test_transfer_to_a_queue_or_an_agent_with_a_note():
    state = given(*connected())
    (to_queue,) = domain.decide_transfer(state, to_queue="tier2", note="needs a refund over the limit")
    assert to_queue.from_agent_id == "a1" and to_queue.note.startswith("needs")
    assert domain.evolve(state, to_queue).status == "queued"
    (to_agent,) = domain.decide_transfer(state, to_agent_id="a2", note="VIP")
    after = domain.evolve(state, to_agent)
    assert (after.status, after.agent_id) == ("offered", "a2")
    with pytest.raises(domain.InvalidValue):
        domain.decide_transfer(state, to_agent_id="a2", to_queue="q", note="both")
    with pytest.raises(domain.InvalidValue):
        domain.decide_transfer(state, to_agent_id="a1", note="to myself")


def test_abandon_only_while_waiting_and_reopen_after():
    state = given(created(), ev.InteractionQueued(queue="q"))
    (abandoned,) = domain.decide_abandon(state, waited_seconds=42)
    state = domain.evolve(state, abandoned)
    assert state.status == "abandoned"
    with pytest.raises(domain.TransitionRefused):
        domain.decide_abandon(given(*connected()))
    (reopened,) = domain.decide_reopen(state, reason="customer wrote again")
    assert domain.evolve(state, reopened).status == "created"


def test_unknown_channel_direction_or_end_reason_name_the_field():
    for kwargs, field in (({"channel": "fax", "direction": "inbound"}, "channel"),
                          ({"channel": "chat", "direction": "sideways"}, "direction")):
        with pytest.raises(domain.InvalidValue) as exc:
            domain.decide_create(case_id=CASE, **kwargs)
        assert exc.value.field == field
    with pytest.raises(domain.InvalidValue) as exc:
        domain.decide_end(given(*connected()), reason="bored")
    assert exc.value.field == "reason"
