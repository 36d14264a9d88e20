"""Starting limits for every agent (no group); the admin's to change, and to raise for groups (team leads)."""

from decimal import Decimal

from django.db import migrations

DEFAULTS = {"refund": ("50", "200"), "credit": ("25", "100"), "discount": ("20", "100"),
            "expedited_shipping": ("30", "150"), "fee_waiver": ("25", "100")}


def seed(apps, schema_editor):
    AuthorityLimit = apps.get_model("authority", "AuthorityLimit")
    for kind, (per_action, per_day) in DEFAULTS.items():
        if not AuthorityLimit.objects.filter(kind=kind, group=None).exists():
            AuthorityLimit.objects.create(kind=kind, per_action=Decimal(per_action), per_day=Decimal(per_day))


class Migration(migrations.Migration):
    dependencies = [("authority", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
