"""The Celery application: routing workers and periodic jobs (beat).

Observability (docs/OPERATIONS.md), through Celery's signals:
- a task sent while a correlation id is bound (a request, another task)
  carries it in a message header, and the task runs with it bound, so its
  log lines (and the tasks it sends) carry it too;
- task outcomes are counted for /metrics (cc_celery_tasks_total: succeeded,
  failed, retried, rejected, ignored);
- logging is the project's (settings.LOGGING: JSON lines with the
  correlation id), not Celery's own format.
"""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "contactcenter.settings")

app = Celery("contactcenter")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Not "correlation_id": Celery's own message property of that name holds the task id.
CORRELATION_HEADER = "cc_correlation_id"


@signals.setup_logging.connect
def _logging(**kwargs):
    # Connected, so Celery leaves the root logger alone; the worker and beat log as every other process.
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@signals.before_task_publish.connect
def _send_correlation(headers=None, **kwargs):
    from contactcenter import logs

    cid = logs.current()
    if cid and headers is not None and not headers.get(CORRELATION_HEADER):
        headers[CORRELATION_HEADER] = cid


_bound: dict[str, object] = {}  # task id -> contextvar token (a worker runs one task per thread at a time)


@signals.task_prerun.connect
def _bind_correlation(task_id=None, task=None, **kwargs):
    from contactcenter import logs

    cid = getattr(task.request, CORRELATION_HEADER, None) if task is not None else None
    _bound[task_id] = logs.correlation_id.set(str(cid) if cid else None)


_OUTCOMES = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried", "REJECTED": "rejected",
             "IGNORED": "ignored"}


@signals.task_postrun.connect
def _after_task(task_id=None, task=None, state=None, **kwargs):
    from contactcenter import logs

    # One place for every outcome: task_postrun also follows a task that raised Reject or Ignore, which
    # task_success and task_failure never see.
    _count(getattr(task, "name", None), _OUTCOMES.get(state, str(state).lower()))
    token = _bound.pop(task_id, None)
    if token is not None:
        try:
            logs.correlation_id.reset(token)
        except ValueError:  # set in another context (a thread pool): the next prerun overwrites it
            logs.correlation_id.set(None)


def _count(task_name, outcome: str) -> None:
    from contactcenter import metrics

    metrics.CELERY_TASKS.labels(task_name or "unknown", outcome).inc()


@signals.task_rejected.connect
def _rejected(message=None, **kwargs):
    # A message no worker could take (an unknown task, a malformed message): its name is all we have.
    headers = getattr(message, "headers", None) or {}
    _count(headers.get("task"), "rejected")


@signals.worker_process_shutdown.connect
def _child_exited(pid=None, **kwargs):
    from contactcenter import metrics

    metrics.process_exited()
