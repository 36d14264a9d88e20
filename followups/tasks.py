"""Beat: start the callbacks that are due, alert breached escalations and overdue follow-ups (each idempotent:
only what is still scheduled or open, not yet alerted, is touched)."""

from celery import shared_task

from followups import services


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def callbacks_due() -> int:
    return services.callbacks_due()


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def escalations_breached() -> int:
    return services.escalations_breached()


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def followups_overdue() -> int:
    return services.followups_overdue()
