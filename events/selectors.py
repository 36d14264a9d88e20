"""Reads about the health of the event backbone: outbox backlog and projection lag."""

from __future__ import annotations

from django.conf import settings
from django.db import connection


def outbox_backlog() -> dict:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*), extract(epoch FROM now() - min(enqueued_at)) FROM events_outbox")
        count, oldest = cur.fetchone()
    oldest = float(oldest or 0.0)
    return {
        "count": count,
        "oldest_age_seconds": round(oldest, 3),
        "alert": count > 0 and oldest > settings.OUTBOX_ALERT_AGE_SECONDS,
    }


def projection_lag() -> list[dict]:
    """Per projection: messages published but not applied, computed from our own positions.

    The relay records the offset of every acknowledged message per partition;
    a projection records the next offset it will read. Their difference (in
    the current broker epoch) is the lag; the broker's own end offsets are not
    used (the embedded broker reports them wrong).
    """
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT s.name, s.status, s.broker_epoch, s.applied_total, s.last_applied_at,
                   extract(epoch FROM now() - s.last_event_recorded_at),
                   coalesce((SELECT broker_epoch FROM events_relay_state WHERE id = 1), 0),
                   coalesce((SELECT sum(greatest(rp.last_offset + 1 - coalesce(c.next_offset, 0), 0))
                             FROM events_relay_partition rp
                             LEFT JOIN events_projection_checkpoint c
                                    ON c.projection = s.name AND c.partition = rp.partition), 0)
            FROM events_projection_state s ORDER BY s.name
            """
        )
        rows = cur.fetchall()
    out = []
    for name, status, epoch, applied, last_applied, since_last, relay_epoch, lag in rows:
        out.append(
            {
                "name": name,
                "status": status,
                "applied_total": applied,
                "last_applied_at": last_applied.isoformat() if last_applied else None,
                "lag_messages": int(lag) if epoch == relay_epoch else None,
                "seconds_since_last_event": round(float(since_last), 3) if since_last is not None else None,
                "broker_epoch": epoch,
            }
        )
    return out
