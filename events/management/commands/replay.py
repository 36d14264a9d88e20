from django.core.management.base import BaseCommand, CommandError

from events import projection
from events.replay import replay


class Command(BaseCommand):
    help = "Rebuild a projection from the event store while live traffic continues."

    def add_arguments(self, parser):
        parser.add_argument("name", help="projection name (see `run_projector --help`)")
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def handle(self, *args, name, batch_size, no_progress, **options):
        try:
            target = projection.get(name)
        except LookupError as exc:
            raise CommandError(str(exc)) from exc
        applied = replay(target, batch_size=batch_size, progress=not no_progress)
        self.stdout.write(self.style.SUCCESS(f"{name}: rebuilt from {applied} events"))
