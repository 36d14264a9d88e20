import uuid

from django.core.management.base import BaseCommand, CommandError

from customers import services
from customers.models import Customer
from events.store import Actor, Metadata


class Command(BaseCommand):
    help = "Erase a customer's personal data everywhere by destroying their data key (crypto-shredding)."

    def add_arguments(self, parser):
        parser.add_argument("customer_id", type=uuid.UUID)
        parser.add_argument("--reason", default="erasure requested (manage.py erase_customer)")

    def handle(self, *args, customer_id, reason, **options):
        try:
            result = services.customer_erase(
                customer_id=customer_id, reason=reason, meta=Metadata(actor=Actor("system", name="erase_customer"))
            )
        except Customer.DoesNotExist:
            raise CommandError(f"no customer {customer_id}") from None
        if result.positions:
            self.stdout.write(self.style.SUCCESS(f"erased {customer_id}"))
        else:
            self.stdout.write(f"{customer_id} was already erased")
