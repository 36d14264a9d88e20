"""Projection `quality.interaction_facts`: one InteractionFact per interaction, from its lifecycle events.

Each handler moves one clock (docs/KPIS.md says which event starts and
stops which). Events of one interaction arrive in order; events of
different interactions may not, so the repeat-contact links between two
interactions are made by whichever of the two is applied second.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import F, Q
from django.db.models.functions import Least

from events.projection import Projection, register
from events.store import Envelope
from interactions import events as iev
from quality.events import SurveyAnswered
from quality.models import InteractionFact, PresenceInterval
from routing.events import AgentPresenceChanged


def _window() -> dt.timedelta:
    return dt.timedelta(days=settings.KPI_FCR_WINDOW_DAYS)


def _fact(env: Envelope) -> InteractionFact | None:
    return InteractionFact.objects.filter(interaction_id=env.stream_id).first()


def _seconds(since: dt.datetime | None, until: dt.datetime) -> float:
    return max(0.0, (until - since).total_seconds()) if since else 0.0


def on_created(env: Envelope) -> None:
    d = env.data
    fact = InteractionFact.objects.create(
        interaction_id=env.stream_id, customer_id=env.customer_id, case_id=d["case_id"], channel=d["channel"],
        direction=d["direction"], created_at=env.occurred_at)
    if fact.direction == "inbound":
        _link_repeat(fact, Q(case_id=fact.case_id))


def on_queued(env: Envelope) -> None:
    from routing.models import Queue

    queue = env.data["queue"]
    threshold = Queue.objects.filter(name=queue).values_list("service_level_seconds", flat=True).first()
    InteractionFact.objects.filter(interaction_id=env.stream_id).update(
        queue=queue, sl_seconds=threshold if threshold is not None else settings.KPI_DEFAULT_SL_SECONDS)
    InteractionFact.objects.filter(interaction_id=env.stream_id, queued_at=None).update(queued_at=env.occurred_at)


def on_accepted(env: Envelope) -> None:
    fact = _fact(env)
    if fact is None:
        return
    fact.agent_id = env.data["agent_id"]
    if fact.answered_at is None:
        fact.answered_at, fact.answered_by = env.occurred_at, env.data["agent_id"]
    fact.active_since = env.occurred_at
    fact.save()


def on_held(env: Envelope) -> None:
    fact = _fact(env)
    if fact is None:
        return
    fact.talk_seconds += _seconds(fact.active_since, env.occurred_at)
    fact.active_since, fact.held_since = None, env.occurred_at
    fact.save()


def on_resumed(env: Envelope) -> None:
    fact = _fact(env)
    if fact is None:
        return
    fact.hold_seconds += _seconds(fact.held_since, env.occurred_at)
    fact.held_since, fact.active_since = None, env.occurred_at
    fact.save()


def _stop_clocks(fact: InteractionFact, at: dt.datetime) -> None:
    fact.talk_seconds += _seconds(fact.active_since, at)
    fact.hold_seconds += _seconds(fact.held_since, at)
    fact.active_since = fact.held_since = None


def on_transferred(env: Envelope) -> None:
    fact = _fact(env)
    if fact is None:
        return
    _stop_clocks(fact, env.occurred_at)  # the next agent's talk starts when they accept
    fact.transfers += 1
    if env.data.get("to_queue"):
        fact.queue = env.data["to_queue"]
    fact.save()


def on_ended(env: Envelope) -> None:
    fact = _fact(env)
    if fact is None:
        return
    _stop_clocks(fact, env.occurred_at)
    fact.ended_at = env.occurred_at
    fact.save()


def on_wrapped_up(env: Envelope) -> None:
    fact = _fact(env)
    if fact is None:
        return
    if fact.ended_at is None:  # wrapped up without an end: the conversation stops here
        _stop_clocks(fact, env.occurred_at)
        fact.ended_at = env.occurred_at
    fact.acw_seconds += _seconds(fact.ended_at, env.occurred_at)
    fact.resolved_at, fact.disposition = env.occurred_at, env.data["disposition"]
    fact.save()
    # Later contacts about the same matter (already applied) make this one a repeat's cause: not FCR.
    later = InteractionFact.objects.filter(
        Q(case_id=fact.case_id) | Q(disposition=fact.disposition, resolved_at__isnull=False),
        customer_id=fact.customer_id, direction="inbound", created_at__gt=fact.resolved_at,
        created_at__lte=fact.resolved_at + _window()).exclude(interaction_id=fact.interaction_id)
    first = later.order_by("created_at").values_list("created_at", flat=True).first()
    if first is not None:
        InteractionFact.objects.filter(interaction_id=fact.interaction_id).update(repeat_contact_at=first)
        later.filter(repeat_of=None).update(repeat_of=fact.interaction_id)
    if fact.direction == "inbound":
        _link_repeat(fact, Q(disposition=fact.disposition))


def _link_repeat(fact: InteractionFact, same_matter: Q) -> None:
    """`fact` began after earlier interactions of its customer about the same matter were resolved (within the
    window): it is a repeat contact, and they are not first-contact resolutions."""
    earlier = InteractionFact.objects.filter(
        same_matter, customer_id=fact.customer_id, resolved_at__lt=fact.created_at,
        resolved_at__gte=fact.created_at - _window()).exclude(interaction_id=fact.interaction_id)
    cause = earlier.order_by("-resolved_at").values_list("interaction_id", flat=True).first()
    if cause is None:
        return
    earlier.filter(repeat_contact_at=None).update(repeat_contact_at=fact.created_at)
    earlier.exclude(repeat_contact_at=None).update(repeat_contact_at=Least(F("repeat_contact_at"), fact.created_at))
    InteractionFact.objects.filter(interaction_id=fact.interaction_id, repeat_of=None).update(repeat_of=cause)


def on_abandoned(env: Envelope) -> None:
    fact = _fact(env)
    if fact is None:
        return
    waited = env.data.get("waited_seconds")
    fact.abandoned_at = env.occurred_at
    fact.abandon_wait_seconds = float(waited) if waited is not None else _seconds(fact.queued_at, env.occurred_at)
    fact.save()


def on_survey_answered(env: Envelope) -> None:
    """The answer belongs to the interaction surveyed (and so to its agent, queue and channel)."""
    d = env.data
    InteractionFact.objects.filter(interaction_id=d["interaction_id"]).update(
        surveyed_at=env.occurred_at, csat=d.get("csat"), nps=d.get("nps"))


def on_reopened(env: Envelope) -> None:
    InteractionFact.objects.filter(interaction_id=env.stream_id).update(reopened=F("reopened") + 1)


interaction_facts = register(
    Projection(
        name="quality.interaction_facts",
        tables=[InteractionFact],
        handlers={
            iev.InteractionCreated: [on_created],
            iev.InteractionQueued: [on_queued],
            iev.InteractionAccepted: [on_accepted],
            iev.InteractionHeld: [on_held],
            iev.InteractionResumed: [on_resumed],
            iev.InteractionTransferred: [on_transferred],
            iev.InteractionEnded: [on_ended],
            iev.InteractionWrappedUp: [on_wrapped_up],
            iev.InteractionAbandoned: [on_abandoned],
            iev.InteractionReopened: [on_reopened],
            SurveyAnswered: [on_survey_answered],
        },
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
