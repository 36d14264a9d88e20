"""What-if routing: a recorded period's traffic replayed through a routing policy, in a discrete-event simulation.

The simulation is the routing engine itself: every moment something changes
(a contact arrives, an agent frees a slot or becomes available, a waiting
contact reaches an expansion step), it runs a dispatch pass exactly as the
live dispatcher does (routing.engine.group_limits picks the work a pass looks
at, routing.engine.decide_pass decides it with routing.domain's rules), over
in-memory agents and waiting work instead of rows. It reads the event store
and the configuration, and writes nothing.

What the recorded period gives (`load_day`), from the events whose business
time (`occurred_at`) falls in [start, end):
- **Arrivals**: each interaction's first `InteractionQueued` in the window,
  with its channel, queue, VIP and repeat flags (as routing computed them:
  the customer's VIP tier, an earlier contact on the same case) and the
  priority boost and skill of red flags raised before it was answered.
- **Work content**, carried by the contact whoever takes it: the answer
  delay (offer to acceptance), the handle time (acceptance to end, transfers
  included) and, for calls, the after-call work (end to wrap-up, at most
  ROUTING_AFTER_CALL_SECONDS as live). A contact that was never answered
  borrows these from a recorded contact of its queue and channel (seeded).
- **Patience**: a contact that abandoned gives up after the wait it showed;
  one that was answered after waiting w would have waited at least w, and
  is given a patience drawn (seeded) from its queue's patience curve beyond
  w: the Kaplan-Meier estimate over the period's abandonments and answered
  waits, the standard treatment of patience that answering cut short. A draw
  past the longest abandonment seen means it waits as long as it takes.
- **Agent presence**, as the agents set it (available, busy, break,
  offline): after-call work and the return from it are left out, because
  the simulation makes them from the calls it gives each agent.

Not modelled: offers declined or let time out (every offer is accepted
after its contact's answer delay), contacts in progress when the window
starts, outbound work and direct transfers to an agent, queues closed by
business hours (overflow after a wait is modelled). The configuration has
no history: "the recorded policy" is the configuration as it is now.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import json
import logging
import random
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.db import connection

from routing import domain, engine

ARRIVE, PRESENCE, END, ACW_END, ABANDON, ACCEPT, WAKE, OVERFLOW, FLAG = range(9)
STAFFED = ("available", "busy")
log = logging.getLogger(__name__)
MAX_STEPS, MAX_ADDED_AGENTS = 20, 1000  # what a candidate may hold (a replay keeps an event per step per contact)
DEFAULT_ANSWER_DELAY, DEFAULT_HANDLE = 5.0, 300.0


class InvalidWhatIf(ValueError):
    """A request or policy the simulator cannot use: `field` names it (a dotted path into the request)."""

    status, code = 400, "invalid_what_if"

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name


# --- the recorded period ---------------------------------------------------------------------------------


@dataclass
class Contact:
    """One recorded arrival: what it brings (inputs) and what happened to it (recorded outcome)."""

    interaction_id: uuid.UUID
    customer_id: uuid.UUID | None
    channel: str
    queue: str
    arrived: float  # seconds after the window's start
    vip: bool = False
    repeat: bool = False
    flag_boost: int = 0  # raised by the time it queued
    prefer_skill: str = ""
    flags: list = field(default_factory=list)  # (seconds, boost, skill) raised later, while it waited
    answer_delay: float | None = None
    handle: float | None = None
    wrap: float | None = None
    patience: float | None = None  # None: waits for ever
    # what happened (seconds after the start)
    agent: str | None = None
    offered_at: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    abandoned_at: float | None = None


@dataclass
class Day:
    start: dt.datetime
    end: dt.datetime
    contacts: list[Contact]
    presence: dict[str, list[tuple[float, str]]]  # agent -> [(seconds, presence)], as the agents set it
    initial: dict[str, str]  # agent -> presence at the start
    recorded_acw: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # as recorded (occupancy)
    events: int = 0  # read from the store

    @property
    def horizon(self) -> float:
        return (self.end - self.start).total_seconds()


_LIFECYCLE = ("interactions.InteractionCreated", "interactions.InteractionQueued", "interactions.InteractionOffered",
              "interactions.InteractionAccepted", "interactions.InteractionEnded", "interactions.InteractionWrappedUp",
              "interactions.InteractionAbandoned", "intelligence.RedFlagRaised")


def load_day(start: dt.datetime, end: dt.datetime, *, seed: int = 0) -> Day:
    """The arrivals, work content and agent presence recorded in [start, end) (module docstring)."""
    if end <= start:
        raise InvalidWhatIf("to", "must be after `from`")
    sec = lambda at: (at - start).total_seconds()  # noqa: E731
    after_call = float(settings.ROUTING_AFTER_CALL_SECONDS)
    with connection.cursor() as cur:
        # Interactions whose first queueing falls in the window (events/migrations/0003: a partial index).
        cur.execute("""SELECT stream_id FROM events_event
                       WHERE event_type = 'interactions.InteractionQueued'
                         AND occurred_at >= %s AND occurred_at < %s GROUP BY stream_id""", [start, end])
        ids = [r[0] for r in cur.fetchall()]
        cur.execute("""SELECT stream_id, event_type, occurred_at, customer_id, data::text FROM events_event
                       WHERE stream_id = ANY(%s) AND event_type = ANY(%s) ORDER BY stream_id, stream_version""",
                    [ids, list(_LIFECYCLE)])
        rows = cur.fetchall()
        # VIP and repeat as routing computes them when work starts waiting (routing.services._new_work): the
        # customer's VIP tier (today's), an earlier contact on the same case.
        cur.execute("""SELECT customer_id FROM customers_customerprofile
                       WHERE customer_id = ANY(%s) AND vip_tier <> 'none'""", [list({r[3] for r in rows if r[3]})])
        vips = {r[0] for r in cur.fetchall()}
        cur.execute("""SELECT i.id FROM interactions_interaction i
                       WHERE i.id = ANY(%s) AND EXISTS (SELECT 1 FROM interactions_interaction o
                             WHERE o.case_id = i.case_id AND o.id <> i.id AND o.created_at <= i.created_at)""", [ids])
        repeats = {r[0] for r in cur.fetchall()}
        cur.execute("""SELECT u.username, a.stream_id FROM routing_agent a JOIN auth_user u ON u.id = a.user_id""")
        agent_streams = dict(cur.fetchall())
        cur.execute("""SELECT stream_id, occurred_at, data->>'presence' FROM events_event
                       WHERE stream_id = ANY(%s) AND event_type = 'routing.AgentPresenceChanged'
                         AND occurred_at < %s ORDER BY stream_id, stream_version""",
                    [list(agent_streams.values()), end + dt.timedelta(hours=6)])
        presence_rows = cur.fetchall()
    contacts: dict[uuid.UUID, Contact] = {}
    first_queued: dict[uuid.UUID, bool] = {}
    channel_of: dict[uuid.UUID, str] = {}
    for stream_id, kind, at, customer_id, text in rows:
        data = json.loads(text)
        t = sec(at)
        if kind == "interactions.InteractionCreated":
            channel_of[stream_id] = data["channel"]
            continue
        if kind == "interactions.InteractionQueued":
            if stream_id not in first_queued:
                first_queued[stream_id] = start <= at < end
                if first_queued[stream_id]:
                    contacts[stream_id] = Contact(stream_id, customer_id, channel_of.get(stream_id, "chat"),
                                                  data["queue"], t, vip=customer_id in vips,
                                                  repeat=stream_id in repeats)
            continue
        c = contacts.get(stream_id)
        if c is None:
            continue
        if kind == "intelligence.RedFlagRaised":
            if c.answered_at is None:  # raised while it waited: routing raised its priority then
                boost, skill = int(data.get("priority_boost") or 0), data.get("prefer_skill") or ""
                if t <= c.arrived:
                    c.flag_boost += boost
                    c.prefer_skill = c.prefer_skill or skill
                else:
                    c.flags.append((t, boost, skill))
        elif kind == "interactions.InteractionOffered" and c.answered_at is None:
            c.offered_at, c.agent = t, data["agent_id"]
        elif kind == "interactions.InteractionAccepted" and c.answered_at is None:
            c.answered_at, c.agent = t, data["agent_id"]
            c.answer_delay = max(0.0, t - (c.offered_at if c.offered_at is not None else t))
        elif kind == "interactions.InteractionEnded" and c.answered_at is not None and c.ended_at is None:
            c.ended_at, c.handle = t, max(0.0, t - c.answered_at)
        elif kind == "interactions.InteractionWrappedUp" and c.ended_at is not None and c.wrap is None:
            c.wrap = min(after_call, max(0.0, t - c.ended_at)) if c.channel == "voice" else 0.0
        elif kind == "interactions.InteractionAbandoned" and c.answered_at is None and c.abandoned_at is None:
            c.abandoned_at, c.offered_at, c.agent = t, None, None
    day = Day(start, end, sorted(contacts.values(), key=lambda c: (c.arrived, str(c.interaction_id))), {}, {},
              events=len(rows) + len(presence_rows))
    _fill_in(day, random.Random(seed), after_call)
    _presence(day, agent_streams, presence_rows, sec)
    return day


def _fill_in(day: Day, rnd: random.Random, after_call: float) -> None:
    """Work content for contacts never answered, and patience for those answered (module docstring)."""
    handled: dict[tuple[str, str], list[Contact]] = defaultdict(list)
    by_channel: dict[str, list[Contact]] = defaultdict(list)
    waits: dict[str, list[tuple[float, bool]]] = defaultdict(list)  # queue -> (wait, abandoned)
    for c in day.contacts:
        if c.handle is not None:
            handled[(c.queue, c.channel)].append(c)
            by_channel[c.channel].append(c)
        if c.abandoned_at is not None:
            c.patience = c.abandoned_at - c.arrived
            waits[c.queue].append((c.patience, True))
        elif c.answered_at is not None:
            waits[c.queue].append((c.answered_at - c.arrived, False))
    curves = {q: _patience_curve(obs) for q, obs in waits.items() if any(gave_up for _, gave_up in obs)}
    pooled = _patience_curve([o for obs in waits.values() for o in obs])
    for c in day.contacts:
        if c.handle is None:
            like = handled.get((c.queue, c.channel)) or by_channel.get(c.channel)
            model = rnd.choice(like) if like else None
            c.handle = model.handle if model else DEFAULT_HANDLE
            c.wrap = model.wrap if model and model.wrap is not None else 0.0
            if c.answer_delay is None:
                known = model.answer_delay if model else None
                c.answer_delay = known if known is not None else DEFAULT_ANSWER_DELAY
        if c.answer_delay is None:
            c.answer_delay = DEFAULT_ANSWER_DELAY
        if c.wrap is None:  # answered, not wrapped up in the data: live routing ends after-call work at the timeout
            c.wrap = after_call if c.channel == "voice" else 0.0
        if c.abandoned_at is None and c.answered_at is not None:
            c.patience = _draw_patience(curves.get(c.queue, pooled), c.answered_at - c.arrived, rnd)


def _patience_curve(observations: list[tuple[float, bool]]) -> tuple[list[float], list[float]]:
    """The Kaplan-Meier estimate of how long a queue's customers would wait before hanging up: abandonments
    are observed patience, answered contacts are censored at their wait (they would have waited at least
    that long). Returns the abandonment times and the share still waiting just after each (non-increasing)."""
    times, survival, share = [], [], 1.0
    at_risk = len(observations)
    observations = sorted(observations)
    i = 0
    while i < len(observations):
        t, gave_up, j = observations[i][0], 0, i
        while j < len(observations) and observations[j][0] == t:
            gave_up += observations[j][1]
            j += 1
        if gave_up:
            share *= 1 - gave_up / at_risk
            times.append(t)
            survival.append(share)
        at_risk -= j - i
        i = j
    return times, survival


def _draw_patience(curve: tuple[list[float], list[float]], waited: float, rnd: random.Random) -> float | None:
    """A patience drawn from `curve` given the customer waited `waited` without hanging up; None when the
    draw falls past the last abandonment observed (they would have waited for as long as it took)."""
    times, survival = curve
    k = bisect.bisect_right(times, waited)
    still = survival[k - 1] if k else 1.0
    target = still * rnd.random()
    # The first abandonment time after which fewer than `target` would still be waiting.
    lo, hi = k, len(times)
    while lo < hi:
        mid = (lo + hi) // 2
        if survival[mid] <= target:
            hi = mid
        else:
            lo = mid + 1
    return times[lo] if lo < len(times) else None


def _presence(day: Day, agent_streams: dict, rows: list, sec) -> None:
    """Each agent's presence as they set it (after-call work, and the return from it, left out)."""
    names = {stream: name for name, stream in agent_streams.items()}
    current: dict[str, str] = {}
    for stream_id, at, presence in rows:
        name = names.get(stream_id)
        if name is None or presence is None:
            continue
        t = sec(at)
        before = current.get(name, "offline")
        current[name] = presence
        if t < 0:
            if presence != domain.AFTER_CALL_WORK:
                day.initial[name] = presence if before != domain.AFTER_CALL_WORK or presence != domain.AVAILABLE \
                    else day.initial.get(name, presence)
            continue
        if presence == domain.AFTER_CALL_WORK:
            day.recorded_acw.setdefault(name, []).append((t, t))
            continue
        if before == domain.AFTER_CALL_WORK:
            spans = day.recorded_acw.get(name)
            if spans and spans[-1][0] == spans[-1][1]:
                spans[-1] = (spans[-1][0], t)
            if presence == domain.AVAILABLE:
                continue  # the end of after-call work: the simulation makes its own
        day.presence.setdefault(name, []).append((t, presence))
    for name in names.values():
        day.initial.setdefault(name, "offline")


