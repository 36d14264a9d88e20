from django.apps import AppConfig


class IntelligenceConfig(AppConfig):
    """Conversation intelligence: sentiment of every inbound text, running per interaction and trended per
    customer, and red flags (abuse, threats, competitors, churn, sharply negative sentiment) with effects."""

    name = "intelligence"

    def ready(self) -> None:
        from intelligence import events  # noqa: F401  (registers the event types)
        from intelligence.services import annotate
        from interactions import hooks

        hooks.annotator(annotate)
