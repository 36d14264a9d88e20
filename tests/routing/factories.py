"""Agents, queues and waiting interactions for routing tests."""

from django.contrib.auth import get_user_model

from customers.identity import identity
from events.store import Metadata
from interactions import services as interaction_services
from routing.models import Agent, AgentSkill, Queue, QueueSkill, Skill


def make_agent(username: str, *, skills: dict | None = None, presence: str = "available", **fields) -> Agent:
    user = get_user_model().objects.create_user(username=username, password="x")
    agent = Agent.objects.create(user=user, presence=presence, **fields)
    for name, level in (skills or {}).items():
        AgentSkill.objects.create(agent=agent, skill=Skill.objects.get_or_create(name=name)[0], proficiency=level)
    return agent


def make_queue(name: str, *, skills: dict | None = None, secondary: dict | None = None, **fields) -> Queue:
    queue = Queue.objects.create(name=name, **fields)
    for names, is_secondary in ((skills or {}, False), (secondary or {}, True)):
        for skill, level in names.items():
            QueueSkill.objects.create(queue=queue, skill=Skill.objects.get_or_create(name=skill)[0],
                                      min_proficiency=level, secondary=is_secondary)
    return queue


def make_waiting(queue: str, *, channel: str = "chat", email: str | None = None) -> str:
    """A new interaction from a (new) customer, queued in `queue`; returns its id."""
    n = make_waiting.count = getattr(make_waiting, "count", 0) + 1
    result = interaction_services.interaction_create(
        channel=channel, direction="inbound", meta=Metadata(),
        ident=identity("email", email or f"customer{n}@example.com"), queue=queue)
    return str(result.interaction.id)
