"""KPIs from scripted event sequences, against figures worked out by hand (docs/KPIS.md)."""

import datetime as dt
import uuid

import pytest

from events import store
from events.projection import apply_envelopes
from events.projection import get as get_projection
from events.replay import replay
from interactions import events as iev
from quality import kpis
from quality.models import InteractionFact
from tests.routing.factories import make_queue

pytestmark = pytest.mark.django_db(transaction=True)

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)  # a Monday
DAY = dt.timedelta(days=1)
WINDOW = (T0 - DAY, T0 + 30 * DAY)


def script(steps, *, customer=None, case=None, channel="chat", direction="inbound", start=0):
    """Append one interaction's events, created at T0 + `start`, each step at T0 + its offset (seconds or a
    timedelta); returns its id."""
    iid, customer, case = uuid.uuid4(), customer or uuid.uuid4(), case or uuid.uuid4()
    events = [(start, iev.InteractionCreated(channel=channel, direction=direction, case_id=case)), *steps]
    for version, (offset, event) in enumerate(events):
        at = T0 + (offset if isinstance(offset, dt.timedelta) else dt.timedelta(seconds=offset))
        store.append(stream_type="interaction", stream_id=iid, customer_id=customer, events=[event],
                     expected_version=version, occurred_at=at)
    return iid


def project(reverse=False):
    """Apply every stored event to the facts, interaction by interaction (last one first when `reverse`)."""
    envelopes = store.read_all(limit=100_000)
    streams = list(dict.fromkeys(e.stream_id for e in envelopes))
    if reverse:
        streams.reverse()
    for sid in streams:
        apply_envelopes(get_projection("quality.interaction_facts"), [e for e in envelopes if e.stream_id == sid])


def value(metric, group_by=(), **match):
    rows = kpis.report(metric, list(group_by), *WINDOW)
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    assert len(found) == 1, rows
    return found[0]


def handled_day():
    """Two answered interactions, a short abandon and a real one, in a queue with a 20 s service level."""
    make_queue("billing", service_level_seconds=20)
    q = iev.InteractionQueued(queue="billing")
    a = script([(0, q), (8, iev.InteractionOffered(agent_id="ann")), (10, iev.InteractionAccepted(agent_id="ann")),
                (40, iev.InteractionHeld()), (70, iev.InteractionResumed()),
                (100, iev.InteractionEnded(reason="resolved")),
                (130, iev.InteractionWrappedUp(disposition="billing/refund"))])
    b = script([(5, q), (33, iev.InteractionOffered(agent_id="bob")), (35, iev.InteractionAccepted(agent_id="bob")),
                (65, iev.InteractionTransferred(from_agent_id="bob", to_agent_id="ann", to_queue=None, note="")),
                (75, iev.InteractionAccepted(agent_id="ann")), (95, iev.InteractionEnded(reason="resolved")),
                (105, iev.InteractionWrappedUp(disposition="billing/plan"))], channel="voice")
    script([(0, q), (3, iev.InteractionAbandoned(waited_seconds=3))])  # short: left out
    script([(0, q), (30, iev.InteractionAbandoned(waited_seconds=30))])
    return a, b


def test_handle_time_speed_of_answer_service_level_abandonment_and_transfers():
    a, b = handled_day()
    project()
    fa, fb = InteractionFact.objects.get(interaction_id=a), InteractionFact.objects.get(interaction_id=b)
    # a: talk 10-40 and 70-100 (60 s), hold 40-70 (30 s), after-call work 100-130 (30 s)
    assert (fa.talk_seconds, fa.hold_seconds, fa.acw_seconds) == (60, 30, 30)
    # b: bob talks 35-65, ann 75-95 (50 s), after-call work 10 s; answered by bob, handled last by ann
    assert (fb.talk_seconds, fb.acw_seconds, fb.transfers, fb.answered_by, fb.agent_id) == (50, 10, 1, "bob", "ann")
    assert value("aht")["value"] == 90.0 and value("aht")["count"] == 2  # (120 + 60) / 2
    assert value("aht", ["agent"], agent="ann")["value"] == 90.0
    assert value("asa")["value"] == 20.0  # waits of 10 s and 30 s
    sl = value("service_level")
    assert (sl["numerator"], sl["denominator"]) == (1, 3)  # a within 20 s; b (30 s) and the 30 s abandon not
    ab = value("abandonment_rate")
    assert (ab["numerator"], ab["denominator"], ab["value"]) == (1, 3, 0.3333)
    assert value("transfer_rate")["value"] == 0.5
    assert value("transfer_rate", ["agent"], agent="bob")["value"] == 1.0  # by who answered
    assert value("transfer_rate", ["agent"], agent="ann")["value"] == 0.0
    assert value("aht", ["channel"], channel="voice")["value"] == 60.0
    assert value("asa", ["day"], day="2026-11-02T00:00:00")["value"] == 20.0


