"""Customer read models: the directory (profiles) and the unified timeline.

Both use set-based batch handlers: a replay of hundreds of thousands of
events writes in a few statements per batch instead of one per event. Each
has the same effect applied in one batch or one event at a time (the runner
falls back to single events to isolate a failure).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection

from customers.events import CustomerDetailsChanged, CustomerErased, CustomerRegistered
from customers.models import CustomerProfile, TimelineEntry
from customers.realtime import notify_timeline
from events import registry
from events.crypto import ERASED
from events.projection import Projection, register
from events.store import Envelope

REGISTERED = CustomerRegistered.event_type
CHANGED = CustomerDetailsChanged.event_type
ERASED_EVENT = CustomerErased.event_type


def on_registered(env: Envelope) -> None:
    e = env.event
    CustomerProfile.objects.bulk_create(
        [CustomerProfile(customer_id=env.customer_id, display_name=e.display_name, email=e.email, phone=e.phone,
                         preferred_channel=e.preferred_channel, registered_at=env.occurred_at,
                         version=env.stream_version)],
        ignore_conflicts=True,
    )


def on_details_changed(env: Envelope) -> None:
    e = env.event
    changes = {k: getattr(e, k) for k in ("display_name", "email", "phone", "preferred_channel")}
    CustomerProfile.objects.filter(customer_id=env.customer_id).update(
        version=env.stream_version, **{k: v for k, v in changes.items() if v is not None}
    )


def on_erased(env: Envelope) -> None:
    CustomerProfile.objects.filter(customer_id=env.customer_id).update(
        display_name=ERASED, email=None, phone=None, erased=True, version=env.stream_version
    )


HANDLERS = {
    CustomerRegistered: [on_registered],
    CustomerDetailsChanged: [on_details_changed],
    CustomerErased: [on_erased],
}
_BY_TYPE = {registry.type_of(cls).name: fns for cls, fns in HANDLERS.items()}


def directory_apply(envelopes: Sequence[Envelope]) -> None:
    """Profile changes in order (they are few), then one statement for every activity count."""
    activity: dict = {}
    for env in envelopes:
        for handler in _BY_TYPE.get(env.event_type, ()):
            handler(env)
        if env.customer_id is not None:
            count, last = activity.get(env.customer_id, (0, env.occurred_at))
            activity[env.customer_id] = (count + 1, max(last, env.occurred_at))
    if activity:
        with connection.cursor() as cur:
            cur.execute(
                """
                UPDATE customers_customerprofile p
                SET event_count = p.event_count + t.n,
                    last_event_at = greatest(p.last_event_at, t.last_at)
                FROM unnest(%s::uuid[], %s::int[], %s::timestamptz[]) AS t(id, n, last_at)
                WHERE p.customer_id = t.id
                """,
                [list(activity), [v[0] for v in activity.values()], [v[1] for v in activity.values()]],
            )



def timeline_apply(envelopes: Sequence[Envelope]) -> None:
    rows = []
    for env in envelopes:
        if env.customer_id is None:
            continue
        personal = registry.event_type(env.event_type).pii_fields
        rows.append(
            TimelineEntry(
                position=env.position, customer_id=env.customer_id, event_id=env.event_id,
                event_type=env.event_type, stream_type=env.stream_type, stream_id=env.stream_id,
                occurred_at=env.occurred_at, channel=env.channel, actor=env.actor,
                data={k: v for k, v in env.data.items() if k not in personal},
                personal_fields=sorted(k for k in personal if env.data.get(k) is not None),
            )
        )
    TimelineEntry.objects.bulk_create(rows, ignore_conflicts=True, batch_size=2000)


directory = register(
    Projection(
        name="customers.directory",
        tables=[CustomerProfile],
        handlers=HANDLERS,
        batch_handler=directory_apply,
        reads="customer events, and every event with a customer_id (activity counts)",
    )
)

timeline = register(
    Projection(
        name="customers.timeline",
        tables=[TimelineEntry],
        batch_handler=timeline_apply,
        after_commit=notify_timeline,
        reads="every event with a customer_id",
    )
)
