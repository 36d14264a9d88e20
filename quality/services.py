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
from quality.events import SurveyAnswered, SurveySent
from quality.models import Survey

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
        answered = SurveyAnswered(interaction_id=survey.interaction_id, csat=csat, nps=nps, comment=comment, via=via)
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