# --- the policy ------------------------------------------------------------------------------------------


@dataclass
class QueueSetup:
    config: engine.QueueConfig
    sl_seconds: int = 20
    overflow_queue: str | None = None
    overflow_after: int | None = None


@dataclass
class Policy:
    """What routing decides with: queues (policies, overflow) and agents (skills, languages, capacity). `copies`:
    added agents who keep another agent's recorded presence."""

    queues: dict[str, QueueSetup]
    agents: dict[str, domain.AgentView]
    copies: dict[str, str] = field(default_factory=dict)


def recorded_policy() -> Policy:
    """The configuration as it is now: the queues' policies and the agents' skills, languages and capacity."""
    from routing.models import Agent, Queue

    queues = {}
    for q in Queue.objects.prefetch_related("skills"):
        queues[q.name] = QueueSetup(engine.QueueConfig.of(q.policy(), q.offer_timeout_seconds or 20),
                                    q.service_level_seconds, q.overflow_queue_id, q.overflow_after_seconds)
    agents = {}
    for a in Agent.objects.select_related("user").prefetch_related("skills"):
        name = a.user.get_username()
        agents[name] = domain.AgentView(
            agent_id=name, presence=domain.AVAILABLE, skills={s.skill_id: s.proficiency for s in a.skills.all()},
            languages=tuple(a.languages or ()), capacity=dict(a.capacity or {}), voice_with_others=a.voice_with_others)
    return Policy(queues, agents)


