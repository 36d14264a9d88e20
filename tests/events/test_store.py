"""The event store: append with optimistic concurrency, reads, upcasting."""

import threading
import uuid

import pytest
from django.db import connection, connections, transaction

from customers.events import CustomerDetailsChanged, CustomerRegistered
from events import registry, store
from events.models import Event, OutboxEntry
from events.store import ConcurrencyConflict, Metadata

pytestmark = pytest.mark.django_db(transaction=True)


def register(stream_id=None, name="Ada"):
    stream_id = stream_id or uuid.uuid4()
    store.append(stream_type="customer", stream_id=stream_id, customer_id=stream_id, expected_version=0,
                 events=[CustomerRegistered(display_name=name, email="ada@example.com")])
    return stream_id


def test_append_writes_events_and_outbox_in_order():
    sid = uuid.uuid4()
    positions = store.append(
        stream_type="customer", stream_id=sid, customer_id=sid, expected_version=0,
        events=[CustomerRegistered(display_name="Ada"), CustomerDetailsChanged(phone="+1 555 0100")],
        meta=Metadata(correlation_id=uuid.uuid4(), channel="chat"),
    )
    assert len(positions) == 2 and positions[0] < positions[1]
    assert [e.stream_version for e in store.read_stream(sid)] == [1, 2]
    assert store.stream_version(sid) == 2
    assert set(OutboxEntry.objects.values_list("position", flat=True)) == set(positions)
    first = store.read_stream(sid)[0]
    assert first.event.display_name == "Ada" and first.channel == "chat"
    assert first.event_id.version == 7  # time-ordered UUIDs


def test_stale_expected_version_is_a_conflict_and_writes_nothing():
    sid = register()
    with pytest.raises(ConcurrencyConflict):
        store.append(stream_type="customer", stream_id=sid, customer_id=sid, expected_version=0,
                     events=[CustomerRegistered(display_name="again")])
    with pytest.raises(ConcurrencyConflict):  # ahead of the stream: also refused, never a gap
        store.append(stream_type="customer", stream_id=sid, customer_id=sid, expected_version=5,
                     events=[CustomerDetailsChanged(phone="1234")])
    assert Event.objects.filter(stream_id=sid).count() == 1
    assert OutboxEntry.objects.count() == 1


def test_append_streams_writes_several_streams_in_one_statement_and_a_stale_one_aborts_them_all():
    a, b = register(name="Ada"), uuid.uuid4()
    positions = store.append_streams([
        store.StreamAppend("customer", a, [CustomerDetailsChanged(phone="+1 555 0100")], 1, a, "voice"),
        store.StreamAppend("customer", b, [CustomerRegistered(display_name="Bo"), CustomerDetailsChanged(
            phone="+1 555 0101")], 0, b, "chat"),
    ], meta=Metadata(correlation_id=uuid.uuid4()))
    assert len(positions[0]) == 1 and len(positions[1]) == 2 and positions[0][0] < positions[1][0] < positions[1][1]
    assert [(e.stream_version, e.channel) for e in store.read_stream(a)] == [(1, ""), (2, "voice")]
    assert [(e.stream_version, e.channel) for e in store.read_stream(b)] == [(1, "chat"), (2, "chat")]
    assert store.read_stream(b)[1].event.phone == "+1 555 0101"  # personal data encrypted and read back
    assert OutboxEntry.objects.count() == 4
    before = Event.objects.count()
    for stale in (1, 7):  # b is at 2: behind and ahead are both refused
        with pytest.raises(ConcurrencyConflict), transaction.atomic():
            store.append_streams([
                store.StreamAppend("customer", a, [CustomerDetailsChanged(phone="1")], 2, a),
                store.StreamAppend("customer", b, [CustomerDetailsChanged(phone="2")], stale, b)])
    assert Event.objects.count() == before and OutboxEntry.objects.count() == 4  # a's row went too


def test_concurrent_appends_to_one_stream_one_wins_one_conflicts():
    sid = register()
    barrier = threading.Barrier(2)
    outcomes = []

    def writer(i):
        try:
            with transaction.atomic():
                barrier.wait(timeout=10)
                store.append(stream_type="customer", stream_id=sid, customer_id=sid, expected_version=1,
                             events=[CustomerDetailsChanged(display_name=f"writer {i}")])
            outcomes.append("ok")
        except ConcurrencyConflict:
            outcomes.append("conflict")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["conflict", "ok"]
    versions = list(Event.objects.filter(stream_id=sid).values_list("stream_version", flat=True))
    assert sorted(versions) == [1, 2]


