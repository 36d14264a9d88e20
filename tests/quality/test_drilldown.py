"""KPI drill-down: every report row's `drilldown` link lists exactly the contacts its figure counted."""

import datetime as dt
import uuid

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from events import store
from events.projection import apply_envelopes
from events.projection import get as get_projection
from interactions import events as iev
from quality import kpis, services
from quality.models import InteractionFact, Survey
from routing.models import Team
from tests.conftest import client_for
from tests.quality.test_kpis import DAY, handled_day, project, script
from tests.quality.test_surveys import resolved
from tests.routing.factories import make_agent, make_queue

pytestmark = pytest.mark.django_db(transaction=True)

WINDOW = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
FACT_METRICS = sorted(set(kpis.metrics()) - {"occupancy"})


def admin():
    user = get_user_model().objects.create_user("root", password="x", is_staff=True)
    return client_for(user)


def handled(agent, disposition, *, customer=None, case=None, start=0, reopen=False):
    """An inbound chat `agent` accepted, ended and wrapped up with `disposition`, `start` after T0."""
    s = start if isinstance(start, dt.timedelta) else dt.timedelta(seconds=start)
    steps = [(s + dt.timedelta(seconds=5), iev.InteractionAccepted(agent_id=agent)),
             (s + dt.timedelta(seconds=65), iev.InteractionEnded(reason="resolved")),
             (s + dt.timedelta(seconds=80), iev.InteractionWrappedUp(disposition=disposition))]
    if reopen:
        steps.append((s + dt.timedelta(seconds=90), iev.InteractionReopened(reason="not fixed")))
    return script(steps, customer=customer, case=case, start=s)


def fcr_week():
    """ann: a contact the customer came back about (bob took the repeat), one resolved first time, one reopened;
    bob: the repeat, resolved first time."""
    x = uuid.uuid4()
    first = handled("ann", "billing/refund", customer=x)
    again = handled("bob", "billing/refund", customer=x, start=3 * DAY)
    fine = handled("ann", "tech/reset")
    reopened = handled("ann", "tech/reset", start=DAY, reopen=True)
    project()
    return first, again, fine, reopened


def follow(api, link, page_size=2):
    """Every page of a drill-down link: (the first page's body, all rows)."""
    response = api.get(f"{link}&page_size={page_size}")
    assert response.status_code == 200, response.content
    body = response.json()
    first, rows = body, list(body["results"])
    while body["next"]:
        body = api.get(body["next"]).json()
        rows += body["results"]
    return first, rows


def assert_adds_up(kind, row, rows):
    """The drill-down rows make exactly the report row's figure."""
    if kind == "ratio":
        assert sum(r["counted_as"] == "numerator" for r in rows) == row["numerator"]
        assert len(rows) == row["denominator"]
    elif kind == "nps":
        groups = [r["counted_as"] for r in rows]
        assert groups.count("promoter") - groups.count("detractor") == row["net_promoters"]
        assert len(rows) == row["responses"]
    else:
        assert round(sum(r["seconds"] for r in rows), 1) == row["total_seconds"]
        assert len(rows) == row["count"]
    assert len({r["interaction_id"] for r in rows}) == len(rows)  # no contact twice across pages


def test_an_fcr_figure_traces_to_its_first_time_resolutions_and_repeat_contacts():
    first, again, fine, reopened = fcr_week()
    api = admin()
    report = api.get("/api/v1/reports/kpis/", {"metric": "fcr", "group_by": "agent,day", **WINDOW}).json()
    rows = {(r["agent"], r["day"]): r for r in report["rows"]}
    assert set(rows) == {("ann", "2026-11-02T00:00:00"), ("ann", "2026-11-03T00:00:00"),
                         ("bob", "2026-11-05T00:00:00")}
    for row in report["rows"]:
        body, contacts = follow(api, row["drilldown"], page_size=1)
        assert body["figure"] == {k: v for k, v in row.items() if k != "drilldown"}
        assert_adds_up("ratio", row, contacts)
    _, monday = follow(api, rows[("ann", "2026-11-02T00:00:00")]["drilldown"])
    split = {r["interaction_id"]: r for r in monday}
    assert set(split) == {str(first), str(fine)}
    assert split[str(fine)]["counted_as"] == "numerator"
    repeat = split[str(first)]
    assert repeat["counted_as"] == "denominator_only" and repeat["repeat_contact_at"] is not None
    assert repeat["repeat_contact_id"] == str(again) and split[str(fine)]["repeat_contact_id"] is None
    assert InteractionFact.objects.get(interaction_id=again).repeat_of == first  # the contact that undid it
    _, tuesday = follow(api, rows[("ann", "2026-11-03T00:00:00")]["drilldown"])
    assert [(r["interaction_id"], r["counted_as"], r["reopened"]) for r in tuesday] == [
        (str(reopened), "denominator_only", 1)]
    # Links: the interaction, its routing decisions, and the stored events its fact was projected from.
    assert repeat["interaction"] == f"/api/v1/interactions/{first}/"
    assert repeat["routing"] == f"/api/v1/interactions/{first}/routing/"
    stored = [(e.position, str(e.event_id), e.event_type) for e in store.read_stream(first)]
    assert [(e["position"], e["event_id"], e["event_type"]) for e in repeat["events"]] == stored