QUEUE_FIELDS = {"skills", "secondary", "language", "priority", "expansion", "vip_boost", "repeat_boost",
                "preferred_agent_hours", "tie_break", "overflow_queue", "overflow_after_seconds"}
AGENT_FIELDS = {"skills", "languages", "capacity", "voice_with_others", "copy_of"}


def candidate_policy(base: Policy, spec: dict) -> Policy:
    """`base` changed as `spec` says (docs/HISTORY.md, "What-if routing"): {"queues": {name: {field: value}},
    "agents": {name or "*": {field: value}}}. Unnamed queues and agents keep their configuration. Raises
    InvalidWhatIf naming the field (`policy.queues.billing.expansion`)."""
    if not isinstance(spec, dict):
        raise InvalidWhatIf("policy", "an object with `queues` and/or `agents`")
    unknown = set(spec) - {"queues", "agents"}
    if unknown:
        raise InvalidWhatIf(f"policy.{sorted(unknown)[0]}", "unknown: a policy has `queues` and `agents`")
    queues = dict(base.queues)
    for name, changes in _object(spec.get("queues", {}), "policy.queues").items():
        path = f"policy.queues.{name}"
        changes = _object(changes, path)
        bad = set(changes) - QUEUE_FIELDS
        if bad:
            raise InvalidWhatIf(f"{path}.{sorted(bad)[0]}",
                                f"unknown queue field; use {', '.join(sorted(QUEUE_FIELDS))}")
        setup = queues.get(name) or QueueSetup(engine.QueueConfig(domain.QueuePolicy(name=name)))
        policy, offer_timeout = setup.config.policy, setup.config.offer_timeout
        updates = {}
        for key in ("skills", "secondary"):
            if key in changes:
                updates[key] = _levels(changes[key], f"{path}.{key}")
        if "expansion" in changes:
            steps = changes["expansion"]
            if not isinstance(steps, list) or len(steps) > MAX_STEPS:
                raise InvalidWhatIf(f"{path}.expansion", f"a list of at most {MAX_STEPS} steps {{after_seconds, "
                                                         "min_proficiency_delta, admit_secondary}")
            if any(not isinstance(x, dict) or not isinstance(x.get("admit_secondary", False), bool) for x in steps):
                raise InvalidWhatIf(f"{path}.expansion", "each step is an object; admit_secondary is true or false")
            try:
                updates["expansion"] = tuple(domain.ExpansionStep(_int(s["after_seconds"]),
                                                                  _int(s.get("min_proficiency_delta", 0)),
                                                                  bool(s.get("admit_secondary", False)))
                                             for s in steps)
            except (KeyError, TypeError, ValueError, AttributeError):
                raise InvalidWhatIf(f"{path}.expansion", "each step is {after_seconds (whole seconds), "
                                                         "min_proficiency_delta, admit_secondary}") from None
        for key in ("priority", "vip_boost", "repeat_boost", "preferred_agent_hours"):
            if key in changes:
                updates[key] = _int(changes[key], f"{path}.{key}", low=None if key == "priority" else 0)
        for key in ("language", "tie_break"):
            if key in changes:
                if not isinstance(changes[key], str):
                    raise InvalidWhatIf(f"{path}.{key}", "a string")
                updates[key] = changes[key]
        policy = replace(policy, **updates)
        try:
            domain.validate_policy(policy)
        except domain.InvalidPolicy as exc:
            raise InvalidWhatIf(f"{path}.{exc.field}", str(exc)) from None
        overflow_queue, overflow_after = setup.overflow_queue, setup.overflow_after
        if "overflow_queue" in changes:
            overflow_queue = changes["overflow_queue"]
            if overflow_queue is not None and (not isinstance(overflow_queue, str) or overflow_queue == name):
                raise InvalidWhatIf(f"{path}.overflow_queue", "another queue's name, or null")
        if "overflow_after_seconds" in changes:
            value = changes["overflow_after_seconds"]
            overflow_after = None if value is None else _int(value, f"{path}.overflow_after_seconds", low=0)
        queues[name] = QueueSetup(engine.QueueConfig.of(policy, offer_timeout), setup.sl_seconds, overflow_queue,
                                  overflow_after)
    agents, copies = dict(base.agents), dict(base.copies)
    changes_all = _object(spec.get("agents", {}), "policy.agents")
    for name, changes in changes_all.items():
        path = f"policy.agents.{name}"
        changes = _object(changes, path)
        bad = set(changes) - AGENT_FIELDS
        if bad:
            raise InvalidWhatIf(f"{path}.{sorted(bad)[0]}",
                                f"unknown agent field; use {', '.join(sorted(AGENT_FIELDS))}")
        if name == "*":
            if "copy_of" in changes:
                raise InvalidWhatIf(f"{path}.copy_of", "name an agent to copy, not everyone")
            continue
        if name not in agents:
            if len(copies) >= MAX_ADDED_AGENTS:
                raise InvalidWhatIf(f"{path}.copy_of", f"at most {MAX_ADDED_AGENTS} added agents")
            source = changes.get("copy_of")
            if not isinstance(source, str) or source not in base.agents:
                raise InvalidWhatIf(f"{path}.copy_of", "an agent who is not configured needs `copy_of`: the "
                                                       "agent whose skills and recorded presence they take")
            agents[name] = replace(base.agents[source], agent_id=name)
            copies[name] = source
        elif "copy_of" in changes:
            raise InvalidWhatIf(f"{path}.copy_of", "only for an added agent (this one is configured)")
    for name in list(agents):
        for who in ("*", name):
            changes = changes_all.get(who)
            if changes:
                agents[name] = _agent_changed(agents[name], changes, f"policy.agents.{who}")
    return Policy(queues, agents, copies)


