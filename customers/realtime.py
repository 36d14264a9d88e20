"""Channels groups of the customer app and the push after a projection commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from contactcenter.realtime import notify


def timeline_group(customer_id: uuid.UUID | str) -> str:
    return f"customer.{customer_id}.timeline"


def notify_timeline(envelopes: Sequence):
    """Tell subscribed clients a customer's timeline grew (one message per customer per batch).

    Best effort and non-blocking: clients resync over REST with their cursor.
    An event of a customer merged into another goes to the timeline it now
    shows on, the target's (one query, after the projection committed).
    """
    from customers.models import TimelineMerge

    ids = {env.customer_id for env in envelopes if env.customer_id is not None}
    merged = dict(TimelineMerge.objects.filter(source_id__in=ids).values_list("source_id", "target_id")) if ids else {}
    latest: dict = {}
    for env in envelopes:
        if env.customer_id is not None:
            latest[merged.get(env.customer_id, env.customer_id)] = env
    return notify(
        [
            (timeline_group(cid), {"type": "timeline.changed", "customer_id": str(cid), "position": env.position,
                                   "event_type": env.event_type})
            for cid, env in latest.items()
        ]
    )
