from django.apps import AppConfig


class InteractionsConfig(AppConfig):
    """One conversation on one channel (built in the omnichannel intake issue)."""

    name = "interactions"