def _agent_changed(view: domain.AgentView, changes: dict, path: str) -> domain.AgentView:
    updates = {}
    if "skills" in changes:
        updates["skills"] = _levels(changes["skills"], f"{path}.skills")
    if "languages" in changes:
        langs = changes["languages"]
        if not isinstance(langs, list) or not all(isinstance(x, str) for x in langs):
            raise InvalidWhatIf(f"{path}.languages", "a list of language tags")
        updates["languages"] = tuple(langs)
    if "capacity" in changes:
        from interactions.domain import CHANNELS

        cap = _object(changes["capacity"], f"{path}.capacity")
        for ch, n in cap.items():
            if ch not in CHANNELS:
                raise InvalidWhatIf(f"{path}.capacity.{ch}", f"a channel: {', '.join(CHANNELS)}")
            _int(n, f"{path}.capacity.{ch}", low=0)
        updates["capacity"] = {**view.capacity, **cap}
    if "voice_with_others" in changes:
        if not isinstance(changes["voice_with_others"], bool):
            raise InvalidWhatIf(f"{path}.voice_with_others", "true or false")
        updates["voice_with_others"] = changes["voice_with_others"]
    return replace(view, **updates)


def _object(value, path: str) -> dict:
    if not isinstance(value, dict):
        raise InvalidWhatIf(path, "an object")
    return value


