"""Two partial indexes for time travel (history/asof.py): a queue's and an agent's interactions as of an instant.

A queue's state at T folds the interactions sent to that queue; an agent's, the
interactions offered, accepted or transferred to them. Neither can be found by
customer or stream, and a scan of the whole store per question grows with it.
Each index is partial (only the few routing event types pay for an entry on
append; every other append pays nothing) and on the very expression history/asof.py
queries. There is no index on recorded_at: every as_of read is narrowed by an
index first (these, customer_id, stream_id) and filters recorded_at on those rows.

RunSQL rather than Meta.indexes: events/models.py is the store's, and an
expression index with an IN condition reads more plainly in SQL.
"""

from django.db import migrations

QUEUE = "('interactions.InteractionQueued', 'interactions.InteractionTransferred')"
AGENT = "('interactions.InteractionOffered', 'interactions.InteractionAccepted', 'interactions.InteractionTransferred')"


class Migration(migrations.Migration):
    dependencies = [("events", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS events_asof_queue_idx ON events_event "
            f"((coalesce(data->>'queue', data->>'to_queue'))) WHERE event_type IN {QUEUE}",
            "DROP INDEX IF EXISTS events_asof_queue_idx",
        ),
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS events_asof_agent_idx ON events_event "
            f"((coalesce(data->>'agent_id', data->>'to_agent_id'))) WHERE event_type IN {AGENT}",
            "DROP INDEX IF EXISTS events_asof_agent_idx",
        ),
    ]
