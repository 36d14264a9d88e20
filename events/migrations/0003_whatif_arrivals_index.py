"""A partial index for what-if routing (routing/whatif.py): the contacts that queued in a period.

A replay starts from the `InteractionQueued` events whose business time falls
in the period; without an index that is a scan of the whole store, growing
with its history. Partial, as the time-travel indexes (0002): only
`InteractionQueued` appends (about one per contact) pay for an entry.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("events", "0002_asof_indexes")]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS events_whatif_queued_idx ON events_event (occurred_at) "
            "WHERE event_type = 'interactions.InteractionQueued'",
            "DROP INDEX IF EXISTS events_whatif_queued_idx",
        ),
    ]