def _int(value, path: str = "", *, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -10**9 <= value <= 10**9:
        if not path:
            raise ValueError(value)
        raise InvalidWhatIf(path, "a whole number")
    if low is not None and value < low:
        raise InvalidWhatIf(path, f"{low} or more")
    return value


def _levels(value, path: str) -> dict[str, int]:
    levels = _object(value, path)
    for skill, level in levels.items():
        if _int(level, f"{path}.{skill}") < domain.MIN_PROFICIENCY or level > domain.MAX_PROFICIENCY:
            raise InvalidWhatIf(f"{path}.{skill}",
                                f"a proficiency of {domain.MIN_PROFICIENCY}-{domain.MAX_PROFICIENCY}")
    return dict(levels)


# --- the simulation --------------------------------------------------------------------------------------


class SimWork:
    """A contact waiting, offered or in hand: what routing.engine reads of routing.models.Work."""

    __slots__ = ("interaction_id", "customer_id", "queue", "channel", "enqueued_at", "enqueued", "priority",
                 "declined_by", "prefer_skill", "vip", "repeat", "flag_boost", "contact", "state", "agent", "key",
                 "offers")

    def __init__(self, contact: Contact, start: dt.datetime):
        self.contact, self.interaction_id, self.customer_id = contact, contact.interaction_id, contact.customer_id
        self.queue, self.channel = contact.queue, contact.channel
        self.enqueued = contact.arrived
        self.enqueued_at = start + dt.timedelta(seconds=contact.arrived)
        self.vip, self.repeat, self.flag_boost = contact.vip, contact.repeat, contact.flag_boost
        self.prefer_skill, self.declined_by = contact.prefer_skill, ()
        self.state, self.agent, self.priority, self.key, self.offers = "waiting", None, 0, (), 0

    def view(self, preferred_agent: str | None = None) -> domain.WaitingView:
        return domain.WaitingView(interaction_id=str(self.interaction_id), channel=self.channel, queue=self.queue,
                                  enqueued_at=self.enqueued_at, vip=self.vip, repeat=self.repeat,
                                  preferred_agent=preferred_agent, declined_by=self.declined_by,
                                  flag_boost=self.flag_boost, prefer_skill=self.prefer_skill)


class SimAgent:
    __slots__ = ("name", "free", "schedule", "acw_until", "offered", "occupied_since", "occupied", "handled",
                 "handle_seconds", "acw_seconds")

    def __init__(self, name: str, view: domain.AgentView):
        self.name, self.free = name, engine.FreeAgent(0, view, {})
        self.schedule, self.acw_until, self.offered = "offline", None, set()
        self.occupied_since, self.occupied = None, []
        self.handled, self.handle_seconds, self.acw_seconds = 0, 0.0, 0.0

    @property
    def busy(self) -> bool:
        return self.acw_until is not None or any(self.free.load.values())


@dataclass
class Outcome:
    """What happened to each contact (seconds after the start, by interaction id) and each agent's occupied
    spans; `passes`: dispatch passes run; `seconds`: wall time."""

    answered: dict = field(default_factory=dict)  # id -> (agent, seconds answered)
    abandoned: dict = field(default_factory=dict)  # id -> seconds abandoned
    handled: dict = field(default_factory=dict)  # agent -> (contacts answered, talk seconds, after-call seconds)
    occupied: dict = field(default_factory=dict)  # agent -> [(from, to)]
    passes: int = 0
    events: int = 0
    seconds: float = 0.0


class Simulation:
    """One replay of `day` through `policy` (module docstring). `run()` returns the Outcome."""

    def __init__(self, day: Day, policy: Policy, *, batch: int | None = None, pool_size: int | None = None):
        self.day, self.policy, self.start = day, policy, day.start
        self.batch = batch or settings.ROUTING_BATCH
        self.pool_size = pool_size or settings.ROUTING_POOL
        self.after_call = float(settings.ROUTING_AFTER_CALL_SECONDS)
        self.horizon = day.horizon
        self.queues = {name: q.config for name, q in policy.queues.items()}
        for c in day.contacts:  # work in a queue nobody configured: the default policy, as live
            if c.queue not in self.queues:
                self.queues[c.queue] = engine.QueueConfig(domain.QueuePolicy(name=c.queue))
        self.agents = {name: SimAgent(name, view) for name, view in policy.agents.items()}
        self.qualified = engine.Qualified(self.queues, {n: a.free for n, a in self.agents.items()})
        self.available: dict[str, engine.FreeAgent] = {}  # routing.engine's free agents: presence available
        self.waiting: dict[tuple[str, str], list[SimWork]] = defaultdict(list)
        self.n_waiting = 0
        self.servable: dict[tuple[str, str], bool] = {}
        self.last_resolver: dict = {}  # customer -> (agent, seconds): the preferred agent
        self.heap: list = []
        self.seq = 0
        self.out = Outcome()

    def _at(self, t: float, kind: int, item) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, kind, self.seq, item))

    def run(self) -> Outcome:
        started = time.perf_counter()
        for c in self.day.contacts:
            self._at(c.arrived, ARRIVE, c)
        for name, agent in self.agents.items():
            source = self.policy.copies.get(name, name)
            agent.schedule = self.day.initial.get(source, "offline")
            if agent.schedule == domain.AVAILABLE:
                self._available(agent, 0.0)
            for t, presence in self.day.presence.get(source, ()):
                self._at(t, PRESENCE, (agent, presence))
        handlers = {ARRIVE: self._arrive, PRESENCE: self._presence, END: self._end, ACW_END: self._acw_end,
                    ABANDON: self._abandon, ACCEPT: self._accept, WAKE: self._wake, OVERFLOW: self._overflow,
                    FLAG: self._flag}
        heap, now = self.heap, 0.0
        while heap:
            now = heap[0][0]
            changed = False
            while heap and heap[0][0] == now:
                _, kind, _, item = heapq.heappop(heap)
                self.out.events += 1
                changed = handlers[kind](item, now) or changed
            if changed and self.n_waiting and self.available:
                self._dispatch(now)
        for agent in self.agents.values():
            if agent.occupied_since is not None:
                agent.occupied.append((agent.occupied_since, max(now, agent.occupied_since)))
            self.out.occupied[agent.name] = agent.occupied
            self.out.handled[agent.name] = (agent.handled, agent.handle_seconds, agent.acw_seconds)
        self.out.seconds = time.perf_counter() - started
        return self.out

    # --- routing: the live dispatcher's pass, over memory ---

    def _dispatch(self, now: float) -> None:
        """routing.services.dispatch_all over the in-memory state: passes while a pass fills a whole batch."""
        at = self.start + dt.timedelta(seconds=now)
        while True:
            groups = {key: len(works) for key, works in self.waiting.items() if works and self._servable(key)}
            limits = engine.group_limits(groups, self.available, None, self.qualified, self.batch)
            if not limits:
                return
            works = []
            for g in limits:
                taken = self.waiting[(g.queue, g.channel)]
                if g.agents is not None:  # work every free qualified agent declined is left out, as live
                    names = set(g.agents)
                    taken = [w for w in taken if not w.declined_by or not names <= set(w.declined_by)]
                works.extend(taken[:g.limit])
            works.sort(key=engine.urgency)
            works = works[:self.batch]
            self.out.passes += 1
            decisions, chosen = engine.decide_pass(self.queues, self.qualified, self.available, works,
                                                   self._preferred(works, now), at, pool_size=self.pool_size)
            for work, decision in chosen:
                self._offer(work, self.agents[decision.agent_id], now)
            if not chosen or len(decisions) < self.batch:
                return

    def _servable(self, key: tuple[str, str]) -> bool:
        """Whether anyone who could ever qualify for the queue takes its channel at all. Work nobody can take
        (email in a policy where nobody has an email slot) waits for ever; leaving its group out of the pass
        changes no decision (routing.engine.group_limits finds no slot for it) and spares a walk down every
        qualified agent at each of the day's passes."""
        found = self.servable.get(key)
        if found is None:
            queue, channel = key
            found = self.servable[key] = any(self.agents[a].free.capacity.get(channel, 0) > 0
                                             for a in self.qualified.relaxed(queue))
        return found

    def _preferred(self, works: list[SimWork], now: float) -> dict:
        out = {}
        for w in works:
            hours = self.queues[w.queue].policy.preferred_agent_hours
            found = self.last_resolver.get(w.customer_id) if hours else None
            if found and found[1] >= now - hours * 3600:
                out[w.interaction_id] = found[0]
        return out

    def _offer(self, work: SimWork, agent: SimAgent, now: float) -> None:
        """decide_pass took the slot on agent.free; the contact leaves the queue."""
        self._unqueue(work)
        work.state, work.agent = "offered", agent.name
        work.offers += 1
        agent.offered.add(work)
        self._occupancy(agent, now)
        self._at(now + work.contact.answer_delay, ACCEPT, (work, work.offers))  # this offer's, not a later one's

    # --- the queue ---

    def _enqueue(self, work: SimWork, now: float, *, timers: bool = True) -> None:
        q = self.queues[work.queue]
        work.priority = domain.priority(q.policy, work)
        work.key = (-work.priority, work.enqueued, str(work.interaction_id))
        bisect.insort(self.waiting[(work.queue, work.channel)], work, key=lambda w: w.key)
        work.state = "waiting"
        self.n_waiting += 1
        if not timers:
            return
        for step in q.policy.expansion:  # criteria relax with the wait: try again then
            if work.enqueued + step.after_seconds > now:
                self._at(work.enqueued + step.after_seconds, WAKE, work)
        setup = self.policy.queues.get(work.queue)
        if setup and setup.overflow_queue and setup.overflow_after is not None:
            # Live, the sweep moves it (every ROUTING_SWEEP_SECONDS): a queue it overflowed into that overflows
            # again moves it at the next sweep, not at once (two queues overflowing into each other take turns).
            due = work.enqueued + setup.overflow_after
            self._at(due if due > now else now + settings.ROUTING_SWEEP_SECONDS, OVERFLOW, (work, work.queue))

    def _unqueue(self, work: SimWork) -> None:
        lst = self.waiting[(work.queue, work.channel)]
        i = bisect.bisect_left(lst, work.key, key=lambda w: w.key)
        if i < len(lst) and lst[i] is work:
            del lst[i]
        else:
            lst.remove(work)
        self.n_waiting -= 1

    # --- event handlers: True when routing may now decide something new ---

    def _arrive(self, c: Contact, now: float) -> bool:
        work = SimWork(c, self.start)
        self._enqueue(work, now)
        if c.patience is not None:
            self._at(c.arrived + c.patience, ABANDON, work)
        for t, boost, skill in c.flags:
            self._at(t, FLAG, (work, boost, skill))
        return True

    def _flag(self, item, now: float) -> bool:
        """A red flag raised while it waits: its priority goes up from now (live: routing.services._flag_boost)."""
        work, boost, skill = item
        work.flag_boost += boost
        work.prefer_skill = skill or work.prefer_skill
        if work.state != "waiting":
            return False
        self._unqueue(work)
        self._enqueue(work, now, timers=False)
        return True

    def _wake(self, work: SimWork, now: float) -> bool:
        return work.state == "waiting"

    def _overflow(self, item, now: float) -> bool:
        work, queue = item
        if work.state != "waiting" or work.queue != queue:
            return False
        self._unqueue(work)
        work.queue, work.declined_by = self.policy.queues[queue].overflow_queue, ()
        self.queues.setdefault(work.queue, engine.QueueConfig(domain.QueuePolicy(name=work.queue)))
        self._enqueue(work, now)  # the customer's wait keeps counting (enqueued stays)
        return True

    def _abandon(self, work: SimWork, now: float) -> bool:
        if work.state == "waiting":
            self._unqueue(work)
        elif work.state == "offered":
            agent = self.agents[work.agent]
            agent.offered.discard(work)
            engine.take({agent.name: agent.free}, agent.name, work.channel, -1)
            self._occupancy(agent, now)
        else:
            return False
        freed = work.state == "offered"
        work.state = "abandoned"
        self.out.abandoned[work.interaction_id] = now
        return freed

    def _accept(self, item, now: float) -> bool:
        work, offer = item
        if work.state != "offered" or work.offers != offer:
            return False
        agent = self.agents[work.agent]
        agent.offered.discard(work)
        work.state = "active"
        self.out.answered[work.interaction_id] = (agent.name, now)
        agent.handled += 1
        self._at(now + work.contact.handle, END, work)
        return False

    def _end(self, work: SimWork, now: float) -> bool:
        agent = self.agents[work.agent]
        work.state = "ended"
        if now < self.horizon:  # handle time counts in the window it ends in, as the KPIs count it
            agent.handle_seconds += work.contact.handle
        engine.take({agent.name: agent.free}, agent.name, work.channel, -1)
        self.last_resolver[work.customer_id] = (agent.name, now)
        if work.channel == "voice" and agent.name in self.available and agent.acw_until is None:
            # After a call: after-call work keeps the agent from the next one (live: routing.services._after_call).
            agent.acw_until = now + min(work.contact.wrap, self.after_call)
            if now < self.horizon:
                agent.acw_seconds += agent.acw_until - now
            del self.available[agent.name]
            self._at(agent.acw_until, ACW_END, agent)
        self._occupancy(agent, now)
        return True

    def _acw_end(self, agent: SimAgent, now: float) -> bool:
        if agent.acw_until != now:
            return False
        agent.acw_until = None
        if agent.schedule == domain.AVAILABLE:
            self._available(agent, now)
        self._occupancy(agent, now)
        return agent.name in self.available

    def _presence(self, item, now: float) -> bool:
        agent, presence = item
        agent.schedule = presence
        if agent.acw_until is not None:  # after-call work first; then this presence
            return presence != domain.AVAILABLE and self._decline_held(agent, now)
        if presence == domain.AVAILABLE:
            if agent.name in self.available:
                return False
            self._available(agent, now)
            return True
        self.available.pop(agent.name, None)
        return self._decline_held(agent, now)

    def _decline_held(self, agent: SimAgent, now: float) -> bool:
        """Leaving `available` declines the offers held (live: agent_presence_set): back in the queue."""
        declined = bool(agent.offered)
        for work in sorted(agent.offered, key=lambda w: w.key):
            agent.offered.discard(work)
            engine.take({agent.name: agent.free}, agent.name, work.channel, -1)
            work.declined_by = (*work.declined_by, agent.name)
            self._enqueue(work, now, timers=False)
        self._occupancy(agent, now)
        return declined

    def _available(self, agent: SimAgent, now: float) -> None:
        if not any(agent.free.load.values()):
            agent.free.idle_since = self.start + dt.timedelta(seconds=now)
        self.available[agent.name] = agent.free

    def _occupancy(self, agent: SimAgent, now: float) -> None:
        busy = agent.busy  # offers held count in the load
        if busy and agent.occupied_since is None:
            if agent.occupied and agent.occupied[-1][1] == now:  # free for no time at all: one span
                agent.occupied_since = agent.occupied.pop()[0]
            else:
                agent.occupied_since = now
        elif not busy and agent.occupied_since is not None:
            agent.occupied.append((agent.occupied_since, now))
            agent.occupied_since = None


