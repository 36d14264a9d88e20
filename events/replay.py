"""Rebuild a projection from the event store while live traffic continues.

1. Mark the projection `rebuilding` (the live runner pauses and holds its
   Kafka offsets), empty its tables and its applied stream versions.
2. Apply the whole store in position order, in large batches, through the
   same apply_envelopes() the live runner uses, until it reaches the head.
3. Mark it `live`: the runner resumes from its held offsets; what the rebuild
   already applied is dropped by the per-stream versions, what came after is
   applied. The result is the read model live projection builds.

An event whose transaction commits after the rebuild passed its position is
not lost: no later event of its stream can exist yet, so the live runner
applies it from Kafka.

If a rebuild stops half-way (killed, database gone), the projection stays
`rebuilding` and its live runner keeps waiting, so nobody reads a half-built
model as if it were current: run `replay NAME` again (the admin shows the
status).
"""

from __future__ import annotations

import logging
import sys

from django.db import connection, transaction
from tqdm import tqdm

from events.projection import Projection, apply_envelopes
from events.runner import ensure_state
from events.store import head_position, iter_all

log = logging.getLogger(__name__)


def replay(projection: Projection, *, batch_size: int = 5000, progress: bool = True) -> int:
    """Rebuild `projection`; returns the number of events applied."""
    name = projection.name
    ensure_state(name)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT 1 FROM events_projection_state WHERE name = %s FOR UPDATE", [name])
        cur.execute("UPDATE events_projection_state SET status = 'rebuilding' WHERE name = %s", [name])
        projection.reset()
        cur.execute("DELETE FROM events_projection_stream WHERE projection = %s", [name])
    applied = 0
    bar = tqdm(total=head_position(), unit="ev", desc=f"replay {name}", disable=not progress, file=sys.stderr)
    last = 0
    for batch in iter_all(batch_size=batch_size):
        with transaction.atomic():
            applied += len(apply_envelopes(projection, batch))
        bar.total = max(bar.total, batch[-1].position)
        bar.update(batch[-1].position - last)
        last = batch[-1].position
    bar.close()
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "UPDATE events_projection_state SET status = 'live', applied_total = %s, last_applied_at = now() "
            "WHERE name = %s",
            [applied, name],
        )
    log.info("replayed %d events into %s", applied, name)
    return applied
