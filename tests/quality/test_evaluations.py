"""Evaluations over REST: reviewers score, agents see and answer only their own, disputes, calibration."""

import uuid

import pytest
from rest_framework.test import APIClient

from events import store
from events.models import Event
from quality.models import Evaluation, Scorecard
from routing.models import Team
from tests.conftest import client_for
from tests.quality.test_scoring import FORM
from tests.quality.test_surveys import resolved
from tests.routing.factories import make_agent, make_queue

pytestmark = pytest.mark.django_db(transaction=True)
GOOD = {"greeted": "yes", "identity": "yes", "empathy": 5, "solved": "yes"}


@pytest.fixture
def people(settings):
    settings.SURVEY_KIND = "off"
    make_queue("billing")
    team = Team.objects.create(name="billing")  # the supervisors see the evaluations of their team's agents
    ann = make_agent("ann", capacity={"chat": 5}, team=team)
    bob = make_agent("bob", presence="offline", team=team)
    boss, lead = make_agent("boss", presence="offline"), make_agent("lead", presence="offline")
    team.supervisors.add(boss.user, lead.user)
    staff = make_agent("admin", presence="offline").user
    staff.is_staff = True
    staff.save()
    return {n: client_for(a.user) for n, a in (("ann", ann), ("bob", bob), ("boss", boss), ("lead", lead))} | {
        "staff": client_for(staff)}


def test_reviewers_score_agents_see_their_own_and_dispute_it(people):
    created = people["staff"].post("/api/v1/scorecards/", {"name": "chat", "form": FORM}, format="json")
    assert created.status_code == 201 and created.json()["version"] == 1
    card = created.json()["id"]
    assert people["boss"].post("/api/v1/scorecards/", {"name": "x", "form": FORM}, format="json").status_code == 403
    bad = people["staff"].post("/api/v1/scorecards/", {"name": "x", "form": {"sections": []}}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "form.sections"
    iid = str(resolved().id)
    answers = {"greeted": "no", "identity": "yes", "empathy": 4, "solved": "yes"}
    assert people["ann"].post("/api/v1/evaluations/", {"scorecard": card, "interaction_id": iid,
                                                       "answers": answers}, format="json").status_code == 403
    wrong = people["boss"].post("/api/v1/evaluations/", {"scorecard": card, "interaction_id": iid,
                                                         "answers": {**answers, "empathy": 9}}, format="json")
    assert wrong.status_code == 400 and wrong.json()["field"] == "answers.empathy"
    assert not Evaluation.objects.exists()
    done = people["boss"].post("/api/v1/evaluations/", {"scorecard": card, "interaction_id": iid,
                                                        "answers": answers}, format="json")
    assert done.status_code == 201, done.content
    ev = done.json()
    assert (ev["agent_id"], ev["score"], ev["status"]) == ("ann", 83.6, "submitted")
    again = people["boss"].post("/api/v1/evaluations/", {"scorecard": card, "interaction_id": iid,
                                                         "answers": answers}, format="json")
    assert again.status_code == 409
    url = f"/api/v1/evaluations/{ev['id']}/"
    # ann sees hers, with the transcript beside it; bob sees nothing of it (404, not 403: existence does not leak)
    mine = people["ann"].get(url).json()
    assert mine["score"] == 83.6 and any(line["event_type"] == "interactions.InteractionWrappedUp"
                                         for line in mine["transcript"])
    assert people["bob"].get(url).status_code == 404 and people["bob"].get("/api/v1/evaluations/").json() == []
    assert [e["id"] for e in people["ann"].get("/api/v1/evaluations/").json()] == [ev["id"]]
    assert people["bob"].post(url + "dispute/", {"reason": "not mine"}, format="json").status_code == 404
    assert people["boss"].post(url + "dispute/", {"reason": "x"}, format="json").status_code == 403
    assert people["ann"].post(url + "dispute/", {"reason": ""}, format="json").status_code == 400
    disputed = people["ann"].post(url + "dispute/", {"reason": "I did greet by name"}, format="json")
    assert disputed.status_code == 200 and disputed.json()["status"] == "disputed"
    assert people["ann"].post(url + "resolve/", {"outcome": "upheld"}, format="json").status_code == 403
    rescored = people["lead"].post(url + "resolve/", {"outcome": "rescored", "note": "heard it",
                                                     "answers": GOOD}, format="json")
    assert rescored.status_code == 200 and rescored.json()["score"] == 100.0
    assert people["ann"].post(url + "dispute/", {"reason": "again"}, format="json").status_code == 409
    assert people["ann"].post(url + "acknowledge/").json()["status"] == "acknowledged"
    assert [e.event_type for e in store.read_stream(uuid.UUID(ev["id"]))] == [
        "quality.EvaluationSubmitted", "quality.EvaluationDisputed", "quality.EvaluationDisputeResolved",
        "quality.EvaluationAcknowledged"]
    assert APIClient().get("/api/v1/evaluations/").status_code == 401


def test_calibration_shows_each_reviewer_and_the_spread_and_versions_stay(people):
    card = people["staff"].post("/api/v1/scorecards/", {"name": "chat", "form": FORM}, format="json").json()["id"]
    iid = str(resolved().id)
    for who, answers in (("boss", GOOD), ("lead", {**GOOD, "identity": "no"}), ("staff", {**GOOD, "empathy": 0})):
        r = people[who].post("/api/v1/evaluations/", {"scorecard": card, "interaction_id": iid, "answers": answers},
                             format="json")
        assert r.status_code == 201, r.content
    got = people["boss"].get("/api/v1/evaluations/calibration/", {"interaction_id": iid}).json()
    (only,) = got["scorecards"]
    assert {r["reviewer"]: r["score"] for r in only["reviewers"]} == {"boss": 100.0, "lead": 0.0, "admin": 68.0}
    assert (only["mean"], only["spread"]) == (56.0, 100.0)  # admin: (20 x 100 + 80 x 3/5 x 100) / 100
    assert people["ann"].get("/api/v1/evaluations/calibration/", {"interaction_id": iid}).status_code == 403
    # A new version of the form: offered from now on; the evaluations keep the version they used.
    v2 = people["staff"].post("/api/v1/scorecards/", {"name": "chat", "form": FORM}, format="json").json()
    assert v2["version"] == 2 and [c["version"] for c in people["boss"].get("/api/v1/scorecards/").json()] == [2]
    assert set(Evaluation.objects.values_list("scorecard__version", flat=True)) == {1}
    assert Scorecard.objects.count() == 2 and Event.objects.filter(event_type="quality.EvaluationSubmitted").count() == 3
