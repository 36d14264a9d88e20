"""Quality commands: satisfaction surveys, sent after resolution and answered once."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from events import store
from events.store import Actor, Metadata
from interactions import domain as idomain
from interactions import events as iev
from quality import scoring
from quality.events import (
    EvaluationAcknowledged,
    EvaluationDisputed,
    EvaluationDisputeResolved,
    EvaluationSubmitted,
    SurveyAnswered,
    SurveySent,
)
from quality.models import Evaluation, Scorecard, Survey

SYSTEM = Metadata(actor=Actor("system", "quality", "quality"))
TEXT_CHANNELS = ("chat", "email", "sms", "social")
QUESTIONS = {
    "csat": "How satisfied are you with the help you got? Reply 1 (not at all) to 5 (very).",
    "nps": "How likely are you to recommend us to a friend? Reply 0 (not at all) to 10 (extremely).",
}


class AlreadyAnswered(idomain.TransitionRefused):
    """A survey counts once (HTTP 409)."""

    code = "already_answered"


def survey_after_resolution(row, new_events: list) -> None:
    """interactions.hooks listener: an inbound interaction an agent resolved gets a survey (once)."""
    if settings.SURVEY_KIND == "off" or row.direction != "inbound" or not row.agent_id:
        return
    if not any(isinstance(e, iev.InteractionWrappedUp) for e in new_events):
        return
    if Survey.objects.filter(interaction_id=row.id).exists():
        return  # reopened and resolved again: asked already
    survey_send(interaction=row)


def survey_send(*, interaction, kind: str | None = None, meta: Metadata = SYSTEM) -> Survey:
    """Ask the customer about a resolved interaction on their preferred channel. Emits quality.SurveySent.

    The question goes out like any other message: an outbound interaction in
    the same case, with the question as its outbound message (a call, on
    voice: the telephony provider plays the questions). Runs in the caller's
    transaction: the survey is sent if and only if the resolution commits.
    """
    from customers.models import CustomerProfile
    from interactions import services as interaction_services

    kind = kind or settings.SURVEY_KIND
    preferred = CustomerProfile.objects.filter(customer_id=interaction.customer_id).values_list(
        "preferred_channel", flat=True).first()
    channel = preferred if preferred in idomain.CHANNELS else interaction.channel
    survey_id = store.uuid7()
    with transaction.atomic():
        outbound = interaction_services.interaction_create(
            channel=channel, direction="outbound", meta=meta, customer_id=interaction.customer_id,
            case_id=interaction.case_id).interaction
        if channel in TEXT_CHANNELS:
            question = " ".join(QUESTIONS[k] for k in (("csat", "nps") if kind == "both" else (kind,)))
            interaction_services.message_record(interaction_id=outbound.id, direction="outbound",
                                                body=f"{question} (survey {survey_id})", meta=meta)
        sent = SurveySent(interaction_id=interaction.id, agent_id=interaction.agent_id, queue=interaction.queue,
                          channel=channel, kind=kind, outbound_interaction_id=outbound.id)
        store.append(stream_type="survey", stream_id=survey_id, customer_id=interaction.customer_id, events=[sent],
                     expected_version=0, meta=meta)
        return Survey.objects.create(
            id=survey_id, interaction_id=interaction.id, customer_id=interaction.customer_id,
            agent_id=interaction.agent_id, queue=interaction.queue, channel=channel, kind=kind,
            outbound_interaction_id=outbound.id, sent_at=timezone.now(), version=1)


def survey_answer(*, survey_id: uuid.UUID, csat: int | None = None, nps: int | None = None, comment: str = "",
                  via: str = "api", meta: Metadata = SYSTEM) -> tuple[Survey, bool]:
    """Record the customer's answer. Emits quality.SurveyAnswered. Returns (survey, repeated).

    It counts once: the same answer again (a redelivered webhook) changes
    nothing and returns repeated=True; a different one is refused
    (AlreadyAnswered). The scores the survey asked for are required, on
    their scales (CSAT 1-5, NPS 0-10); others are refused.
    """
    with transaction.atomic():
        survey = Survey.objects.select_for_update().filter(id=survey_id).first()
        if survey is None:
            raise idomain.InvalidValue("survey_id", "no such survey")
        if survey.answered_at is not None:
            if (survey.csat, survey.nps) == (csat, nps):
                return survey, True
            raise AlreadyAnswered("this survey was answered already; an answer counts once")
        _check(survey.kind, csat, nps)
        answered = SurveyAnswered(interaction_id=survey.interaction_id, csat=csat, nps=nps,
                                  comment=idomain.masked(comment), via=via)  # card numbers never stored
        store.append(stream_type="survey", stream_id=survey.id, customer_id=survey.customer_id, events=[answered],
                     expected_version=survey.version, meta=meta)
        survey.csat, survey.nps, survey.answered_at = csat, nps, timezone.now()
        survey.version += 1
        survey.save(update_fields=["csat", "nps", "answered_at", "version"])
    return survey, False


def _check(kind: str, csat: int | None, nps: int | None) -> None:
    wants_csat, wants_nps = kind in ("csat", "both"), kind in ("nps", "both")
    for name, value, wanted, low, high in (("csat", csat, wants_csat, 1, 5), ("nps", nps, wants_nps, 0, 10)):
        if wanted and value is None:
            raise idomain.InvalidValue(name, f"this survey asks for {name} ({low}-{high})")
        if not wanted and value is not None:
            raise idomain.InvalidValue(name, f"this survey does not ask for {name}")
        if value is not None and not low <= value <= high:
            raise idomain.InvalidValue(name, f"{name} is {low} to {high}, not {value}")


# --- evaluations -----------------------------------------------------------------------------------------


class EvaluationRefused(idomain.TransitionRefused):
    code = "evaluation_refused"


def scorecard_save(*, name: str, form: dict) -> Scorecard:
    """A new scorecard, or the next version of `name`; earlier versions stop being offered (they stay, with
    their evaluations, unchanged)."""
    try:
        scoring.validate_form(form)
    except scoring.InvalidForm as exc:
        raise idomain.InvalidValue(f"form.{exc.field}", str(exc)) from None
    with transaction.atomic():
        last = Scorecard.objects.select_for_update().filter(name=name).order_by("-version").first()
        Scorecard.objects.filter(name=name).update(active=False)
        return Scorecard.objects.create(name=name, version=(last.version + 1) if last else 1, form=form)


def evaluation_submit(*, scorecard_id: int, interaction_id: uuid.UUID, reviewer: str, answers: dict,
                      meta: Metadata) -> Evaluation:
    """Score an interaction against a scorecard. Emits quality.EvaluationSubmitted.

    The agent evaluated is the one who handled the interaction last. One
    evaluation per reviewer, interaction and scorecard version; several
    reviewers of one interaction are a calibration.
    """
    from interactions.models import Interaction

    scorecard = Scorecard.objects.filter(id=scorecard_id, active=True).first()
    if scorecard is None:
        raise idomain.InvalidValue("scorecard", "no such active scorecard")
    interaction = Interaction.objects.filter(id=interaction_id).first()
    if interaction is None:
        raise idomain.InvalidValue("interaction_id", "no such interaction")
    if not interaction.agent_id:
        raise idomain.InvalidValue("interaction_id", "no agent handled this interaction")
    result = _score(scorecard.form, answers)
    evaluation_id = store.uuid7()
    with transaction.atomic():
        if Evaluation.objects.filter(interaction_id=interaction_id, scorecard=scorecard, reviewer=reviewer).exists():
            raise EvaluationRefused("you evaluated this interaction with this scorecard already")
        submitted = EvaluationSubmitted(
            interaction_id=interaction_id, agent_id=interaction.agent_id, reviewer=reviewer,
            scorecard=scorecard.name, scorecard_version=scorecard.version, answers=answers, score=result.score,
            auto_failed=list(result.auto_failed))
        store.append(stream_type="evaluation", stream_id=evaluation_id, customer_id=interaction.customer_id,
                     events=[submitted], expected_version=0, meta=meta)
        return Evaluation.objects.create(
            id=evaluation_id, scorecard=scorecard, interaction_id=interaction_id,
            customer_id=interaction.customer_id, agent_id=interaction.agent_id, reviewer=reviewer, answers=answers,
            score=result.score, sections=result.sections, auto_failed=list(result.auto_failed),
            created_at=timezone.now(), version=1)


def _score(form: dict, answers) -> scoring.Score:
    if not isinstance(answers, dict):
        raise idomain.InvalidValue("answers", "answers map each criterion key to its answer")
    try:
        return scoring.score(form, answers)
    except scoring.InvalidForm as exc:
        raise idomain.InvalidValue(exc.field, str(exc)) from None


def _change(evaluation_id: uuid.UUID, allowed: tuple[str, ...], action: str, event, meta: Metadata,
            **fields) -> Evaluation:
    with transaction.atomic():
        ev = Evaluation.objects.select_for_update().get(id=evaluation_id)
        if ev.status not in allowed:
            raise EvaluationRefused(f"cannot {action} an evaluation that is {ev.status}")
        store.append(stream_type="evaluation", stream_id=ev.id, customer_id=ev.customer_id, events=[event],
                     expected_version=ev.version, meta=meta)
        for name, value in fields.items():
            setattr(ev, name, value)
        ev.version += 1
        ev.save()
    return ev


def evaluation_acknowledge(*, evaluation_id: uuid.UUID, agent_id: str, meta: Metadata) -> Evaluation:
    """The agent accepts their evaluation. Emits quality.EvaluationAcknowledged."""
    return _change(evaluation_id, (Evaluation.SUBMITTED, Evaluation.RESOLVED), "acknowledge",
                   EvaluationAcknowledged(agent_id=agent_id), meta, status=Evaluation.ACKNOWLEDGED)


def evaluation_dispute(*, evaluation_id: uuid.UUID, agent_id: str, reason: str, meta: Metadata) -> Evaluation:
    """The agent disputes their evaluation. Emits quality.EvaluationDisputed."""
    if not reason.strip():
        raise idomain.InvalidValue("reason", "say why you dispute it")
    reason = idomain.masked(reason)  # free text: card numbers and security codes masked, as everywhere
    return _change(evaluation_id, (Evaluation.SUBMITTED,), "dispute",
                   EvaluationDisputed(agent_id=agent_id, reason=reason), meta, status=Evaluation.DISPUTED,
                   dispute_reason=reason)


def evaluation_resolve(*, evaluation_id: uuid.UUID, resolved_by: str, outcome: str, note: str,
                       answers: dict | None, meta: Metadata) -> Evaluation:
    """A supervisor decides a dispute: upheld, or rescored with new answers. Emits
    quality.EvaluationDisputeResolved."""
    if outcome not in ("upheld", "rescored"):
        raise idomain.InvalidValue("outcome", "outcome is upheld or rescored")
    ev = Evaluation.objects.get(id=evaluation_id)
    note = idomain.masked(note)  # free text: card numbers and security codes masked, as everywhere
    fields: dict = {"status": Evaluation.RESOLVED, "resolution": f"{outcome}: {note}".strip()}
    result = None
    if outcome == "rescored":
        if answers is None:
            raise idomain.InvalidValue("answers", "rescoring needs the new answers")
        result = _score(ev.scorecard.form, answers)
        fields.update(answers=answers, score=result.score, sections=result.sections,
                      auto_failed=list(result.auto_failed))
    elif answers is not None:
        raise idomain.InvalidValue("answers", "answers go with outcome rescored only")
    event = EvaluationDisputeResolved(resolved_by=resolved_by, outcome=outcome, note=note, answers=answers,
                                      score=result.score if result else None,
                                      auto_failed=list(result.auto_failed) if result else None)
    return _change(evaluation_id, (Evaluation.DISPUTED,), "resolve", event, meta, **fields)


def calibration(interaction_id: uuid.UUID) -> dict:
    """Every reviewer's score of one interaction, per scorecard version, and how far apart they are."""
    import statistics

    out = []
    for scorecard_id in Evaluation.objects.filter(interaction_id=interaction_id).values_list(
            "scorecard", flat=True).distinct():
        evaluations = list(Evaluation.objects.filter(interaction_id=interaction_id, scorecard_id=scorecard_id)
                           .select_related("scorecard").order_by("reviewer"))
        scores = [e.score for e in evaluations]
        out.append({"scorecard": str(evaluations[0].scorecard), "reviewers": [
            {"reviewer": e.reviewer, "score": e.score, "auto_failed": e.auto_failed, "sections": e.sections}
            for e in evaluations],
            "mean": round(statistics.mean(scores), 2), "spread": round(max(scores) - min(scores), 2),
            "stdev": round(statistics.pstdev(scores), 2)})
    return {"interaction_id": str(interaction_id), "scorecards": out}


