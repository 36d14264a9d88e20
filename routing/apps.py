from django.apps import AppConfig


class RoutingConfig(AppConfig):
    """Agents, skills, queues and the Celery routing workers (built in the routing issue)."""

    name = "routing"