def test_a_later_contact_about_the_same_matter_undoes_fcr_whatever_order_the_events_arrive_in(settings):
    x = uuid.uuid4()
    first = script([(10, iev.InteractionEnded(reason="resolved")),
                    (20, iev.InteractionWrappedUp(disposition="billing/refund"))], customer=x)
    # Three days later, another case, by email, same disposition: a repeat contact.
    again = script([(3 * DAY, iev.InteractionEnded(reason="resolved")),
                    (3 * DAY + dt.timedelta(seconds=20), iev.InteractionWrappedUp(disposition="billing/refund"))],
                   customer=x, channel="email", start=3 * DAY)
    # Another matter of the same customer, and one contact again on its case, but after the 7-day window.
    case = uuid.uuid4()
    other = script([(20, iev.InteractionWrappedUp(disposition="tech/reset"))], customer=x, case=case)
    script([(10 * DAY, iev.InteractionQueued(queue="support"))], customer=x, case=case, start=10 * DAY)
    for reverse in (False, True):  # the repeat applied first, then last: the same answer
        get_projection("quality.interaction_facts").reset()
        from events.models import ProjectionStream

        ProjectionStream.objects.filter(projection="quality.interaction_facts").delete()
        project(reverse=reverse)
        fcr = value("fcr")
        assert (fcr["numerator"], fcr["denominator"]) == (2, 3), reverse  # `first` lost it; `again` and `other`
        assert InteractionFact.objects.get(interaction_id=again).repeat_of == first
        assert InteractionFact.objects.get(interaction_id=first).repeat_contact_at is not None
        assert InteractionFact.objects.get(interaction_id=other).repeat_contact_at is None
        repeat = value("repeat_contact_rate")
        assert (repeat["numerator"], repeat["denominator"]) == (1, 4)
    # A shorter window (a changed definition) and a replay: three days later is no longer a repeat.
    settings.KPI_FCR_WINDOW_DAYS = 2
    replay(get_projection("quality.interaction_facts"), progress=False)
    assert value("fcr")["numerator"] == 3 and value("repeat_contact_rate")["numerator"] == 0


def test_a_reopened_interaction_is_not_first_contact_resolved():
    iid = script([(10, iev.InteractionWrappedUp(disposition="x")), (60, iev.InteractionReopened(reason="again")),
                  (90, iev.InteractionWrappedUp(disposition="x"))])
    project()
    fact = InteractionFact.objects.get(interaction_id=iid)
    assert fact.reopened == 1 and fact.resolved_at == T0 + dt.timedelta(seconds=90)
    assert value("fcr")["numerator"] == 0


