from django.apps import AppConfig


class AuthorityConfig(AppConfig):
    """Agent empowerment within limits: actions for customers, authority limits per role, approvals."""

    name = "authority"

    def ready(self) -> None:
        from authority import events  # noqa: F401  (registers the event types)
