"""The agent's context on pick-up: open work, last contacts and their outcome, repeat contact."""

import datetime as dt
import uuid

import pytest

from customers import selectors, services
from events import store
from events.projection import apply_envelopes
from events.projection import get as get_projection
from events.store import Metadata
from interactions.events import (
    InteractionAbandoned,
    InteractionCreated,
    InteractionEnded,
    InteractionWrappedUp,
)
from interactions.models import Case, Interaction

pytestmark = pytest.mark.django_db(transaction=True)

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)


class History:
    """Interactions of one customer: state rows as interactions keeps them, events as it appends them."""

    def __init__(self):
        self.customer_id = services.customer_register(display_name="Ada", email="ada@example.com",
                                                      meta=Metadata()).customer_id

    def case(self):
        return Case.objects.create(id=uuid.uuid4(), customer_id=self.customer_id)

    def contact(self, case, *, days_ago, channel="chat", ended=None, disposition=None, abandoned=False):
        iid = uuid.uuid4()
        at = NOW - dt.timedelta(days=days_ago)
        events = [InteractionCreated(channel=channel, direction="inbound", case_id=case.id)]
        status = "active"
        if abandoned:
            events.append(InteractionAbandoned(waited_seconds=30))
            status = "abandoned"
        if ended:
            events.append(InteractionEnded(reason=ended))
            status = "wrap_up"
        if disposition:
            events.append(InteractionWrappedUp(disposition=disposition))
            status = "resolved"
        for version, event in enumerate(events):
            store.append(stream_type="interaction", stream_id=iid, customer_id=self.customer_id,
                         expected_version=version, events=[event], meta=Metadata(channel=channel),
                         occurred_at=at + dt.timedelta(minutes=10 * version))
        Interaction.objects.create(id=iid, customer_id=self.customer_id, case=case, channel=channel,
                                   direction="inbound", status=status, version=len(events))
        return iid

    def context(self):
        for name in ("customers.directory", "customers.timeline"):
            apply_envelopes(get_projection(name), store.read_all(limit=10_000))
        return selectors.customer_context(self.customer_id, now=NOW)


def test_context_shows_open_work_and_the_last_five_contacts_with_their_outcome():
    h = History()
    old, billing = h.case(), h.case()
    for days in (40, 35, 30):
        h.contact(old, days_ago=days, ended="resolved", disposition="answered")
    gave_up = h.contact(billing, days_ago=20, abandoned=True)
    hung_up = h.contact(billing, days_ago=10, channel="voice", ended="customer_hung_up")
    chatting = h.contact(billing, days_ago=0)
    ctx = h.context()
    assert ctx.profile.display_name == "Ada" and ctx.identities == [{"kind": "email", "provider": ""}]
    assert {i.id for i in ctx.open_interactions} == {hung_up, chatting}  # wrap_up and active are open
    assert [c["id"] for c in ctx.open_cases] == [billing.id]
    last = ctx.last_contacts
    assert [c["interaction_id"] for c in last][:3] == [chatting, hung_up, gave_up] and len(last) == 5
    assert [c["outcome"] for c in last] == ["open", "ended", "abandoned", "resolved", "resolved"]
    assert last[1]["end_reason"] == "customer_hung_up" and last[1]["channel"] == "voice"
    assert last[3]["disposition"] == "answered"
    assert ctx.repeat_contact is False  # nothing resolved in the last 7 days


def test_a_resolved_matter_that_comes_back_within_seven_days_is_a_repeat_contact():
    h = History()
    matter = h.case()
    resolved = h.contact(matter, days_ago=3, ended="resolved", disposition="refund_promised")
    assert h.context().repeat_contact is False  # resolved, nothing since
    h.contact(matter, days_ago=1, channel="email")  # back about the same matter, still open
    ctx = h.context()
    assert ctx.repeat_contact is True and ctx.repeat_of == [resolved]


def test_contacted_again_on_the_same_case_counts_even_when_that_was_resolved_too():
    h = History()
    matter = h.case()
    first = h.contact(matter, days_ago=6, ended="resolved", disposition="answered")
    h.contact(matter, days_ago=2, ended="resolved", disposition="answered")
    assert h.context().repeat_of == [first]


@pytest.mark.parametrize("case", ["other", "late", "abandoned"])
def test_not_a_repeat_contact(case):
    h = History()
    matter = h.case()
    if case == "other":  # back within 7 days, but about something else
        h.contact(matter, days_ago=3, ended="resolved", disposition="answered")
        h.contact(h.case(), days_ago=1)
    elif case == "late":  # resolved 10 days ago, back today: outside the window
        h.contact(matter, days_ago=10, ended="resolved", disposition="answered")
        h.contact(matter, days_ago=0, ended="resolved", disposition="answered")
    else:  # never resolved: an abandoned contact is not a resolution
        h.contact(matter, days_ago=3, abandoned=True)
        h.contact(matter, days_ago=1)
    assert h.context().repeat_contact is False


def test_a_merged_customers_open_work_is_in_the_targets_context():
    h = History()
    other = services.customer_register(display_name="Ada L", meta=Metadata()).customer_id
    matter = Case.objects.create(id=uuid.uuid4(), customer_id=other)
    h_other = History.__new__(History)
    h_other.customer_id = other
    open_chat = h_other.contact(matter, days_ago=0)
    services.customer_merge(customer_id=h.customer_id, source_id=other, expected_version=2, meta=Metadata())
    ctx = h.context()
    assert [i.id for i in ctx.open_interactions] == [open_chat]
    assert [c["interaction_id"] for c in ctx.last_contacts] == [open_chat]
