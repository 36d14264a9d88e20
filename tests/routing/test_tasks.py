"""Routing tasks: on the routing queue, and each one run twice changes state once."""

import pytest
from django.conf import settings

from events import store
from routing import tasks
from routing.models import Work
from tests.routing.factories import make_agent, make_queue, make_waiting

pytestmark = pytest.mark.django_db(transaction=True)


def offers():
    return [e for e in store.read_all(limit=10_000) if e.event_type == "interactions.InteractionOffered"]


def test_routing_tasks_go_to_the_routing_queue_and_are_acknowledged_late():
    from contactcenter.celery import app

    route = app.amqp.router.route({}, "routing.tasks.route_interaction")
    assert route["queue"].name == "routing"
    assert settings.CELERY_BEAT_SCHEDULE["routing-sweep"]["task"] == "routing.tasks.sweep"
    for task in (tasks.route_interaction, tasks.route_agent, tasks.expire_offer, tasks.sweep):
        assert task.acks_late and task.reject_on_worker_lost


def test_each_routing_task_run_twice_offers_once():
    make_queue("billing")
    make_agent("ann", capacity={"chat": 2})
    first, second, third = make_waiting("billing"), make_waiting("billing"), make_waiting("billing")
    assert tasks.route_interaction(first) == "ann" and tasks.route_interaction(first) is None
    assert tasks.route_agent("ann") == [second] and tasks.route_agent("ann") == []
    assert len(offers()) == 2
    assert not tasks.expire_offer(first)  # not due: nothing, however often
    Work.objects.filter(interaction_id=first).update(offer_expires_at="2000-01-01T00:00:00Z")
    assert tasks.expire_offer(first) and not tasks.expire_offer(first)
    # The sweep: `first` waits again (declined by ann, so not hers); `third` takes ann's freed slot.
    assert tasks.sweep() == {"expired": 0, "overflowed": 0, "after_call_ended": 0, "routed": 1, "alarms": []}
    assert tasks.sweep() == {"expired": 0, "overflowed": 0, "after_call_ended": 0, "routed": 0, "alarms": []}
    assert Work.objects.get(interaction_id=third).agent_id == "ann"
    assert Work.objects.get(interaction_id=first).status == Work.WAITING
