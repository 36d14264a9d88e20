from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = "Event store"

    def ready(self) -> None:
        # Every app declares its event types in events.py and its projections
        # in projections.py; importing them fills the registries.
        autodiscover_modules("events")
        autodiscover_modules("projections")
