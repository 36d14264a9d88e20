"""The KPI report over REST: who may read it, what bad queries get, JSON and CSV."""

import pytest
from rest_framework.test import APIClient

from routing.models import Team
from tests.conftest import client_for
from tests.quality.test_kpis import handled_day, project
from tests.routing.factories import make_agent

pytestmark = pytest.mark.django_db(transaction=True)

WINDOW = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}


def supervisor():
    boss = make_agent("boss", presence="offline")
    Team.objects.create(name="billing").supervisors.add(boss.user)
    return client_for(boss.user)


def test_supervisors_read_kpis_grouped_as_json_and_csv():
    handled_day()
    project()
    team = Team.objects.create(name="blue")
    ann = make_agent("ann")
    ann.team = team
    ann.save()
    api = supervisor()
    got = api.get("/api/v1/reports/kpis/", {"metric": "aht", "group_by": "agent,day", **WINDOW})
    assert got.status_code == 200, got.content
    body = got.json()
    assert body["kind"] == "mean_seconds" and "talk + hold + after-call work" in body["definition"]
    assert [{k: v for k, v in r.items() if k != "drilldown"} for r in body["rows"]] == [
        {"agent": "ann", "day": "2026-11-02T00:00:00", "value": 90.0, "total_seconds": 180.0, "count": 2}]
    by_team = api.get("/api/v1/reports/kpis/", {"metric": "transfer_rate", "group_by": "team", **WINDOW}).json()
    assert {r["team"]: r["value"] for r in by_team["rows"]} == {"blue": 0.0, None: 1.0}  # bob has no agent row
    csv = api.get("/api/v1/reports/kpis/", {"metric": "service_level", "group_by": "queue", "format": "csv",
                                            **WINDOW})
    assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
    assert csv.content.decode().splitlines() == ["metric,queue,value,numerator,denominator",
                                                 "service_level,billing,0.3333,1,3"]
    local = api.get("/api/v1/reports/kpis/", {"metric": "asa", "group_by": "hour", "tz": "Asia/Tokyo", **WINDOW})
    assert local.json()["rows"][0]["hour"] == "2026-11-02T18:00:00"  # 09:00 UTC


def test_agents_and_anonymous_callers_may_not_and_bad_queries_name_the_field():
    agent = client_for(make_agent("ann").user)
    assert agent.get("/api/v1/reports/kpis/", {"metric": "aht", **WINDOW}).status_code == 403
    assert APIClient().get("/api/v1/reports/kpis/", {"metric": "aht", **WINDOW}).status_code == 401
    api = supervisor()
    for query, field in (({"metric": "happiness", **WINDOW}, "metric"),
                         ({"metric": "aht", "to": WINDOW["to"]}, "from"),
                         ({"metric": "aht", "group_by": "agent,planet", **WINDOW}, "group_by"),
                         ({"metric": "aht", "tz": "Mars/Olympus", **WINDOW}, "tz"),
                         ({"metric": "aht", "from": WINDOW["to"], "to": WINDOW["from"]}, "to"),
                         ({"metric": "aht", "from": "yesterday", "to": WINDOW["to"]}, "from"),
                         ({"metric": "occupancy", "group_by": "queue", **WINDOW}, "group_by")):
        bad = api.get("/api/v1/reports/kpis/", query)
        assert bad.status_code == 400 and field in bad.json(), (query, bad.content)
