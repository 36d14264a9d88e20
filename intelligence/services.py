"""Reading every inbound text as it arrives: its sentiment, the interaction's running sentiment, red flags.

`annotate` is an interactions annotator (interactions.hooks.annotate): it is
called with the events an interaction command or channel webhook is about to
append, inside the same transaction, with the interaction's row locked, and
returns events to append with them. So a customer's message, its score and
any flag it raises are recorded together, in order, or not at all.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import transaction

from intelligence import analysis
from intelligence.events import RedFlagRaised, SentimentScored
from intelligence.models import FlagPolicy, FlagTerm, Mood
from interactions import events as iev

log = logging.getLogger(__name__)


def annotate(row, new_events: list) -> list:
    """SentimentScored for each inbound message with text, and RedFlagRaised for each kind raised on this
    interaction for the first time."""
    texts = [e for e in new_events if isinstance(e, iev.MessageRecorded) and e.direction == "inbound"
             and (e.body or "").strip()]
    if not texts:
        return []
    mood = Mood.objects.filter(interaction_id=row.id).first() or Mood(interaction_id=row.id,
                                                                      customer_id=row.customer_id)
    terms, policies = configuration()
    out: list = []
    alerts: list[dict] = []
    for message in texts:
        compound = analysis.sentiment(message.body)
        mood.running = analysis.running(mood.running, mood.texts, compound, settings.SENTIMENT_WEIGHT)
        mood.texts += 1
        mood.last = compound
        mood.lowest = min(mood.lowest, compound)
        out.append(SentimentScored(source="message", compound=compound, running=mood.running, texts=mood.texts))
        raised = analysis.matches(message.body, terms)
        if compound <= settings.SENTIMENT_FLAG_THRESHOLD:
            raised.append(("negative_sentiment", "", message.body[:200]))
        for kind, term, evidence in raised:
            if kind in mood.flags:
                continue  # once per kind per interaction: the first evidence stands
            mood.flags = [*mood.flags, kind]
            policy = policies.get(kind)
            boost = policy.priority_boost if policy else 0
            effects = [f"priority +{boost}"] if boost else []
            if policy and policy.alert_supervisors:
                effects.append("supervisors alerted")
                alerts.append({"type": "intelligence.flag", "interaction_id": str(row.id), "kind": kind,
                               "term": term, "queue": row.queue, "agent_id": row.agent_id, "compound": compound})
            out.append(RedFlagRaised(kind=kind, evidence=evidence, term=term, compound=compound,
                                     priority_boost=boost, effects=effects))
    mood.save()
    if alerts:
        transaction.on_commit(lambda: _alert(alerts))
    return out


_cache: dict = {}


def configuration() -> tuple[list[tuple[str, str]], dict[str, FlagPolicy]]:
    """The active flag terms and the flag policies, read at most every INTELLIGENCE_CONFIG_SECONDS per process
    (a change in this process applies at once: intelligence.apps clears the cache on save and delete)."""
    now = time.monotonic()
    if not _cache or now - _cache["at"] > settings.INTELLIGENCE_CONFIG_SECONDS:
        _cache.update(at=now, terms=list(FlagTerm.objects.filter(active=True).values_list("term", "kind")),
                      policies={p.kind: p for p in FlagPolicy.objects.all()})
    return _cache["terms"], _cache["policies"]


def forget_configuration(**_) -> None:
    _cache.clear()


def _alert(alerts: list[dict]) -> None:
    from contactcenter import realtime
    from routing.realtime import WALLBOARD

    realtime.notify([(WALLBOARD, a) for a in alerts])
