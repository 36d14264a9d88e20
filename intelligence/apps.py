from django.apps import AppConfig


class IntelligenceConfig(AppConfig):
    """Conversation intelligence: sentiment of every inbound text, running per interaction and trended per
    customer, and red flags (abuse, threats, competitors, churn, sharply negative sentiment) with effects."""

    name = "intelligence"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from intelligence import events  # noqa: F401  (registers the event types)
        from intelligence.models import FlagPolicy, FlagTerm
        from intelligence.services import annotate, forget_configuration
        from interactions import hooks

        hooks.annotator(annotate)
        for model in (FlagTerm, FlagPolicy):
            post_save.connect(forget_configuration, sender=model, dispatch_uid=f"intelligence-{model.__name__}-save")
            post_delete.connect(forget_configuration, sender=model,
                                dispatch_uid=f"intelligence-{model.__name__}-delete")
