from django.core.management.base import BaseCommand

from events.db import DATABASE_ERRORS
from events.management.commands._signals import stop_event
from events.relay import DatabaseLost, Relay, RelayLock


class Command(BaseCommand):
    help = "Publish committed events from the outbox to Kafka (runs until stopped)."

    def handle(self, *args, **options):
        stop = stop_event()
        backoff = 0.5
        while not stop.is_set():
            lock = None
            try:
                lock = RelayLock()
                if not lock.acquire(stop):
                    break
                self.stdout.write("relay: publishing the outbox to Kafka")
                backoff = 0.5
                Relay().run(stop)
            except (DatabaseLost, *DATABASE_ERRORS) as exc:
                # The database is away (a restart): the lock went with it. Wait, take the lock again, go on;
                # exiting would stop publishing until someone restarts us (make run would stop everything).
                self.stderr.write(f"relay: database unavailable ({str(exc).strip()[:200]}); retrying in {backoff:.1f}s")
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                if lock is not None:
                    lock.release()
        self.stdout.write("relay: stopped")
