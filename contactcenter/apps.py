from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ContactCenterConfig(AppConfig):
    name = "contactcenter"
    verbose_name = "Contact center"

    def ready(self):
        from contactcenter.roles import ensure_roles

        # After every app's migrations (each app's permissions exist only once its own post_migrate ran).
        post_migrate.connect(ensure_roles, dispatch_uid="contactcenter.roles")
