"""Quality's Celery tasks (default queue)."""

from celery import shared_task

from quality import services


@shared_task(acks_late=True, ignore_result=True)
def sample_reviews() -> int:
    """Beat: the week's interactions to review, per agent (idempotent: an agent sampled this week gets none)."""
    return services.sample_for_review()
