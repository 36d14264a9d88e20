"""The platform's Celery tasks (default queue)."""

from celery import shared_task

from contactcenter import idempotency


@shared_task(acks_late=True, ignore_result=True)
def idempotency_purge() -> int:
    """Beat: forget the stored answers of Idempotency-Keys older than IDEMPOTENCY_TTL_SECONDS (idempotent)."""
    return idempotency.purge_expired()
