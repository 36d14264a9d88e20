"""Routing's Celery tasks, on the `routing` queue: ids in, one service call, idempotent, acknowledged late.

A task that runs twice (a worker killed mid-task, a redelivery) decides
nothing the second time: the services only act on work still waiting, an
agent still free, an offer still unanswered past its time.
"""

import uuid

from celery import shared_task

from contactcenter.celery_fixes import survive_broker_restarts
from routing import services

# Every worker imports this module (autodiscovery): the routing worker must outlive a Redis restart, for the
# sweep below to re-queue from PostgreSQL what Redis forgot (contactcenter/celery_fixes.py).
survive_broker_restarts()

ROUTING = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@shared_task(**ROUTING)
def route_interaction(interaction_id: str) -> str | None:
    decision = services.work_route(interaction_id=uuid.UUID(interaction_id))
    return decision.agent_id if decision else None


@shared_task(**ROUTING)
def route_agent(agent_id: str) -> list[str]:
    return services.agent_route(agent_id=agent_id)


@shared_task(**ROUTING)
def dispatch() -> int:
    """Route waiting work in batches (requested, coalesced, by whatever may make routing possible)."""
    services.dispatch_requested_clear()
    return services.dispatch_all()


@shared_task(**ROUTING)
def expire_offers(interaction_ids: list[str]) -> int:
    """The offers of one dispatch pass that share a timeout, once it has passed."""
    return sum(services.offer_expire(interaction_id=uuid.UUID(i)) for i in interaction_ids)


@shared_task(**ROUTING)
def expire_offer(interaction_id: str) -> bool:
    return services.offer_expire(interaction_id=uuid.UUID(interaction_id))


@shared_task(**ROUTING)
def sweep() -> dict:
    """Every few seconds (beat): expired offers, expanding criteria, triggers lost with Redis."""
    return services.sweep()


# Named outside routing.tasks.* (CELERY_TASK_ROUTES), so it runs on the default queue: a replay of a busy week
# takes minutes and must not hold live routing decisions up.
@shared_task(name="routing.whatif.simulate", acks_late=True, reject_on_worker_lost=True, ignore_result=True,
             soft_time_limit=1800)
def simulate(simulation_id: str) -> str:
    """A what-if routing run requested through the API (routing.whatif)."""
    from routing import whatif

    return whatif.simulation_run(uuid.UUID(simulation_id))
