"""Routing decisions, in pure Python: who may take a waiting interaction, and who should.

No Django here: the same functions route live work (routing.services) and
can replay recorded traffic. Inputs are plain snapshots (AgentView,
WaitingView, QueuePolicy); the output is a Decision that records every
candidate considered and why, so "why did this go to that agent?" has an
answer from the event that carries it.

The rules, in order:
1. Eligible agents are available (presence), have a free slot on the
   channel (capacity per channel; a voice call excludes other work and other
   work excludes a call unless the agent is configured for both), speak the
   queue's language, have not declined this interaction, and meet the skill
   requirement of the current expansion step.
2. Expansion (a bullseye): the longer the interaction waits, the further the
   policy relaxes. A step lowers the minimum proficiency and/or admits the
   queue's secondary skills; the step in force is the last whose
   `after_seconds` has passed.
3. Among the eligible, the best score wins: the sum of the agent's
   proficiency in the queue's skills (secondary skills count half), plus a
   bonus for the customer's preferred agent (the one who last helped them).
   Ties go to the agent idle longest, or with the lowest occupancy, as the
   queue says.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

PRESENCES = ("offline", "available", "busy", "after_call_work", "break")
AVAILABLE = "available"
AFTER_CALL_WORK = "after_call_work"
TIE_BREAKS = ("longest_idle", "lowest_occupancy")
DEFAULT_CAPACITY = {"voice": 1, "chat": 3, "email": 2, "social": 2, "sms": 3}
PREFERRED_AGENT_BONUS = 5.0
PREFER_SKILL_BONUS = 2.0  # per level of a skill a red flag asks for (intelligence.FlagPolicy.prefer_skill)
MIN_PROFICIENCY, MAX_PROFICIENCY = 1, 5


class RoutingError(Exception):
    """A routing command refused (HTTP 409)."""

    code = "routing_refused"


class InvalidPolicy(ValueError):
    """A queue policy that cannot be used (named field and problem)."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name


@dataclass(frozen=True)
class ExpansionStep:
    after_seconds: int
    min_proficiency_delta: int = 0  # e.g. -1: accept one level lower
    admit_secondary: bool = False


@dataclass(frozen=True)
class QueuePolicy:
    name: str
    skills: dict[str, int] = field(default_factory=dict)  # required skill -> minimum proficiency
    secondary: dict[str, int] = field(default_factory=dict)  # admitted by an expansion step
    language: str = ""
    priority: int = 0
    expansion: tuple[ExpansionStep, ...] = ()
    vip_boost: int = 0
    repeat_boost: int = 0
    preferred_agent_hours: int = 0
    tie_break: str = "longest_idle"


@dataclass(frozen=True)
class AgentView:
    agent_id: str  # the user name, as on interactions
    presence: str
    skills: dict[str, int]
    languages: tuple[str, ...] = ()
    capacity: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_CAPACITY))
    load: dict[str, int] = field(default_factory=dict)  # channel -> interactions offered or assigned
    voice_with_others: bool = False
    idle_since: dt.datetime | None = None


@dataclass(frozen=True)
class WaitingView:
    interaction_id: str
    channel: str
    queue: str
    enqueued_at: dt.datetime
    vip: bool = False
    repeat: bool = False
    preferred_agent: str | None = None  # who last helped this customer, within the queue's window
    declined_by: tuple[str, ...] = ()
    flag_boost: int = 0  # what red flags on it add (intelligence.FlagPolicy)
    prefer_skill: str = ""  # a skill red flags on it ask for: agents who have it score more


@dataclass(frozen=True)
class Candidate:
    agent_id: str
    eligible: bool
    score: float
    reasons: tuple[str, ...]  # why not, or what scored

    def as_dict(self) -> dict:
        return {"agent_id": self.agent_id, "eligible": self.eligible, "score": self.score,
                "reasons": list(self.reasons)}


