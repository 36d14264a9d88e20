from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from customers import services
from customers.models import Customer
from events.store import Actor, Metadata

DEMO_CUSTOMERS = [
    {"display_name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0001", "preferred_channel": "email"},
    {"display_name": "Grace Hopper", "email": "grace@example.com", "phone": "+1 202 555 0102", "preferred_channel": "voice"},
    {"display_name": "Alan Turing", "email": "alan@example.com", "phone": None, "preferred_channel": "chat"},
]


class Command(BaseCommand):
    help = "Create the demo admin (admin/admin) and a few demo customers. Safe to run again."

    def handle(self, *args, **options):
        User = get_user_model()
        with transaction.atomic():
            admin, created = User.objects.get_or_create(
                username="admin", defaults={"is_staff": True, "is_superuser": True, "email": "admin@example.com"}
            )
            if created:
                admin.set_password("admin")
                admin.save()
            token, _ = Token.objects.get_or_create(user=admin)
        if not Customer.objects.exists():
            meta = Metadata(actor=Actor("system", name="seed_demo"))
            for data in DEMO_CUSTOMERS:
                services.customer_register(meta=meta, **data)
            self.stdout.write(f"created {len(DEMO_CUSTOMERS)} demo customers")
        self.stdout.write(f"demo admin: admin / admin; API token: {token.key}")
