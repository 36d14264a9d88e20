"""The KPIs, each an aggregate over quality.InteractionFact, grouped as asked (definitions: docs/KPIS.md).

A metric is a ratio (numerator / denominator) or a mean in seconds (total /
count), over the interactions whose deciding moment (`at`) falls in the
window [from, to). Grouping by agent uses `agent` (the agent who handled the
interaction last) except where a metric says otherwise.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction

from events.db import raw_cursor


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # "ratio", "mean_seconds" or "nps" (-100 to 100)
    at: str  # SQL: the moment that puts an interaction in a window
    numerator: str  # SQL over f (ratio: count of; mean: sum of)
    denominator: str  # SQL: which rows count
    definition: str
    agent: str = "f.agent_id"


def metrics() -> dict[str, Metric]:
    """The metrics under the current settings (the FCR window and short-abandon threshold are in the texts)."""
    short = float(settings.KPI_SHORT_ABANDON_SECONDS)
    offered = f"(f.answered_at IS NOT NULL OR (f.abandoned_at IS NOT NULL AND f.abandon_wait_seconds >= {short}))"
    wait = "date_part('epoch', f.answered_at - f.queued_at)"  # float8: extract() would be numeric, slower
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
        Metric("occupancy", "ratio", "", "", "",
               "handle time (talk + hold + after-call work of the interactions an agent resolved) over staffed "
               "time (available, busy or in after-call work); above 1 when an agent handles several chats at "
               "once. Groups: agent, team, hour, day, week"),
        Metric("csat", "ratio", "f.surveyed_at", "f.csat >= 4", "f.csat IS NOT NULL",
               "share of CSAT answers (1-5) that are 4 or 5 (satisfied), by when the customer answered; the "
               "interaction's agent, queue and channel"),
        Metric("nps", "nps", "f.surveyed_at", "f.nps >= 9", "f.nps IS NOT NULL",
               "net promoter score: promoters (9-10) minus detractors (0-6), as a share of NPS answers (0-10) "
               "times 100, by when the customer answered"),
        Metric("repeat_contact_rate", "ratio", "f.created_at", "f.repeat_of IS NOT NULL",
               "f.direction = 'inbound'",
               "share of inbound interactions that began within the FCR window after an earlier interaction of the "
               "same customer about the same matter was resolved"),
    )}


GROUPS = ("agent", "team", "queue", "channel", "hour", "day", "week")
TIME_GROUPS = ("hour", "day", "week")
STAFFED = ("available", "busy", "after_call_work")
PROMOTER, DETRACTOR = "f.nps >= 9", "f.nps <= 6"  # NPS: net promoters are promoters minus detractors


class Ungroupable(ValueError):
    """A grouping a metric has no meaning for (occupancy by queue)."""


def buckets(unit: str, start: dt.datetime, end: dt.datetime, tz: str) -> tuple[list[dt.datetime], list[str]]:
    """The hour, day or week buckets of the time zone `tz` that [start, end) crosses: their edges (start, each
    bucket start inside the window, end) and each bucket's label, its local start (daylight-saving days have 23
    or 25 hours). A row falls in bucket i when edges[i] <= its moment < edges[i + 1]."""
    zone = ZoneInfo(tz)
    local = start.astimezone(zone)
    if unit == "hour":
        first = local.replace(minute=0, second=0, microsecond=0)

        def following(t: dt.datetime) -> dt.datetime:
            nxt = (t.astimezone(dt.UTC) + dt.timedelta(hours=1)).astimezone(zone)
            floored = nxt.replace(minute=0, second=0, microsecond=0)
            return floored if floored > t else nxt
    else:
        day = local.date() - dt.timedelta(days=local.weekday() if unit == "week" else 0)
        first = dt.datetime.combine(day, dt.time(), tzinfo=zone)
        days = 7 if unit == "week" else 1

        def following(t: dt.datetime) -> dt.datetime:
            return dt.datetime.combine(t.date() + dt.timedelta(days=days), dt.time(), tzinfo=zone)

    edges, labels, t = [start], [], first
    while t < end:
        labels.append(t.replace(tzinfo=None).isoformat(timespec="seconds"))
        t = following(t)
        if start < t < end:
            edges.append(t.astimezone(dt.UTC))  # aware datetimes of one zone subtract as wall-clock times
    edges.append(end)
    return edges, labels


def report(metric: str, group_by: list[str], start: dt.datetime, end: dt.datetime, tz: str = "UTC", *,
           scope: tuple[list[str], list[str]] | None = None, match: dict | None = None) -> list[dict]:
    """One row per group: the value, its numerator and denominator (or total seconds and count).

    `scope`: (agents, queues) a team supervisor sees: only the contacts handled by those agents or in those
    queues count (None: every contact, for admins). `match`: only the row of that group (see facts_sql).
    """
    m = metrics()[metric]
    if metric == "occupancy":
        return _occupancy(group_by, start, end, tz, scope=scope)
    sql, params = report_sql(metric, group_by, start, end, tz, scope=scope, match=match)
    with transaction.atomic(), raw_cursor() as cur:
        # Grouping a quarter's facts by agent and day hashes tens of thousands of groups: in memory, not on disk.
        cur.execute("SELECT set_config('work_mem', %s, true)", [settings.KPI_REPORT_WORK_MEM])
        cur.execute(sql, params, binary=True)
        rows = cur.fetchall()
    n = len(group_by)
    for k, g in enumerate(group_by):  # bucket numbers to their labels
        if g in TIME_GROUPS:
            labels = params[f"{g}_labels"]
            rows = [(*r[:k], labels[r[k] - 1], *r[k + 1:]) for r in rows]
    names = (*group_by, "value", *{"ratio": ("numerator", "denominator"), "nps": ("net_promoters", "responses"),
                                   "mean_seconds": ("total_seconds", "count")}[m.kind])
    if m.kind == "ratio":
        return [dict(zip(names, (*r[:n], round(r[n] / r[n + 1], 4) if r[n + 1] else None, *r[n:]), strict=True))
                for r in rows]
    if m.kind == "nps":
        return [dict(zip(names, (*r[:n], round(100 * r[n] / r[n + 1], 1) if r[n + 1] else None, *r[n:]), strict=True))
                for r in rows]
    return [dict(zip(names, (*r[:n], round(r[n] / r[n + 1], 1) if r[n + 1] else None, round(r[n], 1), r[n + 1]),
                     strict=True))
            for r in rows]


def report_sql(metric: str, group_by: list[str], start: dt.datetime, end: dt.datetime, tz: str = "UTC", *,
               scope: tuple[list[str], list[str]] | None = None, match: dict | None = None) -> tuple[str, dict]:
    """The one query behind a report of a fact-based metric (make bench-kpis times it bare). An hour, day or
    week group comes back as its bucket's number (1, 2, ...): `params[group + "_labels"][number - 1]` names it.
    The buckets are computed here (`buckets`), so PostgreSQL only compares each row's moment with their edges.
    `match`: only the rows of one group (a drill-down's figure: `facts_sql` says how)."""
    m = metrics()[metric]
    source, keys, params = facts_sql(metric, group_by, start, end, tz, scope=scope, match=match)
    if m.kind == "ratio":
        measure = f"count(*) FILTER (WHERE {m.numerator}) AS num, count(*) AS den"
    elif m.kind == "nps":
        measure = f"count(*) FILTER (WHERE {PROMOTER}) - count(*) FILTER (WHERE {DETRACTOR}) AS num, count(*) AS den"
    else:
        measure = f"coalesce(sum({m.numerator}), 0)::float8 AS num, count(*) AS den"
    select = [f"{k} AS {g}" for g, k in zip(group_by, keys, strict=True)]
    numbers = ", ".join(str(k) for k in range(1, len(keys) + 1))
    sql = f"""
        SELECT {', '.join(select + [measure])}
        {source}
        {('GROUP BY ' + numbers) if keys else ''}
        {('ORDER BY ' + numbers) if keys else ''}"""
    return sql, params


class NoSuchGroup(ValueError):
    """A drill-down's group value that names no group of the report (`field`: the group's parameter)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def facts_sql(metric: str, group_by: list[str], start: dt.datetime, end: dt.datetime, tz: str = "UTC", *,
              scope: tuple[list[str], list[str]] | None = None, match: dict | None = None
              ) -> tuple[str, list[str], dict]:
    """`FROM ... WHERE ...` over the facts (alias `f`) that a fact-based metric counts in [start, end), the SQL
    of each group's key, and the parameters: the one definition both the report and its drill-down read, so a
    drill-down lists exactly the contacts its figure counted.

    `match` (group -> value, as a report row shows it: a time group by its label, None for a null group) keeps
    the facts of that one group; a label the window has no bucket for raises NoSuchGroup.
    """
    m = metrics()[metric]
    params: dict = {"start": start, "end": end}
    scoped = ""
    if scope is not None:
        params["scope_agents"], params["scope_queues"] = list(scope[0]), list(scope[1])
        scoped = f"AND (({m.agent}) = ANY(%(scope_agents)s) OR f.queue = ANY(%(scope_queues)s))"
    keys = []
    for g in group_by:
        if g == "agent":
            keys.append(m.agent)
        elif g == "team":
            keys.append("t.name")
        elif g in ("queue", "channel"):
            keys.append(f"f.{g}")
        else:
            params[f"{g}_edges"], params[f"{g}_labels"] = buckets(g, start, end, tz)
            keys.append(f"width_bucket({m.at}, %({g}_edges)s::timestamptz[])")
    matched = ""
    for g, key in zip(group_by, keys, strict=True):
        if match is None:
            break
        wanted = match[g]
        if g in TIME_GROUPS:
            labels = params[f"{g}_labels"]
            if wanted not in labels:
                raise NoSuchGroup(g, f"no {g} {wanted!r} in the window (as a report row names it, e.g. "
                                     f"{labels[0] if labels else 'none'})")
            wanted = labels.index(wanted) + 1
        params[f"match_{g}"] = wanted
        matched += f" AND ({key}) IS NOT DISTINCT FROM %(match_{g})s"
    team_join = ""
    if "team" in group_by:
        team_join = (f"LEFT JOIN auth_user u ON u.username = {m.agent} LEFT JOIN routing_agent a ON a.user_id = u.id "
                     "LEFT JOIN routing_team t ON t.id = a.team_id")
    source = f"""FROM quality_interactionfact f {team_join}
        WHERE ({m.denominator}) AND ({m.at}) >= %(start)s AND ({m.at}) < %(end)s {scoped}{matched}"""
    return source, keys, params


def drilldown_ids_sql(metric: str, group_by: list[str], start: dt.datetime, end: dt.datetime, tz: str = "UTC", *,
                      scope: tuple[list[str], list[str]] | None = None, match: dict) -> tuple[str, list]:
    """The ids of the facts behind one report row, as SQL with positional parameters (for a queryset's
    `interaction_id__in=RawSQL(...)`, so the API pages through them with its usual cursor)."""
    source, _, params = facts_sql(metric, group_by, start, end, tz, scope=scope, match=match)
    return positional(f"SELECT f.interaction_id {source}", params)


def positional(sql: str, params: dict) -> tuple[str, list]:
    """`%(name)s` placeholders turned into `%s` with their values in order (Django's RawSQL takes a list)."""
    values: list = []

    def take(found: re.Match) -> str:
        values.append(params[found.group(1)])
        return "%s"

    return re.sub(r"%\((\w+)\)s", take, sql), values


def row_parts(metric: str, interaction_ids: list) -> dict:
    """Per fact id: how it enters its figure, from the metric's own SQL. A ratio: whether it is in the
    numerator; a mean: its seconds; NPS: "promoter", "passive" or "detractor"."""
    m = metrics()[metric]
    if m.kind == "ratio":
        part = f"({m.numerator}) IS TRUE"
    elif m.kind == "nps":
        part = f"CASE WHEN {PROMOTER} THEN 'promoter' WHEN {DETRACTOR} THEN 'detractor' ELSE 'passive' END"
    else:
        part = f"({m.numerator})::float8"
    with connection.cursor() as cur:
        cur.execute(f"SELECT f.interaction_id, {part} FROM quality_interactionfact f "  # nosec B608: our own SQL
                    "WHERE f.interaction_id = ANY(%(ids)s)", {"ids": list(interaction_ids)})
        return dict(cur.fetchall())


def _occupancy(group_by: list[str], start: dt.datetime, end: dt.datetime, tz: str, *,
               scope: tuple[list[str], list[str]] | None = None) -> list[dict]:
    """Per agent (and team, and time bucket): handled seconds over staffed seconds, presence stretches cut at the
    window's and the buckets' edges."""
    wrong = [g for g in group_by if g in ("queue", "channel")]
    if wrong:
        raise Ungroupable(f"occupancy is an agent's: it cannot be grouped by {', '.join(wrong)}")
    times = [g for g in group_by if g in TIME_GROUPS]
    if len(times) > 1:
        raise Ungroupable("occupancy takes one of hour, day, week")
    params: dict = {"start": start, "end": end, "staffed": list(STAFFED)}
    scoped = ""
    if scope is not None:  # an agent's figure: a team supervisor sees their agents'
        params["scope_agents"] = list(scope[0])
        scoped = "AND i.agent_id = ANY(%(scope_agents)s)"
    if times:
        edges, labels = buckets(times[0], start, end, tz)
        params.update(lo=edges[:-1], hi=edges[1:])
        buckets_sql = ("SELECT e.bstart, e.bend, e.label FROM unnest(%(lo)s::timestamptz[], %(hi)s::timestamptz[]) "
                       "WITH ORDINALITY AS e(bstart, bend, label)")
    else:
        labels = []
        buckets_sql = "SELECT %(start)s::timestamptz AS bstart, %(end)s::timestamptz AS bend, NULL::bigint AS label"
    sql = f"""
        WITH buckets AS ({buckets_sql}),
        staffed AS (
            SELECT i.agent_id, b.label, sum(greatest(0, extract(epoch FROM
                       least(coalesce(i.ended_at, now()), b.bend, %(end)s) - greatest(i.started_at, b.bstart, %(start)s)
                   ))) AS seconds
            FROM quality_presenceinterval i JOIN buckets b
              ON i.started_at < least(b.bend, %(end)s) AND coalesce(i.ended_at, now()) > greatest(b.bstart, %(start)s)
            WHERE i.presence = ANY(%(staffed)s) {scoped}
            GROUP BY 1, 2),
        handled AS (
            SELECT f.agent_id, b.label, sum(f.talk_seconds + f.hold_seconds + f.acw_seconds) AS seconds
            FROM quality_interactionfact f JOIN buckets b
              ON f.resolved_at >= greatest(b.bstart, %(start)s) AND f.resolved_at < least(b.bend, %(end)s)
            WHERE f.answered_at IS NOT NULL AND f.agent_id IS NOT NULL
            GROUP BY 1, 2)
        SELECT s.agent_id, t.name, s.label, coalesce(h.seconds, 0), s.seconds
        FROM staffed s
        LEFT JOIN handled h ON h.agent_id = s.agent_id AND h.label IS NOT DISTINCT FROM s.label
        LEFT JOIN auth_user u ON u.username = s.agent_id LEFT JOIN routing_agent a ON a.user_id = u.id
        LEFT JOIN routing_team t ON t.id = a.team_id"""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT set_config('work_mem', %s, true)", [settings.KPI_REPORT_WORK_MEM])
        cur.execute(sql, params)
        rows = cur.fetchall()
    totals: dict[tuple, list[float]] = {}
    for agent, team, label, handled, staffed in rows:
        values = {"agent": agent, "team": team, **({times[0]: labels[label - 1]} if times else {})}
        key = tuple(values[g] for g in group_by)
        acc = totals.setdefault(key, [0.0, 0.0])
        acc[0] += float(handled)
        acc[1] += float(staffed)
    out = []
    for key in sorted(totals, key=lambda k: tuple("" if v is None else str(v) for v in k)):
        handled, staffed = totals[key]
        out.append({**dict(zip(group_by, key, strict=True)), "value": round(handled / staffed, 4) if staffed else None,
                    "handled_seconds": round(handled, 1), "staffed_seconds": round(staffed, 1)})
    return out


def repeat_contacts(interaction_ids: list) -> dict:
    """Per fact that lost FCR to a repeat contact: that later contact's id (the customer's interaction that began
    at `repeat_contact_at`, as the projection's repeat-contact link found it)."""
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT DISTINCT ON (f.interaction_id) f.interaction_id, r.interaction_id
            FROM quality_interactionfact f
            JOIN quality_interactionfact r ON r.customer_id = f.customer_id AND r.created_at = f.repeat_contact_at
                                          AND r.interaction_id <> f.interaction_id
            WHERE f.interaction_id = ANY(%(ids)s::uuid[])
            ORDER BY f.interaction_id, r.interaction_id""",
            {"ids": list(interaction_ids)},
        )
        return dict(cur.fetchall())


def fact_events(interaction_ids: list) -> dict:
    """Per interaction: the stored events its fact was projected from (quality.projections.RELEVANT: its own
    lifecycle events, and the answer to its survey, which is the survey's stream), in store order. Envelope
    fields only: the payloads stay behind the admin-only event API."""
    from quality.projections import RELEVANT

    out: dict = {i: [] for i in interaction_ids}
    # One array of stream ids (the interactions' and their surveys'), so the lookup is by the stream index: an OR
    # of two conditions would scan the whole store.
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT coalesce(s.interaction_id, e.stream_id), e.event_id, e.position, e.event_type, e.occurred_at
            FROM events_event e LEFT JOIN quality_survey s ON s.id = e.stream_id
            WHERE e.stream_id = ANY(%(ids)s::uuid[] || ARRAY(SELECT id FROM quality_survey
                                                             WHERE interaction_id = ANY(%(ids)s::uuid[])))
              AND e.event_type = ANY(%(types)s)
            ORDER BY e.position""",
            {"types": sorted(RELEVANT), "ids": list(interaction_ids)},
        )
        for iid, event_id, position, event_type, occurred_at in cur.fetchall():
            out.setdefault(iid, []).append({"event_id": event_id, "position": position, "event_type": event_type,
                                            "occurred_at": occurred_at})
    return out
