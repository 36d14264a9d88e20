from django.apps import AppConfig


class QualityConfig(AppConfig):
    """Quality management: KPIs computed from the events (and, to come, scorecards and evaluations)."""

    name = "quality"
