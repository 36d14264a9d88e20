"""What-if routing: a recorded day replayed through the routing engine, against what the live engine did."""

import io
import json
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from routing import tasks, whatif
from routing.models import Agent, Simulation, Team
from tests.conftest import client_for
from tests.routing.recorded_day import record_day

pytestmark = pytest.mark.django_db(transaction=True)


def counts() -> dict:
    with connection.cursor() as cur:
        out = {}
        for table in ("events_event", "events_outbox", "routing_work", "interactions_interaction"):
            cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (our table names)
            out[table] = cur.fetchone()[0]
        cur.execute("SELECT string_agg(u.username || a.presence || a.version, ',' ORDER BY a.id) FROM routing_agent a "
                    "JOIN auth_user u ON u.id = a.user_id")
        out["agents"] = cur.fetchone()[0]
    return out


def test_the_recorded_policy_replayed_matches_the_day_the_live_engine_recorded_within_tolerance():
    day = record_day()
    assert day.arrivals > 200 and day.abandoned > 5 and day.answered > 150  # a day with queues and hang-ups
    before = counts()
    report = whatif.what_if(day.start, day.end)
    print(json.dumps({k: report[k] for k in ("fidelity", "performance")}, indent=1))
    print(json.dumps({k: report[k]["totals"] for k in ("recorded", "recorded_policy")}, indent=1))
    assert counts() == before  # nothing written: no event, no outbox row, no routing state
    recorded, replayed = report["recorded"]["totals"], report["recorded_policy"]["totals"]
    assert recorded["arrived"] == replayed["arrived"] == report["contacts"] == day.arrivals
    assert recorded["answered"] == day.answered
    assert all(report["fidelity"]["within_tolerance"].values()), report["fidelity"]
    # Per queue too, the replay stays near what happened.
    for mine, theirs in zip(report["recorded"]["queues"], report["recorded_policy"]["queues"], strict=True):
        assert mine["queue"] == theirs["queue"] and mine["arrived"] == theirs["arrived"]
        assert abs(mine["service_level"] - theirs["service_level"]) <= 0.1, (mine, theirs)
    # The candidate is the recorded policy: the same figures, seed for seed.
    assert report["candidate"] == report["recorded_policy"]
    assert report["difference"] == {k: 0 for k in report["difference"]}

    # Candidates on the same day move the figures the way they must.
    wider = whatif.what_if(day.start, day.end, {"agents": {"*": {"capacity": {"chat": 3}}}})
    assert wider["recorded_policy"] == report["recorded_policy"]  # the same replay, whatever the candidate
    assert wider["candidate"] != wider["recorded_policy"]  # three chats each changes who waits how long
    assert wider["difference"]["service_level"] == round(wider["candidate"]["totals"]["service_level"]
                                                         - wider["recorded_policy"]["totals"]["service_level"], 4)
    stricter = whatif.what_if(day.start, day.end, {"queues": {"billing": {"skills": {"billing": 5}, "expansion": []}}})
    billing = next(q for q in stricter["candidate"]["queues"] if q["queue"] == "billing")
    was = next(q for q in stricter["recorded_policy"]["queues"] if q["queue"] == "billing")
    assert billing["service_level"] < was["service_level"] and billing["abandoned"] > was["abandoned"]
    handled = {a["agent_id"]: a["handled"] for a in stricter["candidate"]["agents"]}
    assert handled["agent0"] == billing["answered"]  # the only billing 5, who has no other skill, took them all
    more = whatif.what_if(day.start, day.end, {"agents": {"extra": {"copy_of": "agent6"}}})
    assert any(a["agent_id"] == "extra" and a["handled"] > 0 for a in more["candidate"]["agents"])
    assert more["difference"]["asa_seconds"] <= 0
    assert counts() == before  # still nothing written


@pytest.fixture
def small_day():
    return record_day(hours=0.5, contacts=40, seed=3)


