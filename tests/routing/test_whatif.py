"""What-if routing: a recorded day replayed through the routing engine, against what the live engine did."""

import datetime as dt
import json

import pytest
from django.db import connection

from routing import whatif
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
