"""Channels groups of the customer app and the push after a projection commits."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


def timeline_group(customer_id: uuid.UUID | str) -> str:
    return f"customer.{customer_id}.timeline"


def notify_timeline(envelopes: Sequence) -> None:
    """Tell subscribed clients a customer's timeline grew. Best effort: clients resync over REST."""
    layer = get_channel_layer()
    if layer is None:
        return
    latest: dict = {}
    for env in envelopes:
        if env.customer_id is not None:
            latest[env.customer_id] = env
    for customer_id, env in latest.items():
        try:
            async_to_sync(layer.group_send)(
                timeline_group(customer_id),
                {"type": "timeline.changed", "customer_id": str(customer_id), "position": env.position,
                 "event_type": env.event_type},
            )
        except Exception:  # a push that fails must never fail the projection
            log.warning("timeline push failed for %s", customer_id, exc_info=True)