def test_every_fact_metric_and_grouping_adds_up_to_its_report_row():
    handled_day()
    fcr_week()
    ann = make_agent("ann", presence="offline")
    ann.team = Team.objects.create(name="blue")
    ann.save()
    api = admin()
    opened = 0
    for metric in FACT_METRICS:
        for group_by in ("", "agent", "queue,day", "team,channel", "hour"):
            report = api.get("/api/v1/reports/kpis/", {"metric": metric, "group_by": group_by, **WINDOW}).json()
            for row in report["rows"]:
                body, contacts = follow(api, row["drilldown"], page_size=3)
                assert body["figure"] == {k: v for k, v in row.items() if k != "drilldown"}, (metric, group_by)
                assert_adds_up(report["kind"], row, contacts)
                opened += 1
    assert opened > 60
    # AHT by hand: ann's 120 s and bob's transferred call, handled last by ann (60 s) on Monday.
    aht = api.get("/api/v1/reports/kpis/", {"metric": "aht", "group_by": "channel", **WINDOW}).json()
    voice = next(r for r in aht["rows"] if r["channel"] == "voice")
    _, calls = follow(api, voice["drilldown"])
    assert [(r["counted_as"], r["seconds"], r["agent_id"]) for r in calls] == [("seconds", 60.0, "ann")]
    # Occupancy is not a count of contacts: no link.
    occupancy = api.get("/api/v1/reports/kpis/", {"metric": "occupancy", "group_by": "agent", **WINDOW}).json()
    assert all(r["drilldown"] is None for r in occupancy["rows"])


def test_csat_and_nps_trace_to_each_answer_and_a_contact_to_its_routing_decision(settings):
    make_queue("billing")
    make_agent("ann", capacity={"chat": 5})
    settings.SURVEY_KIND = "csat"
    for score in (5, 4, 2):
        services.survey_answer(survey_id=Survey.objects.get(interaction_id=resolved().id).id, csat=score)
    settings.SURVEY_KIND = "nps"
    for score in (10, 7, 3, 2):
        services.survey_answer(survey_id=Survey.objects.get(interaction_id=resolved().id).id, nps=score)
    apply_envelopes(get_projection("quality.interaction_facts"), store.read_all(limit=100_000))
    now = dt.datetime.now(dt.UTC)
    window = {"from": (now - DAY).isoformat(), "to": (now + DAY).isoformat()}
    api = admin()
    csat = api.get("/api/v1/reports/kpis/", {"metric": "csat", "group_by": "agent", **window}).json()["rows"]
    assert [(r["agent"], r["numerator"], r["denominator"]) for r in csat] == [("ann", 2, 3)]
    _, answers = follow(api, csat[0]["drilldown"])
    assert_adds_up("ratio", csat[0], answers)
    assert sorted((r["csat"], r["counted_as"]) for r in answers) == [
        (2, "denominator_only"), (4, "numerator"), (5, "numerator")]
    # The survey answer is one of the events behind the figure (it lives in the survey's stream).
    answered = [e for e in answers[0]["events"] if e["event_type"] == "quality.SurveyAnswered"]
    survey = Survey.objects.get(interaction_id=answers[0]["interaction_id"])
    assert [e["event_id"] for e in answered] == [str(e.event_id) for e in store.read_stream(survey.id)
                                                 if e.event_type == "quality.SurveyAnswered"]
    nps = api.get("/api/v1/reports/kpis/", {"metric": "nps", **window}).json()["rows"]
    assert (nps[0]["net_promoters"], nps[0]["responses"]) == (-1, 4)  # 1 promoter - 2 detractors
    _, responses = follow(api, nps[0]["drilldown"])
    assert_adds_up("nps", nps[0], responses)
    assert sorted((r["nps"], r["counted_as"]) for r in responses) == [
        (2, "detractor"), (3, "detractor"), (7, "passive"), (10, "promoter")]
    assert api.get(responses[0]["interaction"]).json()["id"] == responses[0]["interaction_id"]
    # A contact's routing explanation: the decision, with the candidates it weighed.
    routing = api.get(responses[0]["routing"])
    assert routing.status_code == 200
    decisions = [step["data"] for step in routing.json() if step["event_type"] == "routing.InteractionRouted"]
    assert len(decisions) == 1 and decisions[0]["agent_id"] == "ann"
    assert [c.get("agent_id") for c in decisions[0]["explanation"]["candidates"]] == ["ann"]