@dataclass(frozen=True)
class Decision:
    agent_id: str | None
    step: int  # index of the expansion step in force (0: none yet)
    waited_seconds: float
    candidates: tuple[Candidate, ...]
    qualified: int | None = None  # agents who met the skills and language (live routing scores the best of them)

    def explanation(self, limit: int = 10) -> dict:
        """What the routing event records: the step, and the best candidates first (eligible ones first).

        `considered` counts the agents scored. Live routing (routing.services)
        scores the best-ranked free agents of those who qualify, ties
        included; it adds how many `qualified` and how many were `available`.
        """
        ranked = sorted(self.candidates, key=lambda c: (not c.eligible, -c.score, c.agent_id))
        out = {"step": self.step, "waited_seconds": round(self.waited_seconds, 3),
               "considered": len(self.candidates), "candidates": [c.as_dict() for c in ranked[:limit]]}
        if self.qualified is not None:
            out["qualified"] = self.qualified
        return out


def validate_policy(policy: QueuePolicy) -> None:
    """Refuse a policy routing cannot use; the admin and the API show the message under the field."""
    for name, level in {**policy.skills, **policy.secondary}.items():
        if not MIN_PROFICIENCY <= level <= MAX_PROFICIENCY:
            raise InvalidPolicy("skills", f"minimum proficiency for {name!r} must be 1-5, not {level}")
    overlap = set(policy.skills) & set(policy.secondary)
    if overlap:
        raise InvalidPolicy("skills", f"a skill cannot be both required and secondary: {', '.join(sorted(overlap))}")
    last = -1
    for i, step in enumerate(policy.expansion):
        if step.after_seconds <= last:
            raise InvalidPolicy("expansion", f"step {i + 1}: after_seconds must grow from step to step")
        if step.min_proficiency_delta > 0:
            raise InvalidPolicy("expansion", f"step {i + 1}: min_proficiency_delta relaxes, so it is 0 or negative")
        last = step.after_seconds
    if policy.tie_break not in TIE_BREAKS:
        raise InvalidPolicy("tie_break", f"tie_break must be one of {', '.join(TIE_BREAKS)}")
    if policy.vip_boost < 0 or policy.repeat_boost < 0 or policy.preferred_agent_hours < 0:
        raise InvalidPolicy("priority", "boosts and windows are 0 or more")


def step_in_force(policy: QueuePolicy, waited_seconds: float) -> tuple[int, int, bool]:
    """(step number, proficiency delta, secondary admitted) after waiting this long. Step 0 is the start."""
    number, delta, secondary = 0, 0, False
    for i, step in enumerate(policy.expansion, start=1):
        if waited_seconds >= step.after_seconds:
            number, delta, secondary = i, step.min_proficiency_delta, step.admit_secondary or secondary
    return number, delta, secondary


def priority(policy: QueuePolicy, work: WaitingView) -> int:
    """The interaction's routing priority in its queue (higher goes first)."""
    return (policy.priority + (policy.vip_boost if work.vip else 0) + (policy.repeat_boost if work.repeat else 0)
            + work.flag_boost)


def has_room(agent: AgentView, channel: str) -> tuple[bool, str]:
    """A free slot on the channel, with the voice rule. Returns (ok, why not)."""
    load = {ch: n for ch, n in agent.load.items() if n > 0}
    if load.get(channel, 0) >= agent.capacity.get(channel, 0):
        return False, f"no free {channel} slot ({load.get(channel, 0)}/{agent.capacity.get(channel, 0)})"
    if not agent.voice_with_others:
        if channel == "voice" and any(ch != "voice" for ch in load):
            return False, "busy on other channels (a call needs the agent free)"
        if channel != "voice" and load.get("voice"):
            return False, "on a call"
    return True, ""


def evaluate(policy: QueuePolicy, work: WaitingView, agent: AgentView, *, step: tuple[int, int, bool]) -> Candidate:
    """One agent against one waiting interaction under the step in force."""
    if agent.presence != AVAILABLE:
        return Candidate(agent.agent_id, False, 0.0, (f"presence {agent.presence}",))
    if agent.agent_id in work.declined_by:
        return Candidate(agent.agent_id, False, 0.0, ("declined this interaction",))
    ok, why = has_room(agent, work.channel)
    if not ok:
        return Candidate(agent.agent_id, False, 0.0, (why,))
    candidate = qualify(policy, agent, step=step)
    if not candidate.eligible:
        return candidate
    level = agent.skills.get(work.prefer_skill, 0) if work.prefer_skill else 0
    if level:
        candidate = Candidate(agent.agent_id, True, candidate.score + PREFER_SKILL_BONUS * level,
                              (*candidate.reasons, f"{work.prefer_skill} {level} (red flag)"))
    if work.preferred_agent == agent.agent_id:
        return Candidate(agent.agent_id, True, candidate.score + PREFERRED_AGENT_BONUS,
                         (*candidate.reasons, "preferred agent"))
    return candidate


