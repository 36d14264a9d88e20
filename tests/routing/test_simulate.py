"""The traffic simulator against a real daphne and a real routing worker."""

import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from events.models import Event
from tests.routing.factories import make_queue

pytestmark = pytest.mark.django_db(transaction=True)


def test_simulated_customers_and_agents_run_through_the_system(web, routing_worker, settings, capsys):
    settings.WEBHOOK_SECRETS = {"sim": "sim-secret"}  # as the web process has it
    make_queue("billing", skills={"billing": 2}, channels=["chat", "email", "sms", "social"])
    make_queue("support", skills={"support": 2}, channels=["voice", "chat", "social"])
    call_command("simulate", agents=4, minutes=0.2, rate="2/s", url=web, handle_seconds=1.0, seed=7,
                 no_progress=True)
    out = capsys.readouterr().out
    assert "errors: 0" in out, out
    # Customers' contacts: inbound (each resolved one also gets an outbound survey interaction).
    arrived = Event.objects.filter(event_type="interactions.InteractionCreated", data__direction="inbound").count()
    surveys = Event.objects.filter(event_type="quality.SurveySent").count()
    assert surveys == Event.objects.filter(event_type="interactions.InteractionCreated",
                                           data__direction="outbound").count() and surveys >= 1
    answered = Event.objects.filter(event_type="quality.SurveyAnswered").count()
    assert answered >= 1 and f"surveys answered: {answered}," in out  # the customers answer most of them
    wrapped = Event.objects.filter(event_type="interactions.InteractionWrappedUp").count()
    offered = Event.objects.filter(event_type="interactions.InteractionOffered").count()
    assert arrived >= 10 and f"customers arrived: {arrived}" in out
    assert offered >= arrived * 0.8 and wrapped >= arrived * 0.6, out
    # The summary counts what the agents saw answered; a wrap-up still in flight at the end may land after it.
    reported = int(re.search(r"wrapped up (\d+)", out).group(1))
    assert arrived * 0.6 <= reported <= wrapped
    presence = Event.objects.filter(event_type="routing.AgentPresenceChanged").count()
    assert presence >= 8  # each agent went available, then offline at the end


def test_bad_arguments_are_refused():
    with pytest.raises(CommandError, match="--rate"):
        call_command("simulate", rate="fast")
    with pytest.raises(CommandError, match="--agents"):
        call_command("simulate", agents=0)
    with pytest.raises(CommandError, match="--provider"):
        call_command("simulate", provider="nobody")