# --- measuring: one definition for what happened and for each simulation ---------------------------------


def recorded_outcome(day: Day) -> Outcome:
    """What actually happened to the day's contacts, in the simulation's terms."""
    out = Outcome()
    spans: dict[str, list] = defaultdict(list)
    handled: dict[str, list] = defaultdict(lambda: [0, 0.0, 0.0])
    for c in day.contacts:
        if c.answered_at is not None:
            out.answered[c.interaction_id] = (c.agent, c.answered_at)
            h = handled[c.agent]
            h[0] += 1
            if c.ended_at is not None and c.ended_at < day.horizon:
                h[1] += c.handle
            begin = c.offered_at if c.offered_at is not None else c.answered_at
            spans[c.agent].append((begin, c.ended_at if c.ended_at is not None else day.horizon))
        elif c.abandoned_at is not None:
            out.abandoned[c.interaction_id] = c.abandoned_at
    for name, acw in day.recorded_acw.items():
        spans[name].extend((a, b if b > a else a) for a, b in acw)
        handled[name][2] += sum(max(0.0, b - a) for a, b in acw if a < day.horizon)
    out.occupied = dict(spans)
    out.handled = {name: tuple(h) for name, h in handled.items()}
    return out


def _union_seconds(spans: list[tuple[float, float]], lo: float, hi: float) -> float:
    total, reach = 0.0, lo
    for a, b in sorted(spans):
        a, b = max(a, reach), min(b, hi)
        if b > a:
            total += b - a
            reach = b
    return total