# --- sampling for review ---------------------------------------------------------------------------------


def sample_for_review(*, now=None, per_agent: int | None = None) -> int:
    """Pick up to `per_agent` (QUALITY_SAMPLES_PER_AGENT) interactions per agent from the last 7 days for review.

    Weighted, without replacement (Efraimidis-Spirakis keys, seeded by agent
    and week, so a re-run picks the same): a low CSAT, a long handle time
    (against the agent's own median) and a repeat contact weigh more; every
    resolved interaction can be picked. Idempotent: an agent who has their
    samples for the week gets no more. Returns how many were picked.
    """
    import datetime as dt
    import random
    import statistics

    from quality.models import InteractionFact, ReviewSample

    now = now or timezone.now()
    per_agent = settings.QUALITY_SAMPLES_PER_AGENT if per_agent is None else per_agent
    week = (now - dt.timedelta(days=now.weekday())).date()
    facts = list(InteractionFact.objects.filter(
        resolved_at__gte=now - dt.timedelta(days=7), resolved_at__lt=now, answered_at__isnull=False,
        direction="inbound").exclude(agent_id=None).values(
        "interaction_id", "agent_id", "csat", "talk_seconds", "hold_seconds", "acw_seconds", "repeat_contact_at"))
    taken = set(ReviewSample.objects.filter(interaction_id__in=[f["interaction_id"] for f in facts])
                .values_list("interaction_id", flat=True))
    by_agent: dict[str, list[dict]] = {}
    for f in facts:
        by_agent.setdefault(f["agent_id"], []).append(f)
    picked = 0
    with transaction.atomic():
        for agent, items in sorted(by_agent.items()):
            have = ReviewSample.objects.filter(agent_id=agent, week=week).count()
            if have >= per_agent:
                continue
            handle = {f["interaction_id"]: f["talk_seconds"] + f["hold_seconds"] + f["acw_seconds"] for f in items}
            median = statistics.median(handle.values()) or 1.0
            rnd = random.Random(f"{agent}/{week.isoformat()}")
            keyed = []
            for f in sorted(items, key=lambda x: str(x["interaction_id"])):
                if f["interaction_id"] in taken:
                    continue
                weight, reasons = _review_weight(f, handle[f["interaction_id"]], median)
                keyed.append((rnd.random() ** (1 / weight), f, weight, reasons))
            for _, f, weight, reasons in sorted(keyed, key=lambda k: -k[0])[:per_agent - have]:
                ReviewSample.objects.create(interaction_id=f["interaction_id"], agent_id=agent, week=week,
                                            weight=round(weight, 2), reasons=reasons)
                picked += 1
    return picked


def _review_weight(fact: dict, handle: float, median: float) -> tuple[float, list[str]]:
    weight, reasons = 1.0, []
    if fact["csat"] is not None and fact["csat"] <= 3:
        weight += 2.0 * (4 - fact["csat"])
        reasons.append(f"CSAT {fact['csat']}")
    if handle > 1.5 * median:
        weight += min(4.0, handle / median - 1)
        reasons.append(f"handle time {handle:.0f} s, the agent's median {median:.0f} s")
    if fact["repeat_contact_at"] is not None:
        weight += 1.0
        reasons.append("the customer contacted again")
    return weight, reasons
