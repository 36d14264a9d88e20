"""The KPIs, each an aggregate over quality.InteractionFact, grouped as asked (definitions: docs/KPIS.md).

A metric is a ratio (numerator / denominator) or a mean in seconds (total /
count), over the interactions whose deciding moment (`at`) falls in the
window [from, to). Grouping by agent uses `agent` (the agent who handled the
interaction last) except where a metric says otherwise.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import connection


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # "ratio" or "mean_seconds"
    at: str  # SQL: the moment that puts an interaction in a window
    numerator: str  # SQL over f (ratio: count of; mean: sum of)
    denominator: str  # SQL: which rows count
    definition: str
    agent: str = "f.agent_id"


def metrics() -> dict[str, Metric]:
    """The metrics under the current settings (the FCR window and short-abandon threshold are in the texts)."""
    short = float(settings.KPI_SHORT_ABANDON_SECONDS)
    offered = f"(f.answered_at IS NOT NULL OR (f.abandoned_at IS NOT NULL AND f.abandon_wait_seconds >= {short}))"
    wait = "extract(epoch FROM f.answered_at - f.queued_at)"
    return {m.name: m for m in (
        Metric("fcr", "ratio", "f.resolved_at",
               "f.reopened = 0 AND f.repeat_contact_at IS NULL",
               "f.resolved_at IS NOT NULL AND f.direction = 'inbound'",
               "share of resolved inbound interactions the customer did not contact again about (same case or "
               f"disposition, any channel) within {settings.KPI_FCR_WINDOW_DAYS} days, and that were not reopened"),
        Metric("aht", "mean_seconds", "f.resolved_at",
               "f.talk_seconds + f.hold_seconds + f.acw_seconds", "f.resolved_at IS NOT NULL AND f.answered_at IS "
               "NOT NULL", "mean handle time of handled interactions: talk + hold + after-call work, in seconds"),
        Metric("asa", "mean_seconds", "f.answered_at", wait, "f.answered_at IS NOT NULL AND f.queued_at IS NOT NULL",
               "mean speed of answer: from first entering a queue to first acceptance, in seconds"),
        Metric("service_level", "ratio", "coalesce(f.answered_at, f.abandoned_at)",
               f"f.answered_at IS NOT NULL AND {wait} <= f.sl_seconds",
               f"f.queued_at IS NOT NULL AND {offered}",
               "share of queued interactions answered within their queue's threshold, of those answered or "
               f"abandoned after at least {short:g} s"),
        Metric("abandonment_rate", "ratio", "coalesce(f.answered_at, f.abandoned_at)",
               "f.answered_at IS NULL", f"f.queued_at IS NOT NULL AND {offered}",
               f"share of queued interactions abandoned after at least {short:g} s (short abandons left out), of "
               "those answered or abandoned"),
        Metric("transfer_rate", "ratio", "f.answered_at", "f.transfers > 0", "f.answered_at IS NOT NULL",
               "share of answered interactions transferred at least once (by agent: the agent who answered)",
               agent="f.answered_by"),
        Metric("repeat_contact_rate", "ratio", "f.created_at", "f.repeat_of IS NOT NULL",
               "f.direction = 'inbound'",
               "share of inbound interactions that began within the FCR window after an earlier interaction of the "
               "same customer about the same matter was resolved"),
    )}


GROUPS = ("agent", "team", "queue", "channel", "hour", "day", "week")


def report(metric: str, group_by: list[str], start: dt.datetime, end: dt.datetime, tz: str = "UTC") -> list[dict]:
    """One row per group: the value, its numerator and denominator (or total seconds and count)."""
    m = metrics()[metric]
    select, keys = [], []
    for g in group_by:
        if g == "agent":
            expr = m.agent
        elif g == "team":
            expr = "t.name"
        elif g in ("queue", "channel"):
            expr = f"f.{g}"
        else:  # hour, day, week: in the asked time zone
            expr = f"date_trunc('{g}', ({m.at}) AT TIME ZONE %(tz)s)"
        select.append(f"{expr} AS {g}")
        keys.append(expr)
    team_join = ""
    if "team" in group_by:
        team_join = (f"LEFT JOIN auth_user u ON u.username = {m.agent} LEFT JOIN routing_agent a ON a.user_id = u.id "
                     "LEFT JOIN routing_team t ON t.id = a.team_id")
    if m.kind == "ratio":
        measure = f"count(*) FILTER (WHERE {m.numerator}) AS num, count(*) AS den"
    else:
        measure = f"coalesce(sum({m.numerator}), 0) AS num, count(*) AS den"
    sql = f"""
        SELECT {', '.join(select + [measure])}
        FROM quality_interactionfact f {team_join}
        WHERE ({m.denominator}) AND ({m.at}) >= %(start)s AND ({m.at}) < %(end)s
        {('GROUP BY ' + ', '.join(keys)) if keys else ''}
        {('ORDER BY ' + ', '.join(keys)) if keys else ''}"""
    with connection.cursor() as cur:
        cur.execute(sql, {"start": start, "end": end, "tz": tz})
        rows = cur.fetchall()
    out = []
    for row in rows:
        groups, (num, den) = row[:len(group_by)], row[len(group_by):]
        item = {g: _label(v) for g, v in zip(group_by, groups, strict=True)}
        if m.kind == "ratio":
            item.update(value=round(num / den, 4) if den else None, numerator=num, denominator=den)
        else:
            item.update(value=round(float(num) / den, 1) if den else None, total_seconds=round(float(num), 1),
                        count=den)
        out.append(item)
    return out


def _label(value):
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value