def _staffed_spans(day: Day, source: str, horizon: float) -> list[tuple[float, float]]:
    spans, state, since = [], day.initial.get(source, "offline"), 0.0
    for t, presence in day.presence.get(source, ()):
        if state in STAFFED and t > since:
            spans.append((since, t))
        state, since = presence, t
    if state in STAFFED:
        spans.append((since, max(horizon, since)))
    return spans


def measure(day: Day, policy: Policy, outcome: Outcome) -> dict:
    """Service level, ASA, abandonment, occupancy and per-agent load of `outcome`, by docs/KPIS.md's rules
    with two differences that suit a replay: a contact counts in the period it arrived in (not when it was
    answered), and in the queue it first entered, against that queue's threshold (an overflow does not move
    it). Service level and abandonment count contacts answered or abandoned after at least
    KPI_SHORT_ABANDON_SECONDS. Occupancy: handle time (talk from acceptance to end, transfers included, and
    after-call work) of the contacts ending in the window, credited to the agent who answered, over the time
    staffed (available or busy as the agent set it, or with work in hand) within the window; above 1 when an
    agent handles several chats at once. `occupied_seconds`: the time with at least one contact in hand or
    in after-call work."""
    short = float(settings.KPI_SHORT_ABANDON_SECONDS)
    horizon = day.horizon
    queues: dict[str, dict] = {}
    for c in day.contacts:
        if not 0 <= c.arrived < horizon:
            continue
        q = queues.setdefault(c.queue, {"queue": c.queue, "arrived": 0, "answered": 0, "answered_in_sl": 0,
                                        "abandoned": 0, "short_abandons": 0, "wait_seconds": 0.0})
        q["arrived"] += 1
        setup = policy.queues.get(c.queue)
        threshold = setup.sl_seconds if setup else settings.KPI_DEFAULT_SL_SECONDS
        answered = outcome.answered.get(c.interaction_id)
        if answered is not None:
            wait = answered[1] - c.arrived
            q["answered"] += 1
            q["wait_seconds"] += wait
            q["answered_in_sl"] += wait <= threshold
        elif c.interaction_id in outcome.abandoned:
            if outcome.abandoned[c.interaction_id] - c.arrived >= short:
                q["abandoned"] += 1
            else:
                q["short_abandons"] += 1
    agents = []
    for name in sorted(set(policy.agents) | set(outcome.occupied)):
        staffed = _staffed_spans(day, policy.copies.get(name, name), horizon)
        occupied = outcome.occupied.get(name, [])
        handled, talk, acw = outcome.handled.get(name, (0, 0.0, 0.0))
        row = {"agent_id": name, "handled": handled, "handle_seconds": round(talk + acw, 1),
               "occupied_seconds": round(_union_seconds(occupied, 0.0, horizon), 1),
               "staffed_seconds": round(_union_seconds(staffed + occupied, 0.0, horizon), 1)}
        if row["staffed_seconds"] or handled:
            agents.append(_agent_ratios(row))
    for q in queues.values():
        q["unanswered"] = q["arrived"] - q["answered"] - q["abandoned"] - q["short_abandons"]
    rows = [_queue_ratios(q) for _, q in sorted(queues.items())]
    return {"totals": totals(rows, agents), "queues": rows, "agents": agents}


def _queue_ratios(q: dict) -> dict:
    offered = q["answered"] + q["abandoned"]
    return {**q, "wait_seconds": round(q["wait_seconds"], 1),
            "service_level": round(q["answered_in_sl"] / offered, 4) if offered else None,
            "asa_seconds": round(q["wait_seconds"] / q["answered"], 1) if q["answered"] else None,
            "abandonment_rate": round(q["abandoned"] / offered, 4) if offered else None}


def _agent_ratios(row: dict) -> dict:
    return {**row, "occupancy": round(row["handle_seconds"] / row["staffed_seconds"], 4)
            if row["staffed_seconds"] else None}


def totals(queues: list[dict], agents: list[dict]) -> dict:
    """The whole of some queues and agents, added up from their rows (a scoped reader gets the totals of the
    rows they may see)."""
    q = {k: sum(r[k] for r in queues) for k in ("arrived", "answered", "answered_in_sl", "abandoned",
                                                 "short_abandons", "unanswered", "wait_seconds")}
    out = _queue_ratios({"queue": None, **q})
    del out["queue"]
    occupied = sum(a["handle_seconds"] for a in agents)
    staffed = sum(a["staffed_seconds"] for a in agents)
    out["occupancy"] = round(occupied / staffed, 4) if staffed else None
    out["agents_staffed"] = sum(1 for a in agents if a["staffed_seconds"])
    return out


# --- the report ------------------------------------------------------------------------------------------

# How close a replay of the recorded policy must come to what happened (tests/routing/test_whatif.py shows it
# on a simulated day; docs/HISTORY.md explains where the difference comes from).
TOLERANCE = {"service_level": 0.05, "abandonment_rate": 0.03, "asa_seconds": 5.0, "occupancy": 0.05}
COMPARED = ("service_level", "asa_seconds", "abandonment_rate", "occupancy", "answered", "abandoned")


def _difference(a: dict, b: dict) -> dict:
    return {k: (None if a.get(k) is None or b.get(k) is None else round(b[k] - a[k], 4)) for k in COMPARED}


