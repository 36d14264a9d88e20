from django.core.management.base import BaseCommand, CommandError

from events import projection
from events.management.commands._signals import stop_event
from events.runner import run_projectors


class Command(BaseCommand):
    help = "Run projections: consume Kafka and update read models (all of them unless named)."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", help="projection names (default: every projection)")

    def handle(self, *args, names, **options):
        try:
            selected = [projection.get(n) for n in names] if names else projection.all_projections()
        except LookupError as exc:
            raise CommandError(str(exc)) from exc
        stop = stop_event()
        threads = run_projectors(selected, stop)
        self.stdout.write("projector: running " + ", ".join(p.name for p in selected))
        while not stop.is_set() and any(t.is_alive() for t in threads):
            stop.wait(0.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        self.stdout.write("projector: stopped")
