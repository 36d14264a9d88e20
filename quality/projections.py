"""Projection `quality.interaction_facts`: one InteractionFact per interaction, from its lifecycle events.

Each event moves one clock (docs/KPIS.md says which event starts and
stops which). Events of one interaction arrive in order; events of
different interactions may not, so the repeat-contact links between two
interactions are made by whichever of the two is applied second.
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.conf import settings
from django.db import connection

from events.projection import Projection, register
from events.store import Envelope
from interactions import events as iev
from quality.events import SurveyAnswered
from quality.models import InteractionFact, PresenceInterval
from routing.events import AgentPresenceChanged

CREATED, QUEUED, ACCEPTED, HELD, RESUMED, TRANSFERRED, ENDED, WRAPPED_UP, ABANDONED, REOPENED = (
    f"interactions.{name}" for name in ("InteractionCreated", "InteractionQueued", "InteractionAccepted",
                                         "InteractionHeld", "InteractionResumed", "InteractionTransferred",
                                         "InteractionEnded", "InteractionWrappedUp", "InteractionAbandoned",
                                         "InteractionReopened"))
SURVEY_ANSWERED = "quality.SurveyAnswered"
RELEVANT = {CREATED, QUEUED, ACCEPTED, HELD, RESUMED, TRANSFERRED, ENDED, WRAPPED_UP, ABANDONED, REOPENED,
            SURVEY_ANSWERED}


def _window() -> dt.timedelta:
    return dt.timedelta(days=settings.KPI_FCR_WINDOW_DAYS)


def _seconds(since: dt.datetime | None, until: dt.datetime) -> float:
    return max(0.0, (until - since).total_seconds()) if since else 0.0


def _stop_clocks(fact: InteractionFact, at: dt.datetime) -> None:
    fact.talk_seconds += _seconds(fact.active_since, at)
    fact.hold_seconds += _seconds(fact.held_since, at)
    fact.active_since = fact.held_since = None


def apply_batch(envelopes) -> None:
    """Fold a batch into the facts it touches (read once, written back in one statement), then link repeat
    contacts with set-based SQL. The same as applying the events one by one, in far fewer statements."""
    from routing.models import Queue

    envelopes = [e for e in envelopes if e.event_type in RELEVANT]
    ids = {e.stream_id for e in envelopes if e.event_type != SURVEY_ANSWERED}
    ids |= {uuid.UUID(str(e.data["interaction_id"])) for e in envelopes if e.event_type == SURVEY_ANSWERED}
    facts = {f.interaction_id: f for f in InteractionFact.objects.filter(interaction_id__in=ids)}
    queues = {e.data["queue"] for e in envelopes if e.event_type == QUEUED}
    thresholds = dict(Queue.objects.filter(name__in=queues).values_list("name", "service_level_seconds"))
    created, wrapped, touched = set(), set(), set()
    for env in envelopes:
        kind, d, at = env.event_type, env.data, env.occurred_at
        if kind == CREATED:
            facts[env.stream_id] = InteractionFact(
                interaction_id=env.stream_id, customer_id=env.customer_id, case_id=d["case_id"],
                channel=d["channel"], direction=d["direction"], created_at=at)
            created.add(env.stream_id)
            touched.add(env.stream_id)
            continue
        key = uuid.UUID(str(d["interaction_id"])) if kind == SURVEY_ANSWERED else env.stream_id
        fact = facts.get(key)
        if fact is None:
            continue  # an interaction from before this projection's history
        touched.add(key)
        if kind == QUEUED:
            fact.queue = d["queue"]
            fact.sl_seconds = thresholds.get(d["queue"], settings.KPI_DEFAULT_SL_SECONDS)
            fact.queued_at = fact.queued_at or at
        elif kind == ACCEPTED:
            fact.agent_id = d["agent_id"]
            if fact.answered_at is None:
                fact.answered_at, fact.answered_by = at, d["agent_id"]
            fact.active_since = at
        elif kind == HELD:
            fact.talk_seconds += _seconds(fact.active_since, at)
            fact.active_since, fact.held_since = None, at
        elif kind == RESUMED:
            fact.hold_seconds += _seconds(fact.held_since, at)
            fact.held_since, fact.active_since = None, at
        elif kind == TRANSFERRED:
            _stop_clocks(fact, at)  # the next agent's talk starts when they accept
            fact.transfers += 1
            fact.queue = d.get("to_queue") or fact.queue
        elif kind == ENDED:
            _stop_clocks(fact, at)
            fact.ended_at = at
        elif kind == WRAPPED_UP:
            if fact.ended_at is None:  # wrapped up without an end: the conversation stops here
                _stop_clocks(fact, at)
                fact.ended_at = at
            fact.acw_seconds += _seconds(fact.ended_at, at)
            fact.resolved_at, fact.disposition = at, d["disposition"]
            wrapped.add(key)
        elif kind == ABANDONED:
            waited = d.get("waited_seconds")
            fact.abandoned_at = at
            fact.abandon_wait_seconds = float(waited) if waited is not None else _seconds(fact.queued_at, at)
        elif kind == REOPENED:
            fact.reopened += 1
        elif kind == SURVEY_ANSWERED:
            fact.surveyed_at, fact.csat, fact.nps = at, d.get("csat"), d.get("nps")
    if not touched:
        return
    InteractionFact.objects.bulk_create([facts[i] for i in touched], update_conflicts=True,
                                        unique_fields=["interaction_id"], update_fields=UPDATABLE)
    _link_repeats(created, wrapped)


UPDATABLE = [f.name for f in InteractionFact._meta.concrete_fields
             if f.name not in ("interaction_id", "repeat_of", "repeat_contact_at")]

_PAIRS = """
WITH pairs AS (
    SELECT a.interaction_id AS cause, b.interaction_id AS repeat, b.created_at, a.resolved_at
    FROM quality_interactionfact a
    JOIN quality_interactionfact b ON b.customer_id = a.customer_id AND b.interaction_id <> a.interaction_id
     AND b.direction = 'inbound' AND b.created_at > a.resolved_at AND b.created_at <= a.resolved_at + %(window)s
     AND (b.case_id = a.case_id OR (b.disposition = a.disposition AND b.resolved_at IS NOT NULL))
    WHERE a.resolved_at IS NOT NULL
      AND (a.interaction_id = ANY(%(ids)s) OR b.interaction_id = ANY(%(ids)s)))
