from django.core.management.base import BaseCommand

from events.management.commands._signals import stop_event
from events.relay import Relay, RelayLock


class Command(BaseCommand):
    help = "Publish committed events from the outbox to Kafka (runs until stopped)."

    def handle(self, *args, **options):
        stop = stop_event()
        lock = RelayLock()
        try:
            if not lock.acquire(stop):
                return
            self.stdout.write("relay: publishing the outbox to Kafka")
            Relay().run(stop)
        finally:
            lock.release()
        self.stdout.write("relay: stopped")