def test_supervisors_replay_a_period_through_the_api_and_read_the_difference(small_day):
    users = get_user_model().objects
    admin = users.create_user("boss", password="x", is_staff=True)
    sup = users.create_user("sup", password="x")
    team = Team.objects.create(name="T")
    team.supervisors.add(sup)
    Agent.objects.filter(user__username__in=["agent0", "agent1"]).update(team=team)
    agent = client_for(Agent.objects.get(user__username="agent2").user)
    frm, to = small_day.start.isoformat(), small_day.end.isoformat()
    url = "/api/v1/routing/simulations/"

    assert agent.post(url, {"from": frm, "to": to}, format="json").status_code == 403
    described = client_for(sup).options(url)  # found by make fuzz: a 500
    assert described.status_code == 200 and "from" in described.json()["actions"]["POST"]
    bad = client_for(sup).post(url, {"from": frm, "to": to, "policy": {"queues": {"billing": {"expansion": "soon"}}}},
                               format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "policy.queues.billing.expansion"
    future = client_for(sup).post(url, {"from": frm, "to": "2999-01-01T00:00:00Z"}, format="json")
    assert future.status_code == 400 and future.json()["field"] == "to"
    extra = client_for(sup).post(url, {"from": frm, "to": to, "agents": 3}, format="json")
    assert extra.status_code == 400 and "agents" in extra.json()
    assert not Simulation.objects.exists()  # nothing half-recorded

    boss = client_for(admin)
    made = boss.post(url, {"from": frm, "to": to, "policy": {"agents": {"*": {"capacity": {"chat": 1}}}}},
                     format="json")
    assert made.status_code == 202, made.content
    body = made.json()
    assert body["status"] == "queued" and body["result"] is None and body["url"] == f"{url}{body['id']}/"
    assert tasks.simulate(body["id"]) == "done"  # what the worker runs
    assert tasks.simulate(body["id"]) == "done"  # redelivered: nothing more
    done = boss.get(body["url"]).json()
    assert done["status"] == "done" and done["finished_at"]
    result = done["result"]
    assert result["contacts"] == small_day.arrivals
    assert result["recorded"]["totals"]["answered"] == small_day.answered
    assert result["difference"]["asa_seconds"] >= 0  # one chat at a time: no faster
    assert {a["agent_id"] for a in result["candidate"]["agents"]} >= {"agent0", "agent2"}
    assert client_for(sup).get(body["url"]).status_code == 404  # the admin's, not the supervisor's

    mine = client_for(sup).post(url, {"from": frm, "to": to}, format="json").json()
    tasks.simulate(mine["id"])
    seen = client_for(sup).get(mine["url"]).json()["result"]
    assert seen["scoped"] is True and seen["performance"] is None
    assert seen["contacts"] == sum(q["arrived"] for q in seen["recorded"]["queues"]) < small_day.arrivals
    assert {a["agent_id"] for a in seen["candidate"]["agents"]} <= {"agent0", "agent1"}
    assert seen["recorded"]["totals"]["arrived"] == sum(q["arrived"] for q in seen["recorded"]["queues"])
    listed = client_for(sup).get(url).json()["results"]
    assert [s["id"] for s in listed] == [mine["id"]]
    assert len(boss.get(url).json()["results"]) == 2
    assert boss.get(f"{url}{uuid.uuid4()}/").status_code == 404
    nothing = client_for(sup).post(url, {"from": frm, "to": to, "policy": []}, format="json")
    assert nothing.status_code == 400 and "policy" in nothing.json()

    # A run found already running was delivered again after its worker died: it is failed, not run again.
    stuck = Simulation.objects.create(requested_by="sup", start=small_day.start, end=small_day.end,
                                      status=Simulation.RUNNING)
    assert tasks.simulate(str(stuck.id)) == "failed"
    stuck.refresh_from_db()
    assert stuck.result is None and "worker stopped" in stuck.error


def test_the_simulation_task_runs_on_the_default_queue_not_the_routing_workers():
    from contactcenter.celery import app

    route = app.amqp.router.route({}, tasks.simulate.name, args=(), kwargs={})
    assert route["queue"].name == "celery"


def test_the_command_prints_the_figures_side_by_side(small_day, tmp_path):
    spec = tmp_path / "policy.json"
    spec.write_text(json.dumps({"agents": {"extra": {"copy_of": "agent6"}}}))
    out = io.StringIO()
    call_command("simulate_routing", "--from", small_day.start.isoformat(), "--to", small_day.end.isoformat(),
                 "--policy", str(spec), stdout=out)
    text = out.getvalue()
    assert "service_level" in text and "recorded policy" in text and "(added)" in text and "events/s" in text
    out = io.StringIO()
    call_command("simulate_routing", "--from", small_day.start.isoformat(), "--to", small_day.end.isoformat(),
                 "--json", "--save", stdout=out)
    report = json.loads(out.getvalue())
    assert report["contacts"] == small_day.arrivals and Simulation.objects.get().status == "done"
    spec.write_text(json.dumps({"queues": {"billing": {"tie_break": "coin"}}}))
    with pytest.raises(CommandError, match="policy.queues.billing.tie_break"):
        call_command("simulate_routing", "--from", small_day.start.isoformat(), "--to", small_day.end.isoformat(),
                     "--policy", str(spec))
    with pytest.raises(CommandError, match="--from"):
        call_command("simulate_routing", "--from", "yesterday", "--to", small_day.end.isoformat())
