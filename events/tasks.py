"""Periodic checks of the event backbone (Celery beat)."""

import logging

from celery import shared_task

from events import selectors

log = logging.getLogger(__name__)


@shared_task(acks_late=True)
def outbox_watch() -> dict:
    """Warn when events wait too long for Kafka (relay down or broker away). Read-only, safe to run twice."""
    backlog = selectors.outbox_backlog()
    if backlog["alert"]:
        log.warning(
            "outbox backlog: %d events, oldest waiting %.0fs: is the relay running and Kafka reachable?",
            backlog["count"],
            backlog["oldest_age_seconds"],
        )
    return backlog
