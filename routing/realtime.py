"""Channels groups of routing and the pushes after a routing transaction commits.

Pushes are hints (DESIGN: real-time is a hint, REST is the truth): an agent
desk that reconnects reads /api/v1/agents/me/ and its interactions; a
wallboard reads /api/v1/queues/{name}/stats/.
"""

from __future__ import annotations

import logging

from django.db import transaction

from contactcenter.realtime import notify

log = logging.getLogger(__name__)

WALLBOARD = "routing.wallboard"


def agent_group(agent_pk: int) -> str:
    # The agent's primary key, not the user name: group names allow only a few characters.
    return f"routing.agent.{agent_pk}"


def to_agent(agent_id: str | None, messages: list[dict]) -> list[tuple[str, dict]]:
    """(group, message) pairs for the desk socket of the agent with this user name; none if they are no agent."""
    from routing.models import Agent

    pk = Agent.objects.filter(user__username=agent_id).values_list("pk", flat=True).first() if agent_id else None
    return [(agent_group(pk), m) for m in messages] if pk is not None and messages else []


def push_after_commit(messages_fn) -> None:
    """After the transaction commits, build the messages (fresh reads) and push them; never fail the caller."""

    def send():
        try:
            notify(messages_fn())
        except Exception:  # a push is a hint: log and carry on
            log.warning("routing push failed", exc_info=True)

    transaction.on_commit(send)


def queue_live(queue: str) -> dict:
    """A queue's live state as the wallboard shows it (waiting, offered, in hand, longest wait, agents by presence)."""
    from routing.models import Queue
    from routing.selectors import queue_stats

    if not Queue.objects.filter(name=queue).exists():
        return {"queue": queue}
    stats = queue_stats(queue, today=False)
    return {"queue": queue, "waiting": stats.waiting, "offered": stats.offered, "in_hand": stats.in_hand,
            "longest_wait_seconds": stats.longest_wait_seconds, "agents": stats.agents}


def offer_context(customer_id: str) -> dict | None:
    """The customer's context as GET /api/v1/customers/{id}/context/ gives it; None until the directory has them."""
    from customers.api.serializers import CustomerContextOutput
    from customers.models import CustomerProfile
    from customers.selectors import customer_context

    try:
        return CustomerContextOutput(customer_context(customer_id)).data
    except CustomerProfile.DoesNotExist:
        return None
