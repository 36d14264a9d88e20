from django.apps import AppConfig


class QualityConfig(AppConfig):
    """Quality management: KPIs computed from the events (and, to come, scorecards and evaluations)."""

    name = "quality"

    def ready(self) -> None:
        from interactions import hooks
        from quality import events  # noqa: F401  (registers the event types)
        from quality.services import survey_after_resolution

        hooks.listen(survey_after_resolution)
