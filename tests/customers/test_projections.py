"""Customer projections with merges: every order the partitions may deliver in gives the replayed read model."""

import uuid

import pytest
from django.db import connection

from customers import services
from customers.models import CustomerProfile, TimelineEntry, TimelineMerge
from events import store
from events.models import DeadLetter
from events.projection import apply_envelopes
from events.projection import get as get_projection
from events.replay import replay
from events.store import Metadata
from interactions.events import InteractionCreated, MessageRecorded

pytestmark = pytest.mark.django_db(transaction=True)


def touch(customer_id, stream=None, version=0):
    """An interaction event about a customer (another stream, so another partition key)."""
    stream = stream or uuid.uuid4()
    event = (InteractionCreated(channel="chat", direction="inbound", case_id=uuid.uuid4()) if version == 0
             else MessageRecorded(direction="inbound", body="again"))
    store.append(stream_type="interaction", stream_id=stream, customer_id=customer_id, expected_version=version,
                 events=[event], meta=Metadata(channel="chat"))
    return stream


def merge_history():
    """A merged into B, then B into C; A's interaction goes on after its merge."""
    meta = Metadata()
    a, b, c = (services.customer_register(display_name=n, meta=meta) for n in ("A", "B", "C"))
    chat = touch(a.customer_id)
    touch(b.customer_id)
    services.customer_merge(customer_id=b.customer_id, source_id=a.customer_id, expected_version=1, meta=meta)
    touch(a.customer_id, chat, version=1)  # the chat still open at the merge
    services.customer_change_details(customer_id=b.customer_id, expected_version=2, meta=meta, vip_tier="gold")
    services.customer_merge(customer_id=c.customer_id, source_id=b.customer_id, expected_version=1, meta=meta)
    touch(b.customer_id)
    return a.customer_id, b.customer_id, c.customer_id


def rebuild(batches):
    with connection.cursor() as cur:
        cur.execute("TRUNCATE customers_timelineentry, customers_timelinemerge, customers_customerprofile")
        cur.execute("DELETE FROM events_projection_stream")
    for batch in batches:
        for name in ("customers.directory", "customers.timeline"):
            apply_envelopes(get_projection(name), batch)
    return snapshot()


def snapshot():
    return (list(TimelineEntry.objects.order_by("position").values_list("position", "customer_id")),
            list(TimelineMerge.objects.order_by("source_id").values_list("source_id", "target_id")),
            list(CustomerProfile.objects.order_by("customer_id").values()))


def test_merged_timelines_follow_the_chain_in_any_delivery_order():
    a, b, c = merge_history()
    everything = store.read_all(limit=10_000)
    replay(get_projection("customers.directory"), progress=False)
    replay(get_projection("customers.timeline"), progress=False)
    replayed = snapshot()
    assert {cid for _, cid in replayed[0]} == {c}
    assert dict(replayed[1]) == {a: c, b: c}
    profiles = {p["customer_id"]: p for p in replayed[2]}
    assert (profiles[a]["merged_into"], profiles[b]["merged_into"], profiles[c]["merged_into"]) == (b, c, None)
    assert profiles[b]["vip_tier"] == "gold" and profiles[c]["version"] == 2

    # Live: one event at a time, one batch, and partitions that deliver in
    # other orders (each customer's events in order, customers interleaved
    # differently: the merge of A may be seen after A's later chat message
    # or after B's merge into C).
    by_customer: dict = {}
    for env in everything:
        by_customer.setdefault(env.customer_id, []).append(env)
    orders = [[[e] for e in everything], [everything]]
    for customers in ([a, b, c], [c, b, a], [b, c, a]):
        orders.append([by_customer[x] for x in customers])
    for batches in orders:
        assert rebuild(batches) == replayed
    assert not DeadLetter.objects.exists()
