"""Projections: read models built from events, applied exactly once.

A projection is a name, the read-model tables it owns, and its handlers
(`on_<event>` functions in a HANDLERS table keyed by event class). Each app
declares its projections in `projections.py`; they are discovered at start.

`apply_envelopes()` is the one way events reach a projection, live (runner.py)
or in a rebuild (replay.py). In the caller's transaction it

1. drops events the projection already applied: it keeps the highest
   applied version of every stream, and a stream's events always arrive in
   version order, whatever Kafka redelivers or a republish repeats;
2. applies the rest, the whole batch at once when it can; an event that
   fails is retried alone and, failing again, goes to the dead-letter table
   with its error while the others go on;
3. records the new stream versions in the same transaction as the writes.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from django.db import connection, models, transaction
from django.utils import timezone

from events import registry
from events.db import raw_cursor
from events.models import DeadLetter
from events.store import COLUMNS, Envelope, envelopes_from_rows

log = logging.getLogger(__name__)

Handler = Callable[[Envelope], None]


@dataclass
class Projection:
    name: str
    tables: Sequence[type[models.Model]]
    handlers: dict[type, list[Handler]] = field(default_factory=dict)
    # Optional: applies a whole batch at once (set-based SQL) instead of the
    # per-event handlers; must have the same effect as applying one by one.
    batch_handler: Callable[[Sequence[Envelope]], None] | None = None
    # Optional: runs after the batch commits (e.g. a WebSocket push).
    after_commit: Callable[[Sequence[Envelope]], None] | None = None
    # Event types a batch handler reads (for the catalog), and a sentence
    # when it reads more than it can name (e.g. "every event with a customer").
    subscribes: Sequence[type] = ()
    reads: str = ""

    def __post_init__(self) -> None:
        self._by_type = {registry.type_of(cls).name: fns for cls, fns in self.handlers.items()}

    @property
    def event_types(self) -> list[str]:
        return sorted(set(self._by_type) | {registry.type_of(cls).name for cls in self.subscribes})

    def apply(self, envelopes: Sequence[Envelope]) -> None:
        if self.batch_handler is not None:
            self.batch_handler(envelopes)
            return
        for env in envelopes:
            for handler in self._by_type.get(env.event_type, ()):
                handler(env)

    def reset(self) -> None:
        """Empty the read model (for a rebuild)."""
        with connection.cursor() as cur:
            for model in self.tables:
                cur.execute(f'TRUNCATE TABLE "{model._meta.db_table}"')


_PROJECTIONS: dict[str, Projection] = {}


def register(projection: Projection) -> Projection:
    if projection.name in _PROJECTIONS:
        raise ValueError(f"projection {projection.name!r} is already registered")
    _PROJECTIONS[projection.name] = projection
    return projection


def get(name: str) -> Projection:
    try:
        return _PROJECTIONS[name]
    except KeyError:
        raise LookupError(f"no projection named {name!r}; known: {', '.join(sorted(_PROJECTIONS))}") from None


def all_projections() -> list[Projection]:
    return [_PROJECTIONS[name] for name in sorted(_PROJECTIONS)]


def apply_envelopes(projection: Projection, envelopes: Iterable[Envelope]) -> list[Envelope]:
    """Apply what `projection` has not applied yet; returns the events it applied (or dead-lettered)."""
    envelopes = list(envelopes)
    if not envelopes:
        return []
    with raw_cursor() as cur:
        cur.execute(
            "SELECT stream_id, version FROM events_projection_stream WHERE projection = %s AND stream_id = ANY(%s)",
            [projection.name, list({e.stream_id for e in envelopes})], prepare=True,
        )
        applied = dict(cur.fetchall())
    fresh, changed = [], {}
    for env in envelopes:
        if env.stream_version <= applied.get(env.stream_id, 0):
            continue  # redelivered: applied before
        applied[env.stream_id] = changed[env.stream_id] = env.stream_version
        fresh.append(env)
    if not fresh:
        return []
    _apply_or_dead_letter(projection, fresh)
    with raw_cursor() as cur:
        cur.execute(
            """
            INSERT INTO events_projection_stream (projection, stream_id, version)
            SELECT %s, s, v FROM unnest(%s::uuid[], %s::int[]) AS t(s, v)
            ON CONFLICT (projection, stream_id) DO UPDATE SET version = EXCLUDED.version
            """,
            [projection.name, list(changed), list(changed.values())], prepare=True,
        )
    return fresh


def _apply_or_dead_letter(projection: Projection, envelopes: list[Envelope]) -> None:
    try:
        with transaction.atomic():
            projection.apply(envelopes)
        return
    except Exception:
        if len(envelopes) == 1:
            _dead_letter(projection, envelopes[0])
            return
        log.info("batch failed in %s; applying its %d events one by one", projection.name, len(envelopes))
    for env in envelopes:
        try:
            with transaction.atomic():
                projection.apply([env])
        except Exception:
            _dead_letter(projection, env)


def _dead_letter(projection: Projection, env: Envelope) -> None:
    error = traceback.format_exc()
    log.error("%s failed to apply %s #%s; dead-lettered", projection.name, env.event_type, env.position,
              extra={"correlation_id": env.correlation_id})
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO events_dead_letter (projection, position, event_id, event_type, stream_id, error, traceback,
                                            failed_at, attempts)
            VALUES (%s, %s, %s, %s, %s, %s, %s, now(), 1)
            ON CONFLICT (projection, event_id) DO UPDATE
            SET error = EXCLUDED.error, traceback = EXCLUDED.traceback, failed_at = now(),
                attempts = events_dead_letter.attempts + 1, resolved_at = NULL
            """,
            [projection.name, env.position, env.event_id, env.event_type, env.stream_id,
             error.strip().splitlines()[-1][:2000], error],
        )


def retry_dead_letter(dead_letter_id: int) -> bool:
    """Apply a dead-lettered event again (admin action). Returns True when it now applied."""
    with transaction.atomic():
        dl = DeadLetter.objects.select_for_update().get(pk=dead_letter_id)
        if dl.resolved_at is not None:
            return True
        with connection.cursor() as cur:
            # COLUMNS is our constant column list; the position is a bound parameter.
            cur.execute(f"SELECT {COLUMNS} FROM events_event WHERE position = %s", [dl.position])  # nosec B608
            (env,) = envelopes_from_rows(cur.fetchall())
        try:
            with transaction.atomic():
                get(dl.projection).apply([env])
        except Exception as exc:
            DeadLetter.objects.filter(pk=dl.pk).update(
                attempts=dl.attempts + 1, error=f"{type(exc).__name__}: {exc}"[:2000], traceback=traceback.format_exc()
            )
            return False
        DeadLetter.objects.filter(pk=dl.pk).update(resolved_at=timezone.now(), attempts=dl.attempts + 1)
        return True
