import os

from django.core.management.base import BaseCommand, CommandError

from events import projection
from events.management.commands._signals import stop_event
from events.runner import Shard, run_projectors


class Command(BaseCommand):
    help = "Run projections: consume Kafka and update read models (all of them unless named)."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", help="projection names (default: every projection)")
        parser.add_argument(
            "--shard", default=os.environ.get("PROJECTOR_SHARD", "0/1"), metavar="INDEX/COUNT",
            help="consume only the partitions p with p %% COUNT == INDEX, so COUNT processes split the topic "
                 "(default: $PROJECTOR_SHARD, else 0/1: every partition). Give each process its own INDEX: "
                 "a partition another process holds is left to it (this one stands by for it).",
        )

    def handle(self, *args, names, shard, **options):
        try:
            selected = [projection.get(n) for n in names] if names else projection.all_projections()
            shard = Shard.parse(shard)
        except (LookupError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        stop = stop_event()
        threads = run_projectors(selected, stop, shard=shard)
        self.stdout.write(f"projector: shard {shard}, running " + ", ".join(p.name for p in selected))
        while not stop.is_set() and any(t.is_alive() for t in threads):
            stop.wait(0.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        self.stdout.write("projector: stopped")
