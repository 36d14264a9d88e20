from django.apps import AppConfig


class FrameworksConfig(AppConfig):
    """Structured call frameworks: versioned scripts of steps attached to queues or dispositions, each contact's
    progress through them, and required steps that gate what an agent may do (docs/PROTOCOLS.md)."""

    name = "frameworks"

    def ready(self) -> None:
        from frameworks import events  # noqa: F401  (registers the event types)
        from frameworks.services import on_interaction_changed
        from interactions import hooks

        hooks.listen(on_interaction_changed)