def test_occupancy_is_handle_time_over_staffed_time_cut_at_the_window_and_the_days():
    from routing.events import AgentPresenceChanged

    stream = uuid.uuid4()
    for version, (offset, presence) in enumerate([(-DAY / 2, "available"), (-DAY / 4, "break"), (0, "available"),
                                                  (600, "after_call_work"), (900, "offline")]):
        store.append(stream_type="agent", stream_id=stream, events=[AgentPresenceChanged(
            agent_id="ann", presence=presence)], expected_version=version, occurred_at=T0 + offset
            if isinstance(offset, dt.timedelta) else T0 + dt.timedelta(seconds=offset))
    handled_day()  # ann resolves 180 s of handle time at T0
    project()
    apply_envelopes(get_projection("quality.presence_intervals"), store.read_all(limit=100_000))
    # Window from T0 - 1 h: ann is available 09:00-09:10 and in after-call work 09:10-09:15 (900 s staffed);
    # the earlier stretch (available 21:00-03:00 the night before) is outside.
    rows = kpis.report("occupancy", ["agent"], T0 - dt.timedelta(hours=1), T0 + DAY)
    assert rows == [{"agent": "ann", "value": 0.2, "handled_seconds": 180.0, "staffed_seconds": 900.0}]
    by_day = kpis.report("occupancy", ["agent", "day"], T0 - DAY, T0 + DAY)
    assert [(r["day"], r["staffed_seconds"]) for r in by_day] == [("2026-11-01T00:00:00", 3 * 3600.0),
                                                                  ("2026-11-02T00:00:00", 900.0 + 3 * 3600.0)]
    with pytest.raises(kpis.Ungroupable):
        kpis.report("occupancy", ["queue"], *WINDOW)


@pytest.mark.parametrize("unit, tz, start, end, labels, hours", [
    # New York falls back on 1 Nov 2026: that day has 25 hours.
    ("day", "America/New_York", "2026-10-31T12:00:00+00:00", "2026-11-03T05:00:00+00:00",
     ["2026-10-31T00:00:00", "2026-11-01T00:00:00", "2026-11-02T00:00:00"], [16, 25, 24]),
    # Kolkata is 5 h 30 min ahead: its hours start at half past in UTC.
    ("hour", "Asia/Kolkata", "2026-11-02T09:00:00+00:00", "2026-11-02T11:00:00+00:00",
     ["2026-11-02T14:00:00", "2026-11-02T15:00:00", "2026-11-02T16:00:00"], [0.5, 1, 0.5]),
    # Weeks start on Monday; a window starting mid-week is labelled by its week's Monday.
    ("week", "UTC", "2026-11-04T00:00:00+00:00", "2026-11-17T00:00:00+00:00",
     ["2026-11-02T00:00:00", "2026-11-09T00:00:00", "2026-11-16T00:00:00"], [120, 168, 24]),
])
def test_buckets_follow_the_time_zone_including_daylight_saving_and_half_hour_offsets(unit, tz, start, end, labels,
                                                                                       hours):
    edges, names = kpis.buckets(unit, dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end), tz)
    assert names == labels
    assert [(b - a).total_seconds() / 3600 for a, b in zip(edges, edges[1:], strict=False)] == hours
    assert edges[0] == dt.datetime.fromisoformat(start) and edges[-1] == dt.datetime.fromisoformat(end)


def test_day_groups_in_a_zone_with_daylight_saving_put_each_interaction_on_its_local_day():
    make_queue("billing", service_level_seconds=20)
    # New York, Sunday 1 Nov 2026 (falls back at 06:00 UTC): 03:30 UTC is 23:30 on the 31st (EDT, -4), 04:30
    # UTC is 00:30 on the 1st (EDT), and 04:30 UTC on the 2nd is 23:30 on the 1st (EST, -5): the 25-hour day.
    sunday = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    for at, wait in ((dt.timedelta(hours=3, minutes=30), 10), (dt.timedelta(hours=4, minutes=30), 20),
                     (DAY + dt.timedelta(hours=4, minutes=30), 30)):
        offset = sunday + at - T0
        script([(offset, iev.InteractionQueued(queue="billing")),
                (offset + dt.timedelta(seconds=wait), iev.InteractionAccepted(agent_id="ann"))], start=offset)
    project()
    rows = kpis.report("asa", ["day"], sunday - DAY, sunday + 3 * DAY, "America/New_York")
    assert [(r["day"], r["count"], r["value"]) for r in rows] == [("2026-10-31T00:00:00", 1, 10.0),
                                                                  ("2026-11-01T00:00:00", 2, 25.0)]
    utc = kpis.report("asa", ["day"], sunday - DAY, sunday + 3 * DAY)
    assert [(r["day"], r["count"]) for r in utc] == [("2026-11-01T00:00:00", 2), ("2026-11-02T00:00:00", 1)]
