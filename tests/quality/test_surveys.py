"""Satisfaction surveys: sent after resolution on the preferred channel, answered once, counted in CSAT and NPS."""

import datetime as dt
import json
import time
import uuid

import pytest
from rest_framework.test import APIClient

from customers import services as customer_services
from events import store
from events.models import Event
from events.projection import apply_envelopes
from events.projection import get as get_projection
from events.replay import replay
from events.store import Metadata
from interactions import services as interaction_services
from interactions import webhooks
from interactions.models import Interaction
from quality import kpis, services
from quality.models import Survey
from routing import services as routing_services
from tests.conftest import client_for
from tests.routing.factories import make_agent, make_queue

pytestmark = pytest.mark.django_db(transaction=True)
M = Metadata()


def resolved(customer_id=None, disposition="done"):
    """An inbound chat, routed to ann, accepted, ended and wrapped up; returns the interaction."""
    if customer_id is None:
        customer_id = customer_services.customer_register(display_name="Sam", meta=M).customer_id
    iid = interaction_services.interaction_create(channel="chat", direction="inbound", meta=M,
                                                  customer_id=customer_id, queue="billing").interaction.id
    assert routing_services.work_route(interaction_id=iid).agent_id == "ann"
    interaction_services.interaction_accept(interaction_id=iid, agent_id="ann", meta=M)
    interaction_services.interaction_end(interaction_id=iid, reason="resolved", meta=M)
    interaction_services.interaction_wrap_up(interaction_id=iid, disposition=disposition, meta=M)
    return Interaction.objects.get(id=iid)


@pytest.fixture
def desk():
    make_queue("billing")
    make_agent("ann", capacity={"chat": 5})


def test_a_resolved_contact_gets_one_survey_on_the_customer_s_preferred_channel(desk, settings):
    sam = customer_services.customer_register(display_name="Sam", phone="+14155550100", preferred_channel="sms",
                                              meta=M).customer_id
    replay(get_projection("customers.directory"), progress=False)  # the profile the channel is read from
    row = resolved(sam)
    survey = Survey.objects.get(interaction_id=row.id)
    assert (survey.channel, survey.kind, survey.agent_id, survey.queue) == ("sms", "both", "ann", "billing")
    outbound = Interaction.objects.get(id=survey.outbound_interaction_id)
    assert (outbound.direction, outbound.channel, outbound.case_id) == ("outbound", "sms", row.case_id)
    question = store.read_stream(outbound.id)[-1]
    assert question.event_type == "interactions.MessageRecorded" and question.data["direction"] == "outbound"
    assert "Reply 1" in question.data["body"] and str(survey.id) in question.data["body"]
    assert "recommend" in question.data["body"]  # by default the survey asks CSAT and NPS
    sent = store.read_stream(survey.id)
    assert [e.event_type for e in sent] == ["quality.SurveySent"] and sent[0].customer_id == sam
    # Reopened and resolved again: not asked twice.
    interaction_services.interaction_reopen(interaction_id=row.id, reason="more", meta=M)
    assert Survey.objects.filter(interaction_id=row.id).count() == 1
    settings.SURVEY_KIND = "off"
    assert not Survey.objects.filter(interaction_id=resolved().id).exists()


def test_an_answer_counts_once_on_its_scale_and_only_integrations_record_it(desk, settings):
    settings.SURVEY_KIND = "csat"
    survey = Survey.objects.get(interaction_id=resolved().id)
    url = f"/api/v1/surveys/{survey.id}/answer/"
    assert client_for(make_agent("bob").user).post(url, {"csat": 5}, format="json").status_code == 403
    assert APIClient().post(url, {"csat": 5}, format="json").status_code == 401
    staff = make_agent("boss", presence="offline").user
    staff.is_staff = True
    staff.save()
    api = client_for(staff)
    for body, field in (({"csat": 6}, "csat"), ({}, "csat"), ({"csat": 4, "nps": 9}, "nps"),
                        ({"csat": "great"}, "csat")):
        bad = api.post(url, body, format="json")
        assert bad.status_code == 400 and field in json.dumps(bad.json()), (body, bad.content)
    assert not Event.objects.filter(event_type="quality.SurveyAnswered").exists()
    first = api.post(url, {"csat": 4, "comment": "quick"}, format="json")
    assert first.status_code == 201 and first.json()["csat"] == 4
    assert api.post(url, {"csat": 4, "comment": "quick"}, format="json").status_code == 200  # the same: once
    changed = api.post(url, {"csat": 1}, format="json")
    assert changed.status_code == 409 and changed.json()["code"] == "already_answered"
    assert Event.objects.filter(event_type="quality.SurveyAnswered").count() == 1
    assert api.get(f"/api/v1/surveys/{survey.id}/").json()["csat"] == 4
    assert api.get(f"/api/v1/surveys/{uuid.uuid4()}/").status_code == 404


def test_a_signed_webhook_answer_and_the_csat_and_nps_figures(desk, settings):
    settings.SURVEY_KIND = "csat"
    settings.WEBHOOK_SECRETS = {"acme": "acme-secret"}
    first = Survey.objects.get(interaction_id=resolved().id)

    def post(body, secret="acme-secret"):
        raw = json.dumps(body).encode()
        ts = str(int(time.time()))
        return APIClient().post("/api/v1/surveys/webhook/acme/", raw, content_type="application/json",
                                HTTP_X_TIMESTAMP=ts, HTTP_X_SIGNATURE=webhooks.sign(secret, ts, raw))

    assert post({"survey_id": str(first.id), "csat": 5}, secret="wrong").status_code == 401
    assert post({"survey_id": str(first.id), "csat": 5}).status_code == 201
    assert post({"survey_id": str(first.id), "csat": 5}).status_code == 200  # redelivered: counted once
    assert post({"survey_id": str(uuid.uuid4()), "csat": 5}).status_code == 404
    neither = post({"csat": 5})
    assert neither.status_code == 400 and "survey_id" in neither.json()
    by_interaction = resolved()  # an IVR survey after the call knows the call, not the survey
    assert post({"interaction_id": str(by_interaction.id), "csat": 3}).status_code == 201
    assert Survey.objects.get(interaction_id=by_interaction.id).csat == 3
    assert post({"interaction_id": str(uuid.uuid4()), "csat": 3}).status_code == 404
    for score in (4, 2):
        services.survey_answer(survey_id=Survey.objects.get(interaction_id=resolved().id).id, csat=score)
    settings.SURVEY_KIND = "nps"
    for score in (10, 9, 7, 3):
        services.survey_answer(survey_id=Survey.objects.get(interaction_id=resolved().id).id, nps=score)
    apply_envelopes(get_projection("quality.interaction_facts"), store.read_all(limit=100_000))
    window = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1), dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    csat = kpis.report("csat", ["agent"], *window)
    assert csat == [{"agent": "ann", "value": 0.5, "numerator": 2, "denominator": 4}]  # 5 and 4 of 5, 3, 4, 2
    nps = kpis.report("nps", [], *window)
    assert nps == [{"value": 25.0, "net_promoters": 1, "responses": 4}]  # (2 promoters - 1 detractor) / 4