"""
# Two statements: one fact can be both (B repeats A and causes C), and a row changes once per statement.
_LINK_CAUSES = _PAIRS + """
UPDATE quality_interactionfact f SET repeat_contact_at = least(coalesce(f.repeat_contact_at, p.first), p.first)
FROM (SELECT cause, min(created_at) AS first FROM pairs GROUP BY cause) p
WHERE f.interaction_id = p.cause
"""
_LINK_REPEATS = _PAIRS + """
UPDATE quality_interactionfact f SET repeat_of = p.cause
FROM (SELECT DISTINCT ON (repeat) repeat, cause FROM pairs ORDER BY repeat, resolved_at DESC) p
WHERE f.interaction_id = p.repeat AND f.repeat_of IS NULL
"""


def _link_repeats(created: set, wrapped: set) -> None:
    """Repeat contacts, both ways, for the interactions of a batch: those that began (after an earlier
    resolution of the same matter?) and those resolved (a later contact about the same matter already known?).
    The same matter: the same case, or the same disposition once both are resolved; only inbound contacts
    count as repeats."""
    ids = list(created | wrapped)
    if ids:
        with connection.cursor() as cur:
            for sql in (_LINK_CAUSES, _LINK_REPEATS):
                cur.execute(sql, {"ids": ids, "window": _window()})


interaction_facts = register(
    Projection(
        name="quality.interaction_facts",
        tables=[InteractionFact],
        batch_handler=apply_batch,
        subscribes=[iev.InteractionCreated, iev.InteractionQueued, iev.InteractionAccepted, iev.InteractionHeld,
                    iev.InteractionResumed, iev.InteractionTransferred, iev.InteractionEnded,
                    iev.InteractionWrappedUp, iev.InteractionAbandoned, iev.InteractionReopened, SurveyAnswered],
    )
)


def on_presence_changed(env: Envelope) -> None:
    """Close the agent's open stretch and open one in the new presence (the agent's events come in order)."""
    agent = env.data["agent_id"]
    PresenceInterval.objects.filter(agent_id=agent, ended_at=None).update(ended_at=env.occurred_at)
    PresenceInterval.objects.create(agent_id=agent, presence=env.data["presence"], started_at=env.occurred_at)


presence_intervals = register(
    Projection(
        name="quality.presence_intervals",
        tables=[PresenceInterval],
        handlers={AgentPresenceChanged: [on_presence_changed]},
    )
)