def test_writers_of_different_streams_do_not_wait_for_each_other():
    """An open transaction on one stream must not block appends to another (no table lock)."""
    sid = register()
    with transaction.atomic():
        store.append(stream_type="customer", stream_id=sid, customer_id=sid, expected_version=1,
                     events=[CustomerDetailsChanged(phone="1234")])
        done = []

        def other():
            try:
                register()
                done.append(True)
            finally:
                connections.close_all()

        t = threading.Thread(target=other)
        t.start()
        t.join(timeout=10)
        assert done == [True], "an append to another stream waited for this open transaction"


def test_read_all_is_in_position_order_from_a_position():
    ids = [register() for _ in range(5)]
    everything = store.read_all()
    assert [e.stream_id for e in everything] == ids
    after = store.read_all(after_position=everything[1].position, limit=2)
    assert [e.stream_id for e in after] == ids[2:4]


def test_old_schema_version_is_upcast_on_read_and_never_rewritten():
    sid = uuid.uuid4()
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO events_event (event_id, event_type, schema_version, stream_type, stream_id, stream_version,"
            " customer_id, occurred_at, recorded_at, actor, channel, data) VALUES"
            " (%s, 'customers.CustomerRegistered', 1, 'customer', %s, 1, %s, now(), now(), '{}', '', %s)",
            [uuid.uuid4(), sid, sid, '{"name": "Old Timer", "email": "old@example.com"}'],
        )
    (env,) = store.read_stream(sid)
    assert env.schema_version == 3
    assert env.event == CustomerRegistered(display_name="Old Timer", email="old@example.com", phone=None,
                                           preferred_channel="")
    raw = Event.objects.get(stream_id=sid)
    assert raw.schema_version == 1 and raw.data == {"name": "Old Timer", "email": "old@example.com"}


def test_a_phone_preference_of_older_versions_reads_as_voice():
    # v2 of CustomerRegistered and v1 of CustomerDetailsChanged named the call channel "phone".
    from customers import domain as customer_domain
    from interactions import domain as interaction_domain

    assert customer_domain.CHANNELS == interaction_domain.CHANNELS
    assert registry.upcast("customers.CustomerRegistered", 2, {"display_name": "A", "email": None, "phone": None,
                                                              "preferred_channel": "phone"})["preferred_channel"] == "voice"
    changed = registry.upcast("customers.CustomerDetailsChanged", 1, {"preferred_channel": "phone"})
    assert changed["preferred_channel"] == "voice"
    assert registry.upcast("customers.CustomerDetailsChanged", 1, {"preferred_channel": "sms"})["preferred_channel"] == "sms"


def test_registry_refuses_duplicates_and_unknown_fields():
    from dataclasses import dataclass

    with pytest.raises(ValueError, match="already registered"):
        @registry.event("customers.CustomerRegistered", version=1)
        @dataclass(frozen=True)
        class Impostor:
            x: int

    with pytest.raises(TypeError, match="upcast_v1_v2"):
        @registry.event("tests.NoUpcaster", version=2)
        @dataclass(frozen=True)
        class NoUpcaster:
            x: int

    with pytest.raises(registry.InvalidEventData, match="unknown fields"):
        registry.from_data("customers.CustomerErased", {"reason": "x", "surprise": 1})


def test_every_event_type_round_trips_its_example():
    """Each declared type serialises and reads back to an equal instance."""
    import dataclasses
    import typing

    samples = {uuid.UUID: uuid.uuid4(), int: 7, float: 2.5, str: "x é 🎧", bool: True, dict: {"k": "v é"}, list: ["x", "ü"]}
    for et in registry.all_types():
        hints = typing.get_type_hints(et.cls)
        values = {}
        for f in dataclasses.fields(et.cls):
            tp = hints[f.name]
            if type(None) in typing.get_args(tp):  # Optional[X]: sample X
                tp = next(a for a in typing.get_args(tp) if a is not type(None))
            values[f.name] = samples[typing.get_origin(tp) or tp]
        example = et.cls(**values)
        assert registry.from_data(et.name, registry.to_data(example)) == example