def qualify(policy: QueuePolicy, agent: AgentView, *, step: tuple[int, int, bool]) -> Candidate:
    """The part of `evaluate` that depends on the agent's skills and languages only: qualified, and the score.

    Routing ranks agents for a queue with it once per pass, then evaluates
    the best few against each interaction.
    """
    _, delta, secondary_admitted = step
    if policy.language and policy.language not in agent.languages:
        return Candidate(agent.agent_id, False, 0.0, (f"does not speak {policy.language}",))
    score, reasons = 0.0, []
    for skill, minimum in policy.skills.items():
        needed = max(MIN_PROFICIENCY, minimum + delta)
        have = agent.skills.get(skill, 0)
        if have < needed:
            return Candidate(agent.agent_id, False, 0.0, (f"{skill} {have} < {needed}",))
        score += have
        reasons.append(f"{skill} {have}")
    if secondary_admitted:
        for skill, minimum in policy.secondary.items():
            have = agent.skills.get(skill, 0)
            if have >= max(MIN_PROFICIENCY, minimum + delta):
                score += have / 2
                reasons.append(f"secondary {skill} {have}")
    return Candidate(agent.agent_id, True, score, tuple(reasons) or ("no skill required",))


def _tie_key(policy: QueuePolicy, agent: AgentView) -> tuple:
    far_past = dt.datetime.min.replace(tzinfo=dt.UTC)
    idle = agent.idle_since or far_past
    if policy.tie_break == "lowest_occupancy":
        used = sum(agent.load.values())
        room = sum(agent.capacity.values()) or 1
        return (used / room, idle, agent.agent_id)
    return (idle, agent.agent_id)


def decide_route(policy: QueuePolicy, work: WaitingView, agents: list[AgentView], *, now: dt.datetime) -> Decision:
    """The best agent for one waiting interaction, or None, with every candidate and why."""
    waited = max(0.0, (now - work.enqueued_at).total_seconds())
    step = step_in_force(policy, waited)
    candidates = [evaluate(policy, work, agent, step=step) for agent in agents]
    by_id = {a.agent_id: a for a in agents}
    eligible = [c for c in candidates if c.eligible]
    chosen = None
    if eligible:
        best = max(c.score for c in eligible)
        top = [c for c in eligible if c.score == best]
        chosen = min(top, key=lambda c: _tie_key(policy, by_id[c.agent_id])).agent_id
    return Decision(chosen, step[0], waited, tuple(candidates))


def is_open(hours: dict, now: dt.datetime) -> bool:
    """Within business hours? `hours`: {"tz": "Europe/Berlin", "from": "08:00", "to": "18:00", "days": [1, ..., 7]}
    (ISO weekdays, default Monday to Sunday); {} is always open. A "to" before "from" spans midnight."""
    if not hours:
        return True
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo(hours.get("tz", "UTC")))
    if local.isoweekday() not in hours.get("days", range(1, 8)):
        return False
    start, end = dt.time.fromisoformat(hours["from"]), dt.time.fromisoformat(hours["to"])
    t = local.time()
    return start <= t < end if start <= end else (t >= start or t < end)


def validate_hours(hours: dict) -> None:
    if not hours:
        return
    if not isinstance(hours, dict) or not {"from", "to"} <= set(hours):
        raise InvalidPolicy("business_hours", 'give {"tz": ..., "from": "HH:MM", "to": "HH:MM"} or {} for always')
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(hours.get("tz", "UTC"))
        dt.time.fromisoformat(hours["from"])
        dt.time.fromisoformat(hours["to"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidPolicy("business_hours", f"business hours: {exc}") from None
    days = hours.get("days", [1])
    if not isinstance(days, list) or not all(isinstance(d, int) and 1 <= d <= 7 for d in days):
        raise InvalidPolicy("business_hours", "days are ISO weekdays, 1 (Monday) to 7 (Sunday)")


def order_waiting(policy_of: dict[str, QueuePolicy], waiting: list[WaitingView]) -> list[WaitingView]:
    """Agent-side order: highest priority first, then longest waiting."""
    return sorted(waiting, key=lambda w: (-priority(policy_of[w.queue], w), w.enqueued_at, w.interaction_id))
