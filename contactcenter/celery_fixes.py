"""A worker must outlive a Redis restart (promise 5: the routing sweep re-queues work from PostgreSQL).

Celery 5.7.0 with kombu 5.7.0 (the latest of both) kills the worker when
the broker connection breaks while the worker holds unacknowledged messages
(an offer-expiry task waiting for its countdown, a task running with
acks_late; nearly always, for the routing worker):
`Consumer.on_connection_error_after_connected` first `collect()`s the
connection, which detaches its transport, then `close()`s it, and the Redis
channel's close wants to restore the unacknowledged messages through that
transport: `AttributeError: 'NoneType' object has no attribute 'hostname'`,
"Unrecoverable error", exit code 1. (`make run` then stops everything;
under docker-compose the worker restarts.)

The patch lets that close fail quietly; the consumer then reconnects as it
does for any other connection error. Nothing is lost that the fix could
keep: the messages to restore lived in the Redis that went away, and what
they would have done (expire an offer, route waiting work) the beat's
`routing-sweep` does from PostgreSQL. tests/test_degrade.py restarts a real
Redis under a real worker and beat.

Remove once a Celery release closes the connection without restoring
through a detached transport.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def survive_broker_restarts() -> None:
    from celery.worker.consumer.consumer import Consumer

    original = Consumer.on_connection_error_after_connected
    if getattr(original, "survives_broker_restarts", False):
        return

    def on_connection_error_after_connected(self, exc):
        try:
            original(self, exc)
        except AttributeError:
            log.warning("the broken broker connection could not restore its unacknowledged messages (they were "
                        "in the Redis that went away); reconnecting", exc_info=True)

    on_connection_error_after_connected.survives_broker_restarts = True
    Consumer.on_connection_error_after_connected = on_connection_error_after_connected
