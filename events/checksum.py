"""Projection checksums: a fingerprint of each read model, to prove that live equals a rebuild.

A projection converges when, once it has caught up, its tables hold exactly
what a full replay of the event store would build (DESIGN: "projections can
be rebuilt at any time"). Comparing whole tables by eye does not scale, so
each table gets a checksum:

- every row becomes the md5 of its columns' text (`ROW(...)::text`), and the
  table's checksum is the md5 of those, in key order, beside its row count;
- columns that say *when or in which order* a row was written rather than
  *what* it says are left out: surrogate keys (an `AutoField` numbered in
  apply order) and `auto_now`/`auto_now_add` timestamps. A table without a
  natural key is then ordered by the rows' own hashes, so the order rows were
  inserted in never matters;
- the projection's applied stream versions (`events_projection_stream`) and
  its unresolved dead letters are summed too: two read models that agree
  but where one skipped or dead-lettered events would not be equal.

`replay_checksums()` rebuilds projections with `events.replay.replay`
into a scratch schema of the same database (copies of the projection's
tables, found first on the `search_path`, while the event store is read from
the real ones) and sums them there, so the live read model keeps serving and
its runner keeps running. Used by `manage.py projection_checksum` and by
the fault scenarios of `make trust` (trust/).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import connection, models

from events.projection import Projection

# Runner and rebuild bookkeeping a rebuild writes to: copied (empty) into the scratch schema as well.
_BOOKKEEPING = ("events_projection_stream", "events_projection_state", "events_dead_letter")


@dataclass(frozen=True)
class TableSum:
    table: str
    rows: int
    digest: str  # md5 hex of the row hashes in key order ("" for an empty table)


@dataclass
class ProjectionSum:
    name: str
    tables: list[TableSum] = field(default_factory=list)

    @property
    def digest(self) -> str:
        """One value for the whole projection: sha256 over its tables' names, row counts and digests."""
        h = hashlib.sha256()
        for t in self.tables:
            h.update(f"{t.table}\0{t.rows}\0{t.digest}\n".encode())
        return h.hexdigest()

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def as_dict(self) -> dict:
        return {"name": self.name, "digest": self.digest, "rows": self.rows,
                "tables": [{"table": t.table, "rows": t.rows, "digest": t.digest} for t in self.tables]}


@dataclass(frozen=True)
class _Spec:
    """How one table is summed: its name, the columns that count, the ORDER BY, an optional WHERE."""

    label: str
    table: str
    columns: tuple[str, ...]
    key: tuple[str, ...]  # empty: ordered by the row hash itself
    where: str = ""
    params: tuple = ()


def _is_bookkeeping(f: models.Field) -> bool:
    if isinstance(f, models.AutoField | models.BigAutoField | models.SmallAutoField):
        return True  # numbered in the order rows were applied: not what the row says
    return bool(getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False))


def _model_spec(model: type[models.Model]) -> _Spec:
    fields = [f for f in model._meta.concrete_fields if not _is_bookkeeping(f)]
    pk = model._meta.pk
    key = (pk.column,) if pk is not None and not _is_bookkeeping(pk) else ()
    return _Spec(model._meta.db_table, model._meta.db_table, tuple(f.column for f in fields), key)


def _specs(projection: Projection) -> list[_Spec]:
    specs = [_model_spec(m) for m in projection.tables]
    specs.append(_Spec("events_projection_stream (applied versions)", "events_projection_stream",
                       ("stream_id", "version"), ("stream_id",), "projection = %s", (projection.name,)))
    specs.append(_Spec("events_dead_letter (unresolved)", "events_dead_letter", ("position", "event_type"),
                       ("position",), "projection = %s AND resolved_at IS NULL", (projection.name,)))
    return specs


def _qualified(schema: str | None, table: str) -> str:
    return f'"{schema}"."{table}"' if schema else f'"{table}"'


def _table_sum(cur, spec: _Spec, schema: str | None) -> TableSum:
    cols = ", ".join(f'"{c}"' for c in spec.columns)
    order = ", ".join(f'"{c}"' for c in spec.key) or "_row_hash"
    where = f"WHERE {spec.where}" if spec.where else ""
    # md5 per row, then md5 over the row hashes in key order: 32 bytes a row to aggregate, whatever the row's size.
    cur.execute(
        f"SELECT count(*), coalesce(md5(string_agg(_row_hash, '' ORDER BY {order})), '') "  # nosec B608: names from model meta; values are params
        f"FROM (SELECT md5(ROW({cols})::text) AS _row_hash, * FROM {_qualified(schema, spec.table)} {where}) t",
        list(spec.params),
    )
    rows, digest = cur.fetchone()
    return TableSum(spec.label, rows, digest)


