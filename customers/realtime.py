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
    """
    latest: dict = {}
    for env in envelopes:
        if env.customer_id is not None:
            latest[env.customer_id] = env
    return notify(
        [
            (timeline_group(cid), {"type": "timeline.changed", "customer_id": str(cid), "position": env.position,
                                   "event_type": env.event_type})
            for cid, env in latest.items()
        ]
    )
