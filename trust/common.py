"""What the scenarios share: the database probe, waiting, catching up, fixtures, one-off webhooks, result rows."""

from __future__ import annotations

import http.client
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import intake_bench as ib
import psycopg
from events_bench import log

# --- the database, seen from outside -------------------------------------------------------------------------


class Db:
    """psycopg on its own autocommit connection, reconnecting after a database restart (the runner's probe)."""

    def __init__(self, url: str):
        self.url = url
        self._conn: psycopg.Connection | None = None

    def rows(self, sql: str, params=None) -> list[tuple]:
        for attempt in (0, 1):
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=3)
                return self._conn.execute(sql, params or []).fetchall()
            except (psycopg.OperationalError, psycopg.InterfaceError):
                self.close()
                if attempt:
                    raise
        return []

    def value(self, sql: str, params=None):
        rows = self.rows(sql, params)
        return rows[0][0] if rows else None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
        self._conn = None


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.5) -> float | None:
    """Poll until `predicate()` is truthy (an exception counts as not yet); the monotonic time it was, or None."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return time.monotonic()
        except Exception:
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


HEAD_SQL = "SELECT coalesce(max(position), 0) FROM events_event"
OUTBOX_UPTO_SQL = "SELECT count(*) FROM events_outbox WHERE position <= %s"
# Streams whose events up to a position a projection has not applied yet (its applied versions, per stream).
BEHIND_UPTO_SQL = """
WITH s AS (SELECT stream_id, max(stream_version) AS v FROM events_event WHERE position <= %s GROUP BY stream_id)
SELECT p.name, count(*) FILTER (WHERE coalesce(ps.version, 0) < s.v) AS behind
FROM s CROSS JOIN unnest(%s::text[]) AS p(name)
LEFT JOIN events_projection_stream ps ON ps.projection = p.name AND ps.stream_id = s.stream_id
GROUP BY p.name
"""


def projection_names() -> list[str]:
    from events.projection import all_projections

    return [p.name for p in all_projections()]


def catch_up(db: Db, upto: int, timeout: float) -> tuple[float | None, float | None]:
    """When the outbox held nothing up to `upto` (relay), and when every projection had applied everything up
    to it; None for what did not happen within `timeout`."""
    names = projection_names()
    t_relay = t_proj = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (t_relay is None or t_proj is None):
        try:
            if t_relay is None and db.value(OUTBOX_UPTO_SQL, [upto]) == 0:
                t_relay = time.monotonic()
            if t_proj is None and all(r[1] == 0 for r in db.rows(BEHIND_UPTO_SQL, [upto, names])):
                t_proj = time.monotonic()
        except Exception:
            pass
        time.sleep(0.25)
    return t_relay, t_proj


def settle(db: Db, timeout: float = 180) -> bool:
    """Everything committed so far is on Kafka and applied: a fault that follows starts from a clean slate."""
    t_relay, t_proj = catch_up(db, db.value(HEAD_SQL), timeout)
    return t_relay is not None and t_proj is not None


# --- fixtures (Django, in the runner) ---------------------------------------------------------------------------


def make_queue(name: str, *, channels: list[str], skill: str, min_proficiency: int = 1, **fields) -> None:
    from routing.models import Queue, QueueSkill, Skill

    Queue.objects.update_or_create(name=name, defaults={"channels": channels, **fields})
    QueueSkill.objects.get_or_create(queue_id=name, skill=Skill.objects.get_or_create(name=skill)[0],
                                     defaults={"min_proficiency": min_proficiency})


def make_agents(prefix: str, n: int, *, skill: str | None, capacity: dict, presence: str = "offline") -> list[dict]:
    """n agents (users in the `agent` group, an API token each), bulk-created; [{"name", "token", "pk"}]."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from routing.models import Agent, AgentSkill, Skill

    User = get_user_model()
    unusable = make_password(None)  # hashing a thousand passwords would take minutes
    users = User.objects.bulk_create([User(username=f"{prefix}{i:04d}", password=unusable) for i in range(n)])
    group = Group.objects.get_or_create(name="agent")[0]
    User.groups.through.objects.bulk_create([User.groups.through(user_id=u.pk, group_id=group.pk) for u in users])
    tokens = Token.objects.bulk_create([Token(user=u, key=Token.generate_key()) for u in users])
    now = timezone.now()
    agents = Agent.objects.bulk_create([Agent(user=u, capacity=dict(capacity), presence=presence, presence_since=now,
                                              idle_since=now, languages=["en"]) for u in users])
    if skill:
        s = Skill.objects.get_or_create(name=skill)[0]
        AgentSkill.objects.bulk_create([AgentSkill(agent=a, skill=s, proficiency=3) for a in agents])
    return [{"name": u.username, "token": t.key, "pk": a.pk} for u, t, a in zip(users, tokens, agents, strict=True)]


def admin_token() -> str:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_user(username="trust-admin", password=secrets.token_hex(8),
                                                is_staff=True, is_superuser=True)
    return Token.objects.create(user=user).key


# --- one-off HTTP ------------------------------------------------------------------------------------------------


def http_json(port: int, method: str, path: str, *, token: str | None = None, body: dict | None = None,
              raw: bytes | None = None, headers: dict | None = None, timeout: float = 30) -> tuple[int | str, dict]:
    h = {"Host": "127.0.0.1", "Content-Type": "application/json", **(headers or {})}
    if token:
        h["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        payload = r.read()
        c.close()
    except (OSError, http.client.HTTPException) as exc:
        return f"error {type(exc).__name__}", {}
    try:
        parsed = json.loads(payload) if payload else {}
    except ValueError:
        parsed = {"raw": payload[:200].decode(errors="replace")}
    return r.status, parsed if isinstance(parsed, dict) else {"value": parsed}


def webhook(port: int, channel: str, body: dict, *, ts: str | None = None, signed: tuple | None = None
            ) -> tuple[int | str, dict, tuple]:
    """One signed delivery (intake_bench.signed); `signed` replays an earlier (path, raw, headers) byte for byte.
    Returns (status, body, what was sent)."""
    sent = signed or ib.signed(channel, body, ts or str(int(time.time())))
    path, raw, headers = sent
    status, parsed = http_json(port, "POST", path, raw=raw, headers=headers)
    return status, parsed, sent


# --- results ----------------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One scenario's line in docs/TRUST.md, its note on how it was measured, and the details of the run."""

    n: str
    title: str
    injected: str
    expected: str
    how: str
    acked: int | None = None
    lost: int | None = None
    duplicated: int | None = None
    unexpected_5xx: int | None = None
    recover: str = "-"
    figures: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)  # what must hold -> whether it did
    acked_ids: list[str] = field(default_factory=list)  # checked against the ledger verification at the end
    data: dict = field(default_factory=dict)  # figures another step needs (scenario 5's expected 503s)
    error: str = ""

    @property
    def passed(self) -> bool | None:
        if self.error:
            return False
        return all(self.checks.values()) if self.checks else None

    def check(self, what: str, ok: bool) -> bool:
        self.checks[what] = bool(ok)
        log(f"  [{'ok' if ok else 'FAILED'}] {what}")
        return ok

    def detail(self, text: str) -> None:
        self.details.append(text)
        log(f"  {text}")


def secs(t: float | None, since: float | None) -> str:
    return "never" if t is None or since is None else f"{t - since:.1f} s"

