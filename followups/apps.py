from django.apps import AppConfig


class FollowupsConfig(AppConfig):
    """Callbacks: promised by customers' requests, by agents, or by a dropped call; routed when due."""

    name = "followups"

    def ready(self) -> None:
        from followups import events  # noqa: F401  (registers the event types)
        from followups.services import on_interaction_changed
        from interactions import hooks

        hooks.listen(on_interaction_changed)