def checksum(projection: Projection, *, schema: str | None = None) -> ProjectionSum:
    """The projection's checksum as its tables hold it now (in `schema`, default: where Django finds them)."""
    result = ProjectionSum(projection.name)
    with connection.cursor() as cur:
        for spec in _specs(projection):
            result.tables.append(_table_sum(cur, spec, schema))
    return result


def current_schema() -> str:
    with connection.cursor() as cur:
        cur.execute("SELECT current_schema()")
        return cur.fetchone()[0]


@contextmanager
def scratch_schema(projections: Sequence[Projection]) -> Iterator[str]:
    """A new schema holding empty copies of the projections' tables and the runner's bookkeeping, put first
    on this connection's search_path; the path is restored and the schema dropped afterwards.

    Only this connection sees the copies: other connections (the live runner) keep their own search_path.
    Unqualified SQL in the handlers and in replay() resolves to the copies; everything else (the event store,
    the customers' keys, routing's queues) to the real tables.
    """
    home = current_schema()
    schema = f"checksum_{secrets.token_hex(4)}"
    tables = {m._meta.db_table for p in projections for m in p.tables} | set(_BOOKKEEPING)
    with connection.cursor() as cur:
        cur.execute("SHOW search_path")
        (path,) = cur.fetchone()
        cur.execute(f'CREATE SCHEMA "{schema}"')
        try:
            for table in sorted(tables):
                cur.execute(f'CREATE TABLE "{schema}"."{table}" (LIKE "{home}"."{table}" INCLUDING ALL)')
            cur.execute(f'SET search_path TO "{schema}", "{home}"')
            yield schema
        finally:
            # Back to what it was before anything else runs on this connection (it may go back to a pool).
            cur.execute(f"SET search_path TO {path}")
            cur.execute(f'DROP SCHEMA "{schema}" CASCADE')


def replay_checksums(projections: Sequence[Projection], *, batch_size: int = 5000,
                     diff_limit: int = 0, live: dict[str, ProjectionSum] | None = None
                     ) -> tuple[dict[str, ProjectionSum], dict[str, list[str]]]:
    """Rebuild each projection from the whole event store into a scratch schema and sum it there.

    Returns (checksums by projection name, differences): with `diff_limit` and the `live` checksums, every
    table whose digest differs from the live one gets up to `diff_limit` lines naming rows that are only in
    one of the two (by key), so a failed comparison says where to look.
    """
    from events.replay import replay

    home = current_schema()
    sums: dict[str, ProjectionSum] = {}
    diffs: dict[str, list[str]] = {}
    with scratch_schema(projections) as schema:
        for p in projections:
            replay(p, batch_size=batch_size, progress=False)
            sums[p.name] = checksum(p, schema=schema)
            if diff_limit and live is not None and p.name in live:
                diffs[p.name] = _differences(p, live[p.name], sums[p.name], home, schema, diff_limit)
    return sums, diffs


def _differences(projection: Projection, live: ProjectionSum, rebuilt: ProjectionSum, home: str, schema: str,
                 limit: int) -> list[str]:
    out = []
    live_by = {t.table: t for t in live.tables}
    with connection.cursor() as cur:
        for spec, t in zip(_specs(projection), rebuilt.tables, strict=True):
            if live_by.get(t.table) == t:
                continue
            cols = ", ".join(f'"{c}"' for c in spec.columns)
            shown = ", ".join(f'"{c}"' for c in (spec.key or spec.columns[:3]))
            where = f"WHERE {spec.where}" if spec.where else ""
            for label, a, b in (("live only", home, schema), ("replay only", schema, home)):
                cur.execute(
                    f"SELECT {shown} FROM (SELECT {cols} FROM {_qualified(a, spec.table)} {where} EXCEPT ALL "  # nosec B608: as above
                    f"SELECT {cols} FROM {_qualified(b, spec.table)} {where}) d LIMIT %s",
                    [*spec.params, *spec.params, limit],
                )
                for row in cur.fetchall():
                    out.append(f"{t.table}: {label}: {', '.join(map(str, row))}")
    return out


def streams_behind(projection: Projection) -> int:
    """Streams of the event store whose last event the projection has not applied yet (0: caught up).

    A projection records, per stream, the last version it applied (also for streams it has no handler for),
    so this compares that with each stream's last version in the store; it needs no Kafka offsets.
    """
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM (SELECT stream_id, max(stream_version) AS v FROM events_event GROUP BY stream_id) s "
            "LEFT JOIN events_projection_stream p ON p.projection = %s AND p.stream_id = s.stream_id "
            "WHERE p.version IS DISTINCT FROM s.v",
            [projection.name],
        )
        return cur.fetchone()[0]
