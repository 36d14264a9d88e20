"""The weekly sampling for review: per agent, weighted to low CSAT and long handle time, idempotent."""

import datetime as dt
import uuid

import pytest
from django.conf import settings

from quality import services
from quality.models import InteractionFact, ReviewSample
from tests.conftest import client_for
from tests.routing.factories import make_agent

pytestmark = pytest.mark.django_db(transaction=True)
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)  # a Friday


def fact(agent, *, csat=None, handle=60.0, days_ago=1.0, iid=None):
    at = NOW - dt.timedelta(days=days_ago)
    return InteractionFact.objects.create(
        interaction_id=iid or uuid.uuid4(), customer_id=uuid.uuid4(), channel="chat", direction="inbound", created_at=at,
        answered_at=at, agent_id=agent, resolved_at=at, talk_seconds=handle, csat=csat).interaction_id


def test_each_agent_gets_their_share_weighted_to_what_needs_a_look_and_a_rerun_adds_nothing():
    for _ in range(10):
        fact("ann", csat=5)
        fact("bob", csat=5)
    poor = fact("ann", csat=1)
    slow = fact("bob", handle=600)
    fact("ann", days_ago=9)  # last week's: not this week's sample
    assert services.sample_for_review(now=NOW, per_agent=2) == 4
    assert services.sample_for_review(now=NOW, per_agent=2) == 0  # idempotent
    picked = list(ReviewSample.objects.all())
    assert sorted(s.agent_id for s in picked) == ["ann", "ann", "bob", "bob"]
    assert {s.week for s in picked} == {dt.date(2026, 11, 16)}
    assert all(s.weight >= 1 for s in picked)
    facts = {f.interaction_id: f for f in InteractionFact.objects.filter(interaction_id__in=[poor, slow])}
    assert services._review_weight({"csat": 1, "repeat_contact_at": None}, 60, 60) == (7.0, ["CSAT 1"])
    weight, reasons = services._review_weight({"csat": None, "repeat_contact_at": None},
                                              facts[slow].talk_seconds, 60)
    assert weight == 5.0 and reasons[0].startswith("handle time 600 s")  # 1 + at most 4 for ten times the median


def test_low_csat_is_picked_far_more_often_than_chance():
    hits = 0
    for week in range(20):  # 20 different weeks: 20 different seeds
        now = NOW + dt.timedelta(weeks=week)
        InteractionFact.objects.all().delete()
        ReviewSample.objects.all().delete()
        ids = [uuid.UUID(int=week * 100 + k + 1) for k in range(10)]  # fixed: the draw is reproducible
        for iid in ids[:9]:
            InteractionFact.objects.filter(interaction_id=fact("ann", csat=5, iid=iid)).update(
                resolved_at=now - dt.timedelta(days=1))
        poor = fact("ann", csat=1, iid=ids[9])
        InteractionFact.objects.filter(interaction_id=poor).update(resolved_at=now - dt.timedelta(days=1))
        services.sample_for_review(now=now, per_agent=1)
        hits += ReviewSample.objects.filter(interaction_id=poor).exists()
    assert hits >= 8  # by chance 1 in 10 (about 2 of 20); weight 7 against 1: about 44 %


def test_the_evaluation_queue_is_for_reviewers():
    fact("ann", csat=2)
    services.sample_for_review(now=NOW)
    ann = make_agent("ann")
    assert client_for(ann.user).get("/api/v1/evaluations/queue/").status_code == 403
    boss = make_agent("boss", presence="offline").user
    boss.is_staff = True
    boss.save()
    queue = client_for(boss).get("/api/v1/evaluations/queue/").json()
    assert [(q["agent_id"], q["reasons"]) for q in queue] == [("ann", ["CSAT 2"])]
    assert settings.CELERY_BEAT_SCHEDULE["quality-sample-reviews"]["task"] == "quality.tasks.sample_reviews"
