from django.apps import AppConfig


class RoutingConfig(AppConfig):
    """Agents, skills, queues and the Celery routing workers."""

    name = "routing"

    def ready(self) -> None:
        from interactions import hooks
        from routing import events  # noqa: F401  (registers the event types)
        from routing.services import work_sync

        hooks.listen(work_sync)
