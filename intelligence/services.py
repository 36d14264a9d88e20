"""Reading every inbound text as it arrives: its sentiment, the interaction's running sentiment, red flags.

`annotate` is an interactions annotator (interactions.hooks.annotate): it is
called with the events an interaction command or channel webhook is about to
append, inside the same transaction, with the interaction's row locked, and
returns events to append with them. So a customer's message, its score and
any flag it raises are recorded together, in order, or not at all.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from events.db import raw_cursor
from intelligence import analysis
from intelligence.events import EngagementDeclined, RedFlagRaised, SentimentScored
from intelligence.models import EngagementAlert, FlagPolicy, FlagTerm, Mood
from interactions import events as iev

log = logging.getLogger(__name__)


def annotate(row, new_events: list) -> list:
    """SentimentScored for each inbound message with text and each transcript segment the customer spoke, and
    RedFlagRaised for each kind raised on this interaction for the first time: from the words (the admin's
    terms, sharply negative sentiment) and, when an inbound contact starts or comes back, from the customer's
    history (repeat contact on an unresolved matter, declining engagement)."""
    texts = [(e.body, "message") for e in new_events if isinstance(e, iev.MessageRecorded)
             and e.direction == "inbound" and (e.body or "").strip()]
    texts += [(e.text, "transcript") for e in new_events if isinstance(e, iev.TranscriptSegmentRecorded)
              and e.speaker == "customer"]
    raised: list[tuple[str, str, str, float | None]] = []  # kind, term, evidence, compound
    if any(isinstance(e, iev.InteractionReopened) for e in new_events) or any(
            isinstance(e, iev.InteractionCreated) and e.direction == "inbound" for e in new_events):
        raised += [(kind, "", evidence, None) for kind, evidence in history_flags(row, new_events)]
    if not texts and not raised:
        return []
    mood = Mood.objects.filter(interaction_id=row.id).first() or Mood(interaction_id=row.id,
                                                                      customer_id=row.customer_id)
    terms, policies = configuration()
    out: list = []
    alerts: list[dict] = []  # to the wallboard
    to_agent: list[dict] = []  # to the desk of the agent handling it
    for body, source in texts:
        compound = analysis.sentiment(body)
        mood.running = analysis.running(mood.running, mood.texts, compound, settings.SENTIMENT_WEIGHT)
        mood.texts += 1
        mood.last = compound
        mood.lowest = min(mood.lowest, compound)
        out.append(SentimentScored(source=source, compound=compound, running=mood.running, texts=mood.texts))
        raised += [(kind, term, evidence, compound) for kind, term, evidence in analysis.matches(body, terms)]
        if compound <= settings.SENTIMENT_FLAG_THRESHOLD:
            raised.append(("negative_sentiment", "", body[:200], compound))
    for kind, term, evidence, compound in raised:
        if kind in mood.flags:
            continue  # once per kind per interaction: the first evidence stands
        mood.flags = [*mood.flags, kind]
        policy = policies.get(kind)
        boost = policy.priority_boost if policy else 0
        skill = policy.prefer_skill if policy else ""
        effects = [f"priority +{boost}"] if boost else []
        if skill:
            effects.append(f"prefers agents skilled in {skill}")
        if policy and policy.alert_supervisors:
            effects.append("supervisors alerted")
            alerts.append({"type": "intelligence.flag", "interaction_id": str(row.id), "kind": kind,
                           "term": term, "queue": row.queue, "agent_id": row.agent_id, "compound": compound})
        if row.agent_id:
            to_agent.append({"type": "intelligence.flag", "interaction_id": str(row.id), "kind": kind,
                             "term": term, "compound": compound, "effects": effects})
        out.append(RedFlagRaised(kind=kind, evidence=evidence, term=term, compound=compound,
                                 priority_boost=boost, effects=effects, prefer_skill=skill))
    mood.save()
    if alerts or to_agent:
        transaction.on_commit(lambda: _alert(alerts, row.agent_id, to_agent))
    return out


def history_flags(row, new_events: list) -> list[tuple[str, str]]:
    """(kind, evidence) of what the customer's history says as they contact us: repeat_contact when they come
    back on a matter closed as resolved, or while an earlier inbound contact within REPEAT_FLAG_DAYS is still
    unresolved (waiting, in hand or abandoned); declining_engagement when a customer who contacted us often
    went silent for unusually long (at least ENGAGEMENT_SILENT_DAYS and three times their usual gap), or
    when their last CSAT answer fell ENGAGEMENT_CSAT_DROP or more below their earlier average."""
    now = timezone.now()
    # One round trip: the customer's last 20 other inbound contacts and last 10 CSAT answers, newest first.
    with raw_cursor() as cur:
        cur.execute("""
            SELECT (SELECT coalesce(json_agg(json_build_array(channel, status, created_at)), '[]')
                    FROM (SELECT channel, status, created_at FROM interactions_interaction
                          WHERE customer_id = %(c)s AND direction = 'inbound' AND id <> %(i)s
                          ORDER BY created_at DESC LIMIT 20) last),
                   (SELECT coalesce(json_agg(csat), '[]')
                    FROM (SELECT csat FROM quality_survey WHERE customer_id = %(c)s AND csat IS NOT NULL
                          ORDER BY answered_at DESC LIMIT 10) answered)""", {"c": row.customer_id, "i": row.id},
                    prepare=True)
        contacts, answers = cur.fetchone()
    contacts = [(channel, status, dt.datetime.fromisoformat(at)) for channel, status, at in
                (json.loads(contacts) if isinstance(contacts, str) else contacts)]
    answers = json.loads(answers) if isinstance(answers, str) else answers
    flags = []
    if any(isinstance(e, iev.InteractionReopened) for e in new_events):
        flags.append(("repeat_contact", "the customer came back on a matter closed as resolved"))
    else:
        since = now - dt.timedelta(days=settings.REPEAT_FLAG_DAYS)
        earlier = [c for c in contacts if c[2] >= since and c[1] != "resolved"]
        if earlier:
            channel, status, at = earlier[0]
            flags.append(("repeat_contact", f"{len(earlier)} earlier contact(s) in {settings.REPEAT_FLAG_DAYS} "
                                            f"days not resolved; the last by {channel} on {at:%Y-%m-%d %H:%M} UTC, "
                                            f"{status}"))
    history = [at for _, _, at in contacts]
    if len(history) >= settings.ENGAGEMENT_MIN_CONTACTS:
        gaps = sorted((a - b).total_seconds() for a, b in zip(history, history[1:], strict=False))
        usual = gaps[len(gaps) // 2] if gaps else 0.0
        silent = (now - history[0]).total_seconds()
        if silent >= max(settings.ENGAGEMENT_SILENT_DAYS * 86400, 3 * usual):
            flags.append(("declining_engagement",
                          f"{len(history)} earlier contacts, usually {usual / 86400:.1f} days apart, then none "
                          f"for {silent / 86400:.0f} days"))
    if len(answers) >= 2:
        before = sum(answers[1:]) / len(answers[1:])
        if before - answers[0] >= settings.ENGAGEMENT_CSAT_DROP:
            flags.append(("declining_engagement", f"CSAT fell to {answers[0]} from an average of {before:.1f} "
                                                  f"over {len(answers) - 1} earlier answer(s)"))
    return flags


def engagement_sweep(*, now: dt.datetime | None = None, lookback_days: int = 365, limit: int = 1000) -> int:
    """The daily look for customers who stopped contacting us: at least ENGAGEMENT_MIN_CONTACTS inbound contacts
    in the last `lookback_days`, the last one at least ENGAGEMENT_SILENT_DAYS ago and three times their usual gap
    (the median between their last 20). Each such silence is flagged once (intelligence.EngagementDeclined on
    the customer's timeline) and, when the declining_engagement policy says so, the supervisors are alerted.
    Returns how many were flagged."""
    from django.db import IntegrityError

    from events import store
    from events.store import Actor, Metadata
    from interactions.models import Interaction

    now = now or timezone.now()
    silent_since = now - dt.timedelta(days=settings.ENGAGEMENT_SILENT_DAYS)
    with connection.cursor() as cur:
        cur.execute("""
            SELECT i.customer_id, max(i.created_at) FROM interactions_interaction i
            WHERE i.direction = 'inbound' AND i.created_at >= %s
            GROUP BY i.customer_id
            HAVING count(*) >= %s AND max(i.created_at) < %s
               AND NOT EXISTS (SELECT 1 FROM intelligence_engagementalert a
                               WHERE a.customer_id = i.customer_id AND a.last_contact_at = max(i.created_at))
            LIMIT %s""", [now - dt.timedelta(days=lookback_days), settings.ENGAGEMENT_MIN_CONTACTS, silent_since,
                          limit])
        candidates = cur.fetchall()
    _, policies = configuration()
    policy = policies.get("declining_engagement")
    flagged, alerts = 0, []
    for customer_id, last in candidates:
        history = list(Interaction.objects.filter(customer_id=customer_id, direction="inbound").order_by(
            "-created_at").values_list("created_at", flat=True)[:20])
        gaps = sorted((a - b).total_seconds() for a, b in zip(history, history[1:], strict=False))
        usual = gaps[len(gaps) // 2] if gaps else 0.0
        silent = (now - last).total_seconds()
        if silent < 3 * usual:
            continue  # an occasional customer: this gap is their usual
        alert = EngagementAlert(id=store.uuid7(), customer_id=customer_id, last_contact_at=last,
                                contacts=len(history), usual_gap_days=round(usual / 86400, 1))
        event = EngagementDeclined(contacts=len(history), usual_gap_days=alert.usual_gap_days,
                                   silent_days=round(silent / 86400, 1), last_contact_at=last.isoformat())
        try:
            with transaction.atomic():
                alert.save(force_insert=True)
                store.append(stream_type="engagement", stream_id=alert.id, customer_id=customer_id, events=[event],
                             expected_version=0, meta=Metadata(actor=Actor(type="system", id="intelligence")))
        except IntegrityError:
            continue  # another sweep flagged it first
        flagged += 1
        if policy is None or policy.alert_supervisors:
            alerts.append({"type": "intelligence.flag", "interaction_id": None, "customer_id": str(customer_id),
                           "kind": "declining_engagement", "term": "", "queue": None, "agent_id": None,
                           "compound": None})
    if alerts:
        _alert(alerts, None, [])
    return flagged


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


def _alert(alerts: list[dict], agent_id: str | None, to_agent: list[dict]) -> None:
    from contactcenter import realtime
    from routing.realtime import WALLBOARD
    from routing.realtime import to_agent as for_agent

    realtime.notify([(WALLBOARD, a) for a in alerts] + for_agent(agent_id, to_agent))
