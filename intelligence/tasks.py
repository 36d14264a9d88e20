"""Beat: the daily look for customers who stopped contacting us (idempotent: each silence is flagged once)."""

from celery import shared_task

from intelligence import services


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def engagement_sweep() -> int:
    return services.engagement_sweep()
