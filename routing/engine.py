"""A dispatch pass in memory: which waiting work goes to which free agent, by routing.domain's rules.

No Django and no database here. The live dispatcher (routing.services.dispatch)
reads the waiting work and the free agents from PostgreSQL under its locks,
asks `decide_pass` for the offers, and confirms them under the agents' locks;
the what-if simulator (routing.whatif) keeps the same state in memory and asks
the same `decide_pass` at every moment of a replayed day. One engine, two
drivers: what the simulator reports for a policy is what live routing would
have done with it.

Work is anything with the attributes of routing.models.Work that routing
reads: `interaction_id`, `queue`, `channel`, `enqueued_at`, `priority`,
`declined_by`, `prefer_skill` and `view(preferred_agent)` (a
routing.domain.WaitingView).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from routing import domain


@dataclass
class QueueConfig:
    """A queue as routing uses it: its policy, the offer timeout, and the most relaxed proficiency delta of any
    expansion step (who could ever qualify)."""

    policy: domain.QueuePolicy
    offer_timeout: int = 20
    relaxed: int = 0

    @classmethod
    def of(cls, policy: domain.QueuePolicy, offer_timeout: int = 20) -> QueueConfig:
        return cls(policy, offer_timeout, min([0, *(s.min_proficiency_delta for s in policy.expansion)]))


class FreeAgent:
    """An agent during a pass: their configuration (`base`), current load and idle time.

    routing.domain.has_room reads `load`, `capacity` and `voice_with_others`
    straight from it; a full AgentView is built only for the few agents a
    decision scores.
    """

    __slots__ = ("pk", "base", "load", "idle_since")

    def __init__(self, pk: int, base: domain.AgentView, load: dict | None = None, idle_since=None):
        self.pk, self.base = pk, base
        self.load = dict(base.load) if load is None else load
        self.idle_since = base.idle_since if idle_since is None else idle_since

    @property
    def capacity(self) -> dict:
        return self.base.capacity

    @property
    def voice_with_others(self) -> bool:
        return self.base.voice_with_others

    @property
    def view(self) -> domain.AgentView:
        b = self.base
        return domain.AgentView(agent_id=b.agent_id, presence=domain.AVAILABLE, skills=b.skills,
                                languages=b.languages, capacity=b.capacity, load=dict(self.load),
                                voice_with_others=b.voice_with_others, idle_since=self.idle_since)


class Incomplete(Exception):
    """A decision needs an agent the sampled read left out: read them all and decide again."""


class Qualified:
    """Per queue and expansion step, the agents who qualify (language, skills), best score first."""

    def __init__(self, queues: dict[str, QueueConfig], agents: dict[str, FreeAgent]):
        self.queues, self.agents, self.memo = queues, agents, {}

    def ranked(self, queue: str, step: tuple[int, int, bool]) -> list[tuple[str, float]]:
        key = (queue, step[1], step[2])
        found = self.memo.get(key)
        if found is None:
            policy = self.queues[queue].policy
            scored = [(name, domain.qualify(policy, a.base, step=step)) for name, a in self.agents.items()]
            found = self.memo[key] = sorted(((n, c.score) for n, c in scored if c.eligible), key=lambda x: -x[1])
        return found

    def relaxed(self, queue: str) -> list[str]:
        return [name for name, _ in self.ranked(queue, (0, self.queues[queue].relaxed, False))]


def pool(ranked: list[tuple[str, float]], agents: dict[str, FreeAgent], fetched: set | None, work,
         preferred: str | None, size: int) -> list[domain.AgentView]:
    """The agents routing.domain.decide_route chooses among: the `size` best-scoring free ones, every agent
    tied with the last of them (the tie-break decides between equals), and the preferred agent if free. Work
    that prefers a skill (a red flag) is scored against every free qualified agent: the bonus can lift anyone.
    `agents` are the free ones; `fetched`, when not None, the names read (a name outside it raises Incomplete).
    """
    declined, out, cutoff = set(work.declined_by), [], None
    if work.prefer_skill:
        size = 0  # never reached: no cutoff
    for name, score in ranked:
        if cutoff is not None and score < cutoff:
            break
        agent = agents.get(name)
        if agent is None and fetched is not None and name not in fetched:
            raise Incomplete(name)
        if agent is None or name in declined or not domain.has_room(agent, work.channel)[0]:
            continue
        out.append(agent.view)
        if len(out) == size:
            cutoff = score
    if preferred and fetched is not None and preferred not in fetched and any(n == preferred for n, _ in ranked):
        raise Incomplete(preferred)
    if preferred and preferred in agents and all(v.agent_id != preferred for v in out):
        out.append(agents[preferred].view)  # decide_route checks them like anyone else
    return out


def take(agents: dict[str, FreeAgent], name: str, channel: str, n: int) -> None:
    load = agents[name].load
    load[channel] = load.get(channel, 0) + n


def free_slots(agent: FreeAgent, channel: str) -> int:
    if not domain.has_room(agent, channel)[0]:
        return 0
    return agent.capacity.get(channel, 0) - agent.load.get(channel, 0)


@dataclass(frozen=True)
class GroupLimit:
    """How much of one queue's waiting work on one channel a pass looks at, and which free agents could take it
    (None: no need to filter out work they all declined)."""

    queue: str
    channel: str
    limit: int
    agents: tuple[str, ...] | None


def group_limits(groups: dict[tuple[str, str], int], agents: dict[str, FreeAgent], fetched: set | None,
                 qualified: Qualified, limit: int) -> list[GroupLimit]:
    """Per (queue, channel) with `groups[...]` waiting: look only if some agent who qualifies has a free slot,
    and at most about twice as many as those slots (so work no one can take now does not crowd out work
    someone can)."""
    out = []
    for (queue, channel), waiting in groups.items():
        names, slots, every = [], 0, True
        for a in qualified.relaxed(queue):
            if a not in agents and fetched is not None and a not in fetched:
                raise Incomplete(a)
            free = free_slots(agents[a], channel) if a in agents else 0
            if free:
                names.append(a)
                slots += free
                if slots >= waiting:  # room for all of them: nothing to crowd out, no need to count on
                    every = False
                    break
        if slots:
            # A margin over the free slots: work that qualifies only after more waiting (an expansion step)
            # or that the free agents declined must not hide the work behind it.
            out.append(GroupLimit(queue, channel, min(2 * slots + 5, limit), tuple(names) if every else None))
    return out


def decide_pass(queues: dict[str, QueueConfig], qualified: Qualified, agents: dict[str, FreeAgent], works: list,
                preferred: dict, now: dt.datetime, *, fetched: set | None = None, pool_size: int = 10
                ) -> tuple[dict, list]:
    """Decide each work in turn (most urgent first, as given) among the agents still free after the decisions
    before it: {interaction_id: Decision}, and the (work, decision) pairs that chose an agent, whose load is
    taken in `agents`."""
    decisions, chosen = {}, []
    for work in works:
        q = queues[work.queue]
        step = domain.step_in_force(q.policy, (now - work.enqueued_at).total_seconds())
        ranked = qualified.ranked(work.queue, step)
        favourite = preferred.get(work.interaction_id)
        candidates = pool(ranked, agents, fetched, work, favourite, pool_size)
        decision = domain.decide_route(q.policy, work.view(favourite), candidates, now=now)
        decision = replace(decision, qualified=len(ranked))
        decisions[work.interaction_id] = decision
        if decision.agent_id:
            take(agents, decision.agent_id, work.channel, +1)
            chosen.append((work, decision))
    return decisions, chosen


def urgency(work) -> tuple:
    """The order a pass takes waiting work in: highest priority first, then longest waiting (as the live
    dispatcher's SQL orders it)."""
    return (-work.priority, work.enqueued_at, str(work.interaction_id))
