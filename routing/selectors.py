"""Reads for routing: agents, queue state right now, and why an interaction went where it went."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from django.db import connection
from django.db.models import Count, Min, Q
from django.utils import timezone

from events import store
from routing.models import Agent, Queue, Work

ROUTING_TRAIL = ("routing.InteractionRouted", "interactions.InteractionQueued", "interactions.InteractionOffered",
                 "interactions.OfferDeclined", "interactions.InteractionAccepted", "interactions.InteractionTransferred",
                 "interactions.InteractionAbandoned")


def agent_list():
    return Agent.objects.select_related("user", "team").prefetch_related("skills").order_by("user__username")


def agent_get(username: str) -> Agent:
    return agent_list().get(user__username=username)  # DoesNotExist -> 404


def routing_trail(interaction_id: uuid.UUID) -> list[dict]:
    """The interaction's routing history from its stream: queued, routed (with why), offered, declined, accepted."""
    return [{"position": e.position, "occurred_at": e.occurred_at, "event_type": e.event_type, "data": e.data}
            for e in store.read_stream(interaction_id) if e.event_type in ROUTING_TRAIL]


@dataclass
class QueueStats:
    queue: str
    waiting: int
    offered: int
    in_hand: int
    longest_wait_seconds: float
    agents: dict[str, int]  # presence -> count of agents who qualify for the queue's channels and skills
    since: dt.datetime | None = None  # the day's figures below count from here (midnight UTC)
    answered: int = 0
    answered_within_target: int = 0
    service_level: float | None = None  # share answered within the target, None before the first answer
    average_speed_of_answer_seconds: float | None = None
    abandoned: int = 0


def queue_stats(name: str, *, now: dt.datetime | None = None, today: bool = True) -> QueueStats:
    """One queue now (from the routing rows) and today (from the event store); both exact.

    `today=False` skips the day's figures (the wallboard pushes only the
    live part on every change; the day's figures are one REST read away).
    """
    queue = Queue.objects.prefetch_related("skills").get(name=name)  # DoesNotExist -> 404
    now = now or timezone.now()
    counts = Work.objects.filter(queue=name).aggregate(
        waiting=Count("interaction_id", filter=Q(status=Work.WAITING)),
        offered=Count("interaction_id", filter=Q(status=Work.OFFERED)),
        in_hand=Count("interaction_id", filter=Q(status=Work.ASSIGNED)),
        oldest=Min("enqueued_at", filter=Q(status=Work.WAITING)),
    )
    required = {s.skill_id: s.min_proficiency for s in queue.skills.all() if not s.secondary}
    agents = Agent.objects.all()
    for skill, level in required.items():
        agents = agents.filter(skills__skill_id=skill, skills__proficiency__gte=level)
    presence = dict(agents.values_list("presence").annotate(n=Count("id")).values_list("presence", "n"))
    oldest = counts["oldest"]
    since = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    answered, within, asa, abandoned = _today(name, since, queue.service_level_seconds) if today else (0, 0, None, 0)
    return QueueStats(queue=name, waiting=counts["waiting"], offered=counts["offered"], in_hand=counts["in_hand"],
                    longest_wait_seconds=round((now - oldest).total_seconds(), 3) if oldest else 0.0,
                    agents=presence, since=since, answered=answered, answered_within_target=within,
                    service_level=round(within / answered, 4) if answered else None,
                    average_speed_of_answer_seconds=round(asa, 3) if asa is not None else None, abandoned=abandoned)


def _today(queue: str, since: dt.datetime, target_seconds: int) -> tuple[int, int, float | None, int]:
    """Answered, answered within the target, average speed of answer and abandoned, since `since`, from the store.

    An answer (InteractionAccepted) or an abandonment counts for the queue of
    the interaction's last InteractionQueued before it; the speed of answer
    runs from that InteractionQueued to the acceptance. Straight from the
    events, so exact; the KPI projections (quality issue) will serve longer
    windows.
    """
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT count(*) FILTER (WHERE a.event_type = 'interactions.InteractionAccepted'),
                   count(*) FILTER (WHERE a.event_type = 'interactions.InteractionAccepted'
                                    AND a.occurred_at - q.occurred_at <= make_interval(secs => %(target)s)),
                   avg(extract(epoch FROM a.occurred_at - q.occurred_at))
                       FILTER (WHERE a.event_type = 'interactions.InteractionAccepted'),
                   count(*) FILTER (WHERE a.event_type = 'interactions.InteractionAbandoned')
            FROM events_event a
            CROSS JOIN LATERAL (
                SELECT q.occurred_at, q.data ->> 'queue' AS queue FROM events_event q
                WHERE q.stream_id = a.stream_id AND q.event_type = 'interactions.InteractionQueued'
                  AND q.stream_version < a.stream_version
                ORDER BY q.stream_version DESC LIMIT 1
            ) q
            WHERE a.event_type IN ('interactions.InteractionAccepted', 'interactions.InteractionAbandoned')
              AND a.occurred_at >= %(since)s AND q.queue = %(queue)s
            """,
            {"queue": queue, "since": since, "target": target_seconds},
        )
        answered, within, asa, abandoned = cur.fetchone()
    return answered, within, float(asa) if asa is not None else None, abandoned


def is_supervisor(user) -> bool:
    """An admin, a supervisor of some team, or a holder of `contactcenter.supervise` (contactcenter.access)."""
    from contactcenter import access

    return access.is_supervisor(user)


def may_follow(user, interaction_id) -> bool:
    """The interaction exists and `user` is the agent handling it, a supervisor whose scope it is in, or compliance:
    who reads its mood and script (anyone else gets 404, so existence does not leak)."""
    from contactcenter import access
    from interactions.models import Interaction

    row = Interaction.objects.filter(id=interaction_id).values("agent_id").first()
    if row is None:
        return False
    if row["agent_id"] == user.get_username():
        return True
    return (access.is_supervisor(user) or access.is_compliance(user)) and access.may_see_interaction(
        user, interaction_id)