def test_a_team_supervisor_drills_into_their_team_s_contacts_only():
    first, again, fine, reopened = fcr_week()
    blue, green = Team.objects.create(name="blue"), Team.objects.create(name="green")
    for name, team in (("ann", blue), ("bob", green)):
        agent = make_agent(name, presence="offline")
        agent.team = team
        agent.save()
    boss = make_agent("boss", presence="offline")
    blue.supervisors.add(boss.user)
    api = client_for(boss.user)
    report = api.get("/api/v1/reports/kpis/", {"metric": "fcr", **WINDOW}).json()
    assert [(r["numerator"], r["denominator"]) for r in report["rows"]] == [(1, 3)]  # ann's three, not bob's
    body, contacts = follow(api, report["rows"][0]["drilldown"])
    assert body["figure"]["denominator"] == 3
    assert {r["interaction_id"] for r in contacts} == {str(first), str(fine), str(reopened)}
    # Asking for bob's row by hand: nothing of his is counted or listed.
    bobs = api.get("/api/v1/reports/kpis/drilldown/", {"metric": "fcr", "group_by": "agent", "agent": "bob",
                                                       **WINDOW}).json()
    assert bobs["results"] == [] and bobs["figure"]["denominator"] == 0
    # An admin's drill-down of the same row does list bob's contact.
    everyone = admin().get("/api/v1/reports/kpis/drilldown/", {"metric": "fcr", "group_by": "agent",
                                                               "agent": "bob", **WINDOW}).json()
    assert [r["interaction_id"] for r in everyone["results"]] == [str(again)]


def test_agents_may_not_and_bad_drilldowns_name_the_field():
    handled_day()
    fcr_week()
    url = "/api/v1/reports/kpis/drilldown/"
    agent = client_for(make_agent("ann").user)
    assert agent.get(url, {"metric": "aht", **WINDOW}).status_code == 403
    assert APIClient().get(url, {"metric": "aht", **WINDOW}).status_code == 401
    api = admin()
    for query, field in (({"metric": "happiness", **WINDOW}, "metric"),
                         ({"metric": "occupancy", **WINDOW}, "metric"),
                         ({"metric": "aht", "group_by": "agent", **WINDOW}, "agent"),  # the row's agent missing
                         ({"metric": "aht", "agent": "ann", **WINDOW}, "agent"),  # not grouped by agent
                         ({"metric": "aht", "group_by": "day", "day": "2026-13-01", **WINDOW}, "day"),
                         ({"metric": "aht", "group_by": "day", "day": "2027-01-01T00:00:00", **WINDOW}, "day"),
                         ({"metric": "aht", "to": WINDOW["to"]}, "from"),
                         ({"metric": "aht", "page_size": "all", **WINDOW}, "page_size")):
        bad = api.get(url, query)
        assert bad.status_code == 400 and field in str(bad.json()), (query, bad.content)
    # A null group (never queued) is asked for with an empty value, as the report row's link does.
    report = api.get("/api/v1/reports/kpis/", {"metric": "fcr", "group_by": "queue", **WINDOW}).json()
    unqueued = next(r for r in report["rows"] if r["queue"] is None)
    assert unqueued["denominator"] == 4 and "queue=&" in unqueued["drilldown"] + "&"
    _, contacts = follow(api, unqueued["drilldown"])
    assert len(contacts) == 4 and {r["queue"] for r in contacts} == {None}