def fidelity(recorded: dict, replayed: dict) -> dict:
    """The recorded policy's replay against what happened: each difference and whether it is within TOLERANCE
    (ASA: 5 s or 20 % of the recorded ASA, whichever is more)."""
    diff = _difference(recorded, replayed)
    within = {}
    for k, tol in TOLERANCE.items():
        if k == "asa_seconds" and recorded.get(k):
            tol = max(tol, 0.2 * recorded[k])
        within[k] = diff[k] is None or abs(diff[k]) <= tol
    return {"difference": diff, "tolerance": TOLERANCE, "within_tolerance": within}


def what_if(start: dt.datetime, end: dt.datetime, spec: dict | None = None, *, seed: int = 0) -> dict:
    """The recorded period [start, end) as it happened, replayed through the recorded policy, and replayed
    through the candidate `spec`: side by side, with the candidate's difference and the replay's fidelity."""
    base = recorded_policy()
    candidate = candidate_policy(base, {} if spec is None else spec)  # refused before anything is read
    loaded = time.perf_counter()
    day = load_day(start, end, seed=seed)
    loaded = time.perf_counter() - loaded
    replay = Simulation(day, base).run()
    tried = Simulation(day, candidate).run()
    recorded = measure(day, base, recorded_outcome(day))
    replayed, proposed = measure(day, base, replay), measure(day, candidate, tried)
    simulated = replay.events + tried.events
    seconds = replay.seconds + tried.seconds
    return {
        "from": start.isoformat(), "to": end.isoformat(), "seed": seed, "policy": spec or {},
        "contacts": sum(1 for c in day.contacts if 0 <= c.arrived < day.horizon),
        "agents": len(candidate.agents),
        "recorded": recorded, "recorded_policy": replayed, "candidate": proposed,
        "difference": _difference(replayed["totals"], proposed["totals"]),
        "fidelity": fidelity(recorded["totals"], replayed["totals"]),
        "performance": {"events_read": day.events, "load_seconds": round(loaded, 3),
                        "simulated_events": simulated, "dispatch_passes": replay.passes + tried.passes,
                        "simulation_seconds": round(seconds, 3),
                        "events_per_second": round(simulated / seconds) if seconds else None},
    }


# --- simulations on request (the API and `simulate_routing --save`) ---------------------------------------

MAX_WINDOW = dt.timedelta(days=31)


def check_window(start: dt.datetime, end: dt.datetime, now: dt.datetime) -> None:
    if end <= start:
        raise InvalidWhatIf("to", "must be after `from`")
    if end > now:
        raise InvalidWhatIf("to", "must not be in the future: only recorded traffic can be replayed")
    if end - start > MAX_WINDOW:
        raise InvalidWhatIf("to", f"a window of at most {MAX_WINDOW.days} days (run several for longer)")


def simulation_request(*, requested_by: str, start: dt.datetime, end: dt.datetime, policy: dict | None,
                       seed: int = 0):
    """Check the window and the policy (400 naming the field), record the request and queue its run."""
    from django.db import transaction
    from django.utils import timezone

    from routing.models import Simulation

    check_window(start, end, timezone.now())
    policy = {} if policy is None else policy
    candidate_policy(recorded_policy(), policy)  # refused now, not in the worker
    with transaction.atomic():
        simulation = Simulation.objects.create(requested_by=requested_by, start=start, end=end, policy=policy,
                                               seed=seed)
        transaction.on_commit(lambda: _send(simulation.id))
    return simulation


def _send(simulation_id) -> None:
    """Queue the run; Redis away: the simulation is marked failed at once (ask again), not left queued."""
    from routing import tasks
    from routing.models import Simulation

    try:
        tasks.simulate.delay(str(simulation_id))
    except Exception:
        log.warning("could not queue what-if simulation %s", simulation_id, exc_info=True)
        Simulation.objects.filter(id=simulation_id).update(
            status=Simulation.FAILED, error="could not queue the run (the task queue is unavailable): request it again")


def simulation_run(simulation_id: uuid.UUID) -> str:
    """Run a requested simulation once (a redelivered task finds it done); its status at the end."""
    from django.db import transaction
    from django.utils import timezone

    from routing.models import Simulation

    with transaction.atomic():
        sim = Simulation.objects.select_for_update().filter(id=simulation_id).first()
        if sim is None or sim.status in (Simulation.DONE, Simulation.FAILED):
            return sim.status if sim else "missing"
        if sim.status == Simulation.RUNNING:
            # Delivered again after its worker died mid-run (acks_late): do not run it again, it may be what
            # killed the worker (a period too big for its memory).
            sim.status, sim.finished_at = Simulation.FAILED, timezone.now()
            sim.error = "the worker stopped during the run (killed, or out of memory): try a shorter period"
            sim.save(update_fields=["status", "error", "finished_at"])
            return sim.status
        sim.status = Simulation.RUNNING
        sim.save(update_fields=["status"])
    try:
        result = what_if(sim.start, sim.end, sim.policy, seed=sim.seed)
    except InvalidWhatIf as exc:  # the configuration changed since the request
        sim.status, sim.error = Simulation.FAILED, f"{exc.field}: {exc}"
    except Exception as exc:  # recorded for the requester, and raised for the worker's log
        Simulation.objects.filter(id=sim.id).update(status=Simulation.FAILED, error=f"{type(exc).__name__}: {exc}",
                                                    finished_at=timezone.now())
        raise
    else:
        sim.status, sim.result = Simulation.DONE, result
    sim.finished_at = timezone.now()
    sim.save(update_fields=["status", "result", "error", "finished_at"])
    return sim.status


def scoped(result: dict, queues: list[str] | None, agents: list[str] | None) -> dict:
    """`result` as a reader of these queues and agents sees it (None: all): the other rows left out, and the
    totals, differences and fidelity those rows add up to."""
    if result is None or (queues is None and agents is None):
        return result
    out = dict(result)
    for key in ("recorded", "recorded_policy", "candidate"):
        part = result[key]
        rows = [q for q in part["queues"] if queues is None or q["queue"] in queues]
        people = [a for a in part["agents"] if agents is None or a["agent_id"] in agents]
        out[key] = {"totals": totals(rows, people), "queues": rows, "agents": people}
    out["difference"] = _difference(out["recorded_policy"]["totals"], out["candidate"]["totals"])
    out["fidelity"] = fidelity(out["recorded"]["totals"], out["recorded_policy"]["totals"])
    out["contacts"] = out["recorded"]["totals"]["arrived"]
    out["agents"] = len(out["candidate"]["agents"])
    out["performance"] = None  # the whole center's volume
    out["scoped"] = True
    return out
