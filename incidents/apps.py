from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    """Incident reports about abusive or threatening contacts and contacts ended early."""

    name = "incidents"

    def ready(self) -> None:
        from incidents import events  # noqa: F401  (registers the event types)
