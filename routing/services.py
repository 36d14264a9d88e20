"""Routing commands: presence, keeping Work in step with interactions, and routing decisions.

Lock order, everywhere: the interaction row, then the agent row. Routing an
interaction (interaction side) locks the interaction with SKIP LOCKED (if a
command holds it, the command's own trigger or the periodic sweep routes it
again), then waits for the chosen agent's row, in which it recounts that
agent's load before it reserves a slot. Routing for an agent (agent side)
locks the agent row, then tries waiting interactions with SKIP LOCKED only,
so it never waits on an interaction while holding an agent: no cycle, no
deadlock. Capacity is counted from Work rows, which only change under the
interaction's lock, and a reservation (the offer) only under the agent's
lock, so two workers can never fill one slot twice or offer one interaction
to two agents.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Min
from django.utils import timezone

from contactcenter import logs, metrics
from contactcenter.realtime import notify
from events import store
from events.db import raw_cursor
from events.store import Actor, Metadata
from intelligence.events import RedFlagRaised
from interactions import domain as idomain
from interactions import events as iev
from interactions import services as interaction_services
from interactions.models import Interaction
from routing import domain, engine, realtime
from routing.events import AgentPresenceChanged, InteractionOverflowed, InteractionRouted
from routing.models import Agent, Queue, Work

log = logging.getLogger(__name__)

SYSTEM = Metadata(actor=Actor("system", "routing", "routing"))
LIFECYCLE = (iev.InteractionCreated, iev.InteractionQueued, iev.InteractionOffered, iev.OfferDeclined,
             iev.InteractionAccepted, iev.InteractionTransferred, iev.InteractionEnded, iev.InteractionWrappedUp,
             iev.InteractionAbandoned, iev.InteractionReopened)
IN_HAND = (Work.OFFERED, Work.ASSIGNED)
DEFAULT_QUEUE = "default"


DISPATCH_REQUESTED = "routing:dispatch-requested"  # Redis key: a dispatch task is queued and has not started


def request_dispatch() -> None:
    """Ask for a dispatch pass once the transaction commits; requests coalesce into one queued task.

    The first request sets a Redis flag and queues `routing.tasks.dispatch`;
    later requests see the flag and add nothing. The task clears the flag
    before it reads anything, so work committed before any request is seen
    by a pass that starts after it. The flag expires after a few seconds in
    case its task is lost; a lost request is made up by the periodic sweep.
    """
    if any(fn is _send_dispatch for _, fn, _ in connection.run_on_commit):
        return  # already asked for in this transaction
    transaction.on_commit(_send_dispatch)


def _send_dispatch() -> None:
    from routing import tasks

    try:
        if _redis().set(DISPATCH_REQUESTED, "1", nx=True, ex=settings.ROUTING_DISPATCH_FLAG_SECONDS):
            tasks.dispatch.delay()
    except Exception:  # Redis away: the sweep (routing.tasks.sweep) routes it within seconds
        log.warning("could not queue a routing dispatch; the sweep will pick the work up", exc_info=True)


def dispatch_requested_clear() -> None:
    """The dispatch task starts: later requests must queue another one."""
    try:
        _redis().delete(DISPATCH_REQUESTED)
    except Exception:
        log.warning("could not clear the dispatch request flag", exc_info=True)


_redis_client = None


def _redis():
    global _redis_client
    if _redis_client is None:
        import redis

        _redis_client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    return _redis_client


def _defer_expiry(interaction_ids: list[str], timeout: int) -> None:
    """One task expires the offers of a pass that share a timeout (the sweep expires any it misses)."""

    def send():
        from routing import tasks

        try:
            tasks.expire_offers.apply_async((interaction_ids,), countdown=timeout)
        except Exception:
            log.warning("could not schedule the expiry of %d offers; the sweep expires them", len(interaction_ids),
                        exc_info=True)

    transaction.on_commit(send)


# --- presence --------------------------------------------------------------------------------------------


def agent_presence_set(*, agent_id: str, presence: str, reason: str = "", meta: Metadata = SYSTEM) -> Agent:
    """Set an agent's presence. Emits routing.AgentPresenceChanged (nothing when it is unchanged).

    An agent who leaves `available` while holding offers has them declined
    at once, so the interactions are routed to someone else straight away.
    Becoming available routes waiting work to the agent.
    """
    if presence not in domain.PRESENCES:
        raise idomain.InvalidValue("presence", f"presence must be one of {', '.join(domain.PRESENCES)}")
    with transaction.atomic():
        held = list(Work.objects.filter(agent_id=agent_id, status=Work.OFFERED).values_list("interaction_id",
                                                                                              flat=True))
        if presence != domain.AVAILABLE:
            for interaction_id in held:  # interaction rows first (the lock order), then the agent
                _decline(interaction_id, agent_id, reason="presence", meta=meta)
        agent = Agent.objects.select_for_update().select_related("user").get(user__username=agent_id)
        _presence_write(agent, presence, reason, meta)
    return agent


def _presence_write(agent: Agent, presence: str, reason: str, meta: Metadata) -> bool:
    """Record a presence change on the locked agent row; False when nothing changes."""
    if agent.presence == presence and agent.presence_reason == reason:
        return False
    agent_id = agent.user.get_username()
    store.append(stream_type="agent", stream_id=agent.stream_id, customer_id=None,
                 events=[AgentPresenceChanged(agent_id=agent_id, presence=presence, reason=reason)],
                 expected_version=agent.version, meta=meta)
    now = timezone.now()
    agent.version += 1
    agent.presence, agent.presence_reason, agent.presence_since = presence, reason, now
    if presence == domain.AVAILABLE:
        agent.missed_offers = 0
        if not _loads([agent_id]).get(agent_id):
            agent.idle_since = now
    agent.save(update_fields=["version", "presence", "presence_reason", "presence_since", "missed_offers",
                              "idle_since"])
    if presence == domain.AVAILABLE:
        request_dispatch()
    change = {"agent_id": agent_id, "presence": presence, "reason": reason, "since": now.isoformat()}
    pk = agent.pk
    realtime.push_after_commit(lambda: [(realtime.agent_group(pk), {"type": "routing.presence", **change}),
                                        (realtime.WALLBOARD, {"type": "routing.agent", **change})])
    return True


def _decline(interaction_id: uuid.UUID, agent_id: str, *, reason: str, meta: Metadata) -> bool:
    try:
        interaction_services.interaction_decline(interaction_id=interaction_id, agent_id=agent_id, reason=reason,
                                                 meta=meta)
        return True
    except idomain.TransitionRefused:
        return False  # accepted or withdrawn meanwhile


# --- Work, in step with the interactions ------------------------------------------------------------------


def work_sync(row: Interaction, new_events: list) -> None:
    """interactions.hooks listener: keep the interaction's Work row in step, inside the same transaction.

    Queued: waiting (created with its priority, or back after a decline,
    remembering who declined). Offered: reserved for that agent. Active,
    held: in that agent's hands. Anything else (ended, in wrap-up, resolved,
    abandoned) no longer takes a slot: after a call, after-call work keeps
    the agent from the next one (presence), not the slot.
    Queues routing work for after the commit.
    """
    flags = [e for e in new_events if isinstance(e, RedFlagRaised)]
    boost = sum(e.priority_boost for e in flags)
    skill = next((e.prefer_skill for e in flags if e.prefer_skill), "")
    if not any(isinstance(e, LIFECYCLE) for e in new_events):
        if boost or skill:
            _flag_boost(row, boost, skill)
        return  # a message, a recording: nothing changes for routing
    created = any(isinstance(e, iev.InteractionCreated) for e in new_events)
    work = None if created else Work.objects.filter(interaction_id=row.id).first()  # a new one has none yet
    previous_agent = work.agent_id if work else None
    if row.status == idomain.QUEUED:
        queue = row.queue or DEFAULT_QUEUE
        if work is None:
            work = _new_work(row, queue, boost=boost, skill=skill)
            boost, skill = 0, ""  # on the new row already
        else:
            declined = [e.agent_id for e in new_events if isinstance(e, iev.OfferDeclined)]
            work.declined_by = list(dict.fromkeys([*work.declined_by, *declined]))
            if work.queue != queue:
                # Another queue: a transfer starts a new wait there; an overflow keeps the customer's wait.
                if not any(isinstance(e, InteractionOverflowed) for e in new_events):
                    work.enqueued_at = timezone.now()
                work.queue, work.declined_by = queue, []
                work.priority = _priority(queue, work)
            work.status, work.agent_id, work.offer_expires_at = Work.WAITING, None, None
            work.save()
        request_dispatch()
    elif row.status in (idomain.OFFERED, idomain.ACTIVE, idomain.HELD):
        if work is None:
            work = _new_work(row, row.queue or DEFAULT_QUEUE)
        work.status = Work.OFFERED if row.status == idomain.OFFERED else Work.ASSIGNED
        if work.agent_id != row.agent_id:
            work.agent_id = row.agent_id
        if work.status == Work.ASSIGNED:
            work.offer_expires_at = None
        work.save()
    else:
        if work is not None:
            work.delete()
        if previous_agent:
            request_dispatch()  # a slot is free
    if boost or skill:
        _flag_boost(row, boost, skill)
    _push_work(row, previous_agent)
    _after_call(row, new_events)


def work_prefer(*, interaction_id: uuid.UUID, agent_id: str) -> None:
    """Prefer `agent_id` for this waiting interaction whatever its queue's preferred-agent window (a callback
    promised by that agent): they get the preferred-agent bonus when free and qualified."""
    Work.objects.filter(interaction_id=interaction_id).update(preferred_agent=agent_id)


def _flag_boost(row: Interaction, boost: int, skill: str = "") -> None:
    """Red flags raised on the interaction (intelligence): its priority goes up by their boost, kept on the
    Work row (a later queue adds it too), and a skill they ask for is preferred from now on. Waiting, it may
    now come first: dispatch."""
    changes = {"flag_boost": F("flag_boost") + boost, "priority": F("priority") + boost}
    if skill:
        changes["prefer_skill"] = skill
    updated = Work.objects.filter(interaction_id=row.id).update(**changes)
    if updated and row.status == idomain.QUEUED:
        request_dispatch()


def _work_sync_many(changes: list[tuple]) -> None:
    """work_sync for a batch (interactions.hooks.changed_many): offers in one UPDATE, anything else one by one."""
    offered = [(row, events) for row, events in changes
               if row.status == idomain.OFFERED and any(isinstance(e, iev.InteractionOffered) for e in events)]
    done: set = set()
    if offered:
        with raw_cursor() as cur:
            cur.execute("""UPDATE routing_work w SET status = 'offered', agent_id = o.agent_id, updated_at = now()
                           FROM unnest(%b::uuid[], %b::text[]) AS o(id, agent_id)
                           WHERE w.interaction_id = o.id AND w.status = 'waiting'
                           RETURNING w.interaction_id""",
                        [[row.id for row, _ in offered], [row.agent_id for row, _ in offered]], prepare=True)
            done = {r[0] for r in cur.fetchall()}
    for row, events in changes:
        if row.id not in done:
            work_sync(row, events)
    queues = sorted({row.queue or DEFAULT_QUEUE for row, _ in offered if row.id in done})
    realtime.push_after_commit(lambda: [(realtime.WALLBOARD, {"type": "routing.queue", "queue": q}) for q in queues])


work_sync.many = _work_sync_many


def _push_work(row: Interaction, previous_agent: str | None) -> None:
    """Tell the wallboard the queue changed, and the agents concerned what happened to their work."""
    queue, iid, status, agent = row.queue or DEFAULT_QUEUE, str(row.id), row.status, row.agent_id

    def messages():
        out = [(realtime.WALLBOARD, {"type": "routing.queue", "queue": queue})]  # WallboardConsumer adds the state
        pks = dict(Agent.objects.filter(user__username__in=[a for a in (agent, previous_agent) if a])
                   .values_list("user__username", "pk"))
        if previous_agent and previous_agent != agent and previous_agent in pks:
            out.append((realtime.agent_group(pks[previous_agent]),
                        {"type": "routing.withdrawn", "interaction_id": iid, "status": status}))
        if agent in pks and status in (idomain.ACTIVE, idomain.HELD):
            out.append((realtime.agent_group(pks[agent]),
                        {"type": "routing.assigned", "interaction_id": iid, "status": status}))
        return out

    realtime.push_after_commit(messages)


def _after_call(row: Interaction, new_events: list) -> None:
    """A call that ends puts its agent in after-call work; wrapping it up (or the timeout) makes them available.

    Runs under the interaction's lock and takes the agent's (the lock order).
    """
    ended = row.channel == "voice" and any(isinstance(e, iev.InteractionEnded) for e in new_events)
    wrapped = any(isinstance(e, iev.InteractionWrappedUp) for e in new_events)
    if not (ended or wrapped) or not row.agent_id:
        return
    agent = Agent.objects.select_for_update().select_related("user").filter(user__username=row.agent_id).first()
    if agent is None:
        return
    if ended and agent.presence == domain.AVAILABLE:
        _presence_write(agent, domain.AFTER_CALL_WORK, "after call", SYSTEM)
    elif wrapped and agent.presence == domain.AFTER_CALL_WORK:
        _presence_write(agent, domain.AVAILABLE, "", SYSTEM)


def _new_work(row: Interaction, queue: str, *, boost: int = 0, skill: str = "") -> Work:
    """The Work row of an interaction that starts waiting: its VIP and repeat flags and its priority, read in
    one statement."""
    with raw_cursor() as cur:
        cur.execute("""SELECT (SELECT vip_tier FROM customers_customerprofile WHERE customer_id = %s),
                              EXISTS (SELECT 1 FROM interactions_interaction WHERE case_id = %s AND id <> %s),
                              q.priority, q.vip_boost, q.repeat_boost
                       FROM (SELECT 1) one LEFT JOIN routing_queue q ON q.name = %s""",
                    [row.customer_id, row.case_id, row.id, queue], prepare=True)
        tier, repeat, priority, vip_boost, repeat_boost = cur.fetchone()
    work = Work(interaction_id=row.id, queue=queue, channel=row.channel, customer_id=row.customer_id,
                status=Work.WAITING, enqueued_at=timezone.now(), vip=bool(tier and tier != "none"), repeat=repeat,
                flag_boost=boost, prefer_skill=skill)
    policy = domain.QueuePolicy(queue, priority=priority or 0, vip_boost=vip_boost or 0,
                                repeat_boost=repeat_boost or 0)
    work.priority = domain.priority(policy, work.view())
    work.save(force_insert=True)
    return work


def _priority(queue: str, work: Work) -> int:
    """The work's priority in `queue` (routing.domain.priority), from the three columns it needs."""
    found = Queue.objects.filter(name=queue).values_list("priority", "vip_boost", "repeat_boost").first()
    policy = domain.QueuePolicy(queue, priority=found[0], vip_boost=found[1], repeat_boost=found[2]) if found \
        else domain.QueuePolicy(queue)
    return domain.priority(policy, work.view())


# --- loads ----------------------------------------------------------------------------------------------


def _loads(agent_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per agent, per channel: interactions offered to or held by them (from Work, exact)."""
    loads: dict[str, dict[str, int]] = defaultdict(dict)
    rows = (Work.objects.filter(agent_id__in=agent_ids, status__in=IN_HAND).values("agent_id", "channel")
            .annotate(n=Count("interaction_id")))
    for r in rows:
        loads[r["agent_id"]][r["channel"]] = r["n"]
    return loads


# --- the dispatcher: routing decisions in batches ---------------------------------------------------------

DISPATCH_LOCK = 0x524F555445  # pg advisory lock key ("ROUTE"): one dispatcher decides at a time
# Spliced into SQL text (bandit B608 is told so where): constants like this and the models' own table and
# column names, never input; every value is a bound parameter.
IN_HAND_SQL = "('offered', 'assigned')"


@dataclass
class Dispatch:
    """What one dispatch pass did: a decision per waiting interaction it looked at, and the offers it made."""

    decisions: dict[uuid.UUID, domain.Decision] = field(default_factory=dict)
    offered: list[tuple[uuid.UUID, str]] = field(default_factory=list)  # (interaction, agent)


@metrics.timed_dispatch  # cc_routing_dispatch_duration_seconds, cc_routing_offers_total
def dispatch(*, interaction_ids: list[uuid.UUID] | None = None, agent_ids: list[str] | None = None,
             now: dt.datetime | None = None, limit: int | None = None) -> Dispatch:
    """Route waiting work to available agents: one pass, one transaction, many offers.

    Both sides of routing are this one function. Waiting interactions are
    taken highest priority first, then longest waiting (so an agent who
    becomes available gets the most urgent work they qualify for), and each
    goes to its best qualified agent (routing.domain.decide_route, the same
    rules everywhere) among the agents still free after the decisions before
    it. `interaction_ids` limits the pass to those interactions (interaction
    side), `agent_ids` to those agents (agent side); neither: everything
    that can be routed now, up to `limit` (ROUTING_BATCH).

    Emits, per offer, routing.InteractionRouted (why: the step, the
    candidates and their scores) and interactions.InteractionOffered, all in
    one append. Safety: one dispatcher at a time (an advisory lock);
    waiting interactions are locked (SKIP LOCKED: one a command is changing
    is left for its own trigger), then the chosen agents are locked and
    their load recounted before anything is offered, so a slot can never be
    filled twice nor an interaction offered to two agents. Idempotent: what
    is offered is no longer waiting, and a full agent gets nothing more.
    """
    limit = limit or settings.ROUTING_BATCH
    side = "agent" if agent_ids is not None else "interaction"
    with transaction.atomic():
        with raw_cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s::bigint), (SELECT n FROM routing_configversion WHERE id = 1)",
                        [DISPATCH_LOCK], prepare=True)
            version = cur.fetchone()[1]
            groups = _waiting_groups(cur, interaction_ids)
        result = Dispatch()
        if not groups:
            return result
        now = now or timezone.now()
        config = _config(version)
        queues = config.queues_for({q for q, _ in groups})
        try:  # first with the best-ranked agents only (enough, nearly always), else with everyone
            decided = _decide(config, queues, groups, agent_ids, interaction_ids, limit, now, sample=True)
        except engine.Incomplete:
            decided = _decide(config, queues, groups, agent_ids, interaction_ids, limit, now, sample=False)
        if decided is None:
            return result
        result.decisions, offers, agents, available = decided
        _offer_all(offers, queues, {name: a.pk for name, a in agents.items()}, side=side, available=available)
        result.offered = [(w.interaction_id, d.agent_id) for w, d in offers]
    return result


def _decide(config, queues, groups, agent_ids, interaction_ids, limit, now, *, sample: bool):
    """Lock the work of this pass and decide each; (decisions, offers confirmed, agents, available) or None.

    With `sample`, only the best-ranked agents of each queue are read from
    the database (a few times the pool and the waiting work); a walk down a
    ranking that reaches an agent not read raises engine.Incomplete, so the result
    is always the one a read of every agent gives.
    """
    agents, available, fetched = _available_agents(config, agent_ids, groups, sample=sample)
    qualified = config.qualified
    works = _lock_waiting(groups, queues, agents, fetched, qualified, interaction_ids, limit)
    if not works:
        return None
    preferred = _preferred_agents(queues, works, now)
    decisions: dict = {}
    pending, offers = works, []
    for _ in range(3):  # a chosen agent whose load changed meanwhile: decide those again
        more, chosen = engine.decide_pass(queues, qualified, agents, pending, preferred, now, fetched=fetched,
                                          pool_size=settings.ROUTING_POOL)
        decisions.update(more)
        confirmed, pending = _confirm(chosen, agents)
        offers += confirmed
        if not pending:
            break
    for work in pending:
        decisions[work.interaction_id] = domain.Decision(None, 0, 0.0, ())  # left waiting this pass
    return decisions, offers, agents, available


def _waiting_groups(cur, interaction_ids) -> dict[tuple[str, str], int]:
    """(queue, channel) -> how many wait there (of those interactions)."""
    if interaction_ids is None:
        cur.execute("SELECT queue, channel, count(*) FROM routing_work WHERE status = 'waiting' GROUP BY 1, 2",
                    prepare=True)
    elif not interaction_ids:
        return {}
    else:
        cur.execute("SELECT queue, channel, count(*) FROM routing_work WHERE status = 'waiting' "
                    "AND interaction_id = ANY(%b::uuid[]) GROUP BY 1, 2", [list(interaction_ids)], prepare=True)
    return {(q, ch): n for q, ch, n in cur.fetchall()}


class _Config:
    """What routing reads on every pass but rarely changes: agents' skills, languages and capacity, queue policies,
    and per queue and expansion step the agents who qualify, best first. Kept per worker process between
    passes; reloaded when routing_configversion moves (migration routing.0003: triggers bump it with any
    change to those tables, in the same transaction)."""

    def __init__(self, version: int | None):
        self.version = version
        self.agents: dict[str, engine.FreeAgent] = {}  # by user name, presence and load left out
        self.queues: dict[str, engine.QueueConfig] = {}
        self.qualified = engine.Qualified(self.queues, self.agents)
        with connection.cursor() as cur:
            cur.execute("""SELECT a.id, u.username, a.languages::text, a.capacity::text, a.voice_with_others
                           FROM routing_agent a JOIN auth_user u ON u.id = a.user_id""")
            rows = cur.fetchall()
            cur.execute("SELECT agent_id, skill_id, proficiency FROM routing_agentskill")
            skills: dict[int, dict[str, int]] = defaultdict(dict)
            for agent_pk, skill, level in cur.fetchall():
                skills[agent_pk][skill] = level
        for pk, name, languages, capacity, voice in rows:
            self.agents[name] = engine.FreeAgent(pk, domain.AgentView(
                agent_id=name, presence=domain.AVAILABLE, skills=skills[pk], languages=tuple(_json(languages) or ()),
                capacity=_json(capacity) or {}, voice_with_others=voice))
        self.pks = {a.pk: name for name, a in self.agents.items()}
        for queue in Queue.objects.prefetch_related("skills"):
            policy = queue.policy()
            self.queues[queue.name] = engine.QueueConfig.of(policy, queue.offer_timeout_seconds or 20)

    def queues_for(self, names) -> dict[str, engine.QueueConfig]:
        for name in names:  # work in a queue nobody configured: routed with the default policy
            self.queues.setdefault(name, engine.QueueConfig(domain.QueuePolicy(name=name)))
        return self.queues


_cached: _Config | None = None


def _config(version: int | None) -> _Config:
    """The cached configuration if it is at `version` (read from routing_configversion), else a fresh one."""
    global _cached
    if _cached is None or version is None or _cached.version != version:
        _cached = _Config(version)
    return _cached


_json_memo: dict[str, object] = {}


def _json(text):
    """Agents share a handful of capacity and language values: parse each distinct one once per process."""
    if not isinstance(text, str):
        return text
    value = _json_memo.get(text)
    if value is None:
        if len(_json_memo) > 10_000:
            _json_memo.clear()
        value = _json_memo[text] = json.loads(text)
    return value


def _available_agents(config: _Config, agent_ids: list[str] | None, groups: dict, *, sample: bool
                      ) -> tuple[dict[str, engine.FreeAgent], int, set | None]:
    """The available agents who qualify for the waiting queues at their most relaxed step (and are among
    `agent_ids`), with their current load; how many agents are available in all; and which agents were read
    (None: every one who qualifies). With `sample`, per queue only the best-ranked few."""
    names: set[str] = set()
    for (queue, _), waiting in groups.items():
        ranked = config.qualified.ranked(queue, (0, config.queues[queue].relaxed, False))
        k = 2 * waiting + 4 * settings.ROUTING_POOL + 16
        if sample and k < len(ranked):  # the best k, and everyone tied with the k-th (the tie-break needs them)
            edge = ranked[k - 1][1]
            names.update(n for n, score in ranked if score >= edge)
        else:
            names.update(n for n, _ in ranked)
    if agent_ids is not None:
        names &= set(agent_ids)
    fetched = names if sample else None
    pks = [config.agents[n].pk for n in names]
    loads: dict[str, dict[str, int]] = defaultdict(dict)
    if not pks:
        with raw_cursor() as cur:
            cur.execute("SELECT count(*) FROM routing_agent WHERE presence = 'available'")
            return {}, cur.fetchone()[0], fetched
    with raw_cursor() as cur:
        # One statement: the agents still available, their idle time and what they hold (from Work, exact).
        cur.execute(f"""SELECT x.name, a.idle_since,
                               ARRAY(SELECT w.channel FROM routing_work w
                                     WHERE w.agent_id = x.name AND w.status IN {IN_HAND_SQL}),
                               (SELECT count(*) FROM routing_agent WHERE presence = 'available')
                        FROM unnest(%b::bigint[], %b::text[]) AS x(id, name)
                        JOIN routing_agent a ON a.id = x.id
                        WHERE a.presence = 'available'""",  # nosec B608
                    [pks, [config.pks[pk] for pk in pks]], prepare=True, binary=True)
        found = cur.fetchall()
        if found:
            available = found[0][3]
        else:
            cur.execute("SELECT count(*) FROM routing_agent WHERE presence = 'available'")
            available = cur.fetchone()[0]
    rows = []
    for name, idle, channels, _ in found:
        rows.append((name, idle))
        load = loads[name]
        for channel in channels:
            load[channel] = load.get(channel, 0) + 1
    agents = {}
    for name, idle in rows:
        known = config.agents[name]
        agents[name] = engine.FreeAgent(known.pk, known.base, loads[name], idle)
    return agents, available, fetched


def _lock_waiting(groups, queues, agents, fetched, qualified, interaction_ids, limit) -> list[Work]:
    """Lock the waiting interactions this pass decides about; their Work rows, most urgent first.

    Without `interaction_ids`: per queue and channel, only if some agent who
    qualifies has a free slot, and at most about twice as many as those
    slots (so work no one can take now does not crowd out work someone
    can), skipping work every such agent declined.
    """
    with raw_cursor() as cur:
        if interaction_ids is None:
            limits = engine.group_limits(groups, agents, fetched, qualified, limit)
            q_names, q_channels = [g.queue for g in limits], [g.channel for g in limits]
            q_limits = [g.limit for g in limits]
            q_agents = [json.dumps(list(g.agents)) if g.agents is not None else None for g in limits]  # None: no filter
            if not q_names:
                return []
            cur.execute("""
                SELECT w.interaction_id FROM unnest(%b::text[], %b::text[], %b::int[], %b::text[]::jsonb[])
                     AS g(queue, channel, lim, agents)
                CROSS JOIN LATERAL (
                    SELECT w.interaction_id, w.priority, w.enqueued_at FROM routing_work w
                    WHERE w.status = 'waiting' AND w.queue = g.queue AND w.channel = g.channel
                      AND (g.agents IS NULL OR w.declined_by = '[]'::jsonb OR NOT (w.declined_by @> g.agents))
                    ORDER BY w.priority DESC, w.enqueued_at LIMIT g.lim) w
                ORDER BY w.priority DESC, w.enqueued_at LIMIT %s""",
                        [q_names, q_channels, q_limits, q_agents, limit], prepare=True)
            interaction_ids = [r[0] for r in cur.fetchall()]
        if not interaction_ids:
            return []
        cur.execute("SELECT id FROM interactions_interaction WHERE id = ANY(%b::uuid[]) AND status = %s "
                    "ORDER BY id FOR UPDATE SKIP LOCKED", [list(interaction_ids), idomain.QUEUED], prepare=True)
        locked = [r[0] for r in cur.fetchall()]
        if not locked:
            return []
        # Read after the lock (a statement of its own): Work changes only under the interaction's lock, so
        # these rows are current.
        cur.execute(f"SELECT {_WORK_COLUMNS} FROM routing_work WHERE interaction_id = ANY(%b::uuid[]) "  # nosec B608
                    "AND status = 'waiting' ORDER BY priority DESC, enqueued_at, interaction_id", [locked],
                    prepare=True, binary=True)
        return [Work.from_db("default", _WORK_FIELDS, row) for row in cur.fetchall()]


_WORK_FIELDS = [f.attname for f in Work._meta.concrete_fields]
_WORK_COLUMNS = ", ".join(f.column for f in Work._meta.concrete_fields)


def _preferred_agents(queues: dict[str, engine.QueueConfig], works: list[Work], now: dt.datetime) -> dict[uuid.UUID, str]:
    """Per interaction: the agent it was promised to (Work.preferred_agent), else who last resolved something for
    its customer within its queue's window (one query)."""
    promised = {w.interaction_id: w.preferred_agent for w in works if w.preferred_agent}
    wanted = [w for w in works if queues[w.queue].policy.preferred_agent_hours and not w.preferred_agent]
    if not wanted:
        return promised
    hours = max(queues[w.queue].policy.preferred_agent_hours for w in wanted)
    last = {c: (a, at) for c, a, at in Interaction.objects.filter(
        customer_id__in={w.customer_id for w in wanted}, status=idomain.RESOLVED,
        updated_at__gte=now - dt.timedelta(hours=hours)).exclude(agent_id=None)
        .order_by("customer_id", "-updated_at").distinct("customer_id").values_list("customer_id", "agent_id",
                                                                                      "updated_at")}
    out = {}
    for w in wanted:
        found = last.get(w.customer_id)
        if found and found[1] >= now - dt.timedelta(hours=queues[w.queue].policy.preferred_agent_hours):
            out[w.interaction_id] = found[0]
    return {**out, **promised}


def _confirm(chosen: list, agents: dict[str, engine.FreeAgent]) -> tuple[list, list]:
    """Lock the chosen agents and recount their load; (offers that still fit, work to decide again).

    Agents are locked in one statement, in primary-key order, after the
    interactions (the lock order). Their views are replaced by what the
    locked rows say, so a second round decides on the truth.
    """
    if not chosen:
        return [], []
    names = sorted({d.agent_id for _, d in chosen})
    with raw_cursor() as cur:
        cur.execute("""SELECT u.username, a.presence, a.capacity::text, a.voice_with_others
                       FROM routing_agent a JOIN auth_user u ON u.id = a.user_id
                       WHERE u.username = ANY(%b::text[]) ORDER BY a.id FOR UPDATE OF a""", [names], prepare=True)
        rows = {r[0]: r for r in cur.fetchall()}
        cur.execute(f"SELECT agent_id, channel, count(*) FROM routing_work WHERE status IN {IN_HAND_SQL} "  # nosec B608
                    "AND agent_id = ANY(%b::text[]) GROUP BY 1, 2", [names], prepare=True)
        fresh: dict[str, dict[str, int]] = defaultdict(dict)
        for name, channel, n in cur.fetchall():
            fresh[name][channel] = n
    for name in names:
        row = rows.get(name)
        if row is None or row[1] != domain.AVAILABLE:
            agents.pop(name, None)
        else:
            agent = agents[name]
            agent.base = replace(agent.base, capacity=_json(row[2]) or {}, voice_with_others=row[3])
            agent.load = dict(fresh[name])
    confirmed, again = [], []
    for work, decision in chosen:
        agent = agents.get(decision.agent_id)
        if agent is not None and domain.has_room(agent, work.channel)[0]:
            engine.take(agents, decision.agent_id, work.channel, +1)
            confirmed.append((work, decision))
        else:
            again.append(work)
    return confirmed, again


def _offer_all(offers: list, queues: dict[str, engine.QueueConfig], pks: dict[str, int], *, side: str, available: int) -> None:
    """The offers of a pass: one append for all, offer expiries (one task per timeout), one push."""
    if not offers:
        return
    batch = []
    for work, decision in offers:
        chosen = next(c for c in decision.candidates if c.agent_id == decision.agent_id)
        routed = InteractionRouted(agent_id=decision.agent_id, queue=work.queue, score=chosen.score,
                                   priority=work.priority, side=side,
                                   explanation={**decision.explanation(), "available": available})
        batch.append((work.interaction_id, decision.agent_id, (routed,)))
    interaction_services.interactions_offer(batch, meta=SYSTEM)
    now = timezone.now()
    by_timeout: dict[int, list[str]] = defaultdict(list)
    ids, expiries = [], []
    for work, _ in offers:
        timeout = queues[work.queue].offer_timeout
        by_timeout[timeout].append(str(work.interaction_id))
        ids.append(work.interaction_id)
        expiries.append(now + dt.timedelta(seconds=timeout))
    with raw_cursor() as cur:
        cur.execute("UPDATE routing_work w SET offer_expires_at = e.at FROM unnest(%b::uuid[], %b::timestamptz[]) "
                    "AS e(id, at) WHERE w.interaction_id = e.id", [ids, expiries], prepare=True)
    for timeout, expiring in by_timeout.items():
        _defer_expiry(expiring, timeout)
    # The offers on the agents' sockets, after the commit; AgentConsumer attaches the customer's context
    # there, in the web process and only for a desk that is listening, off the routing worker's path.
    messages = [(realtime.agent_group(pks[decision.agent_id]), {
        "type": "routing.offer", "interaction_id": str(work.interaction_id), "customer_id": str(work.customer_id),
        "channel": work.channel, "queue": work.queue, "priority": work.priority, "expires_at": at.isoformat()})
        for (work, decision), at in zip(offers, expiries, strict=True)]
    realtime.push_after_commit(lambda: messages)
    logs.log_offers([(w.interaction_id, pks[d.agent_id], w.queue) for w, d in offers])  # after the push


def work_route(*, interaction_id: uuid.UUID, now: dt.datetime | None = None) -> domain.Decision | None:
    """Interaction side: offer one waiting interaction to the best available qualified agent (a dispatch pass).

    Returns the decision (agent_id None: nobody qualifies yet; it waits and
    the sweep tries again as criteria expand), or None when the interaction
    is not waiting or is being changed by someone else right now.
    """
    return dispatch(interaction_ids=[interaction_id], now=now).decisions.get(interaction_id)


def agent_route(*, agent_id: str, now: dt.datetime | None = None) -> list[str]:
    """Agent side: fill a free agent's slots with the most urgent waiting work they qualify for (a dispatch pass).

    Returns the interaction ids offered; nothing for an agent who is full or
    not available.
    """
    return [str(iid) for iid, _ in dispatch(agent_ids=[agent_id], now=now).offered]


def dispatch_all(*, now: dt.datetime | None = None, budget_seconds: float = 2.0) -> int:
    """Dispatch passes while they take a whole batch; returns the offers made.

    A pass looks at the work some free agent could take, up to
    ROUTING_BATCH interactions, so one that looked at fewer left nothing
    routable behind (work another transaction held is routed by that
    transaction's own request).
    After `budget_seconds` of full passes it stops and asks for another
    dispatch task, so the worker gets to its other tasks (offer expiries)
    in between.
    """
    started, offered = time.monotonic(), 0
    while True:
        result = dispatch(now=now)
        offered += len(result.offered)
        if not result.offered or len(result.decisions) < settings.ROUTING_BATCH:  # it saw all it could use
            return offered
        if time.monotonic() - started > budget_seconds:
            request_dispatch()
            return offered


def offer_expire(*, interaction_id: uuid.UUID, now: dt.datetime | None = None) -> bool:
    """An offer not answered in time goes back to the queue (OfferDeclined, reason "timeout").

    The agent's run of missed offers grows; at the queue's limit the agent is
    set on a break ("missed offers"), so routing stops offering to someone
    who is not there. Idempotent: an offer accepted, declined or already
    expired is left alone; so is one whose time has not come.
    """
    now = now or timezone.now()
    with transaction.atomic():
        row = Interaction.objects.select_for_update().filter(id=interaction_id, status=idomain.OFFERED).first()
        work = Work.objects.filter(interaction_id=interaction_id, status=Work.OFFERED).first() if row else None
        if work is None or work.offer_expires_at is None or work.offer_expires_at > now:
            return False
        agent_id = work.agent_id
        interaction_services.interaction_decline(interaction_id=interaction_id, agent_id=agent_id, reason="timeout",
                                                 meta=SYSTEM)
        limit = Queue.objects.filter(name=work.queue).values_list("max_missed_offers", flat=True).first() or 3
        agent = Agent.objects.select_for_update().filter(user__username=agent_id).first()
        if agent is not None:
            agent.missed_offers += 1
            agent.save(update_fields=["missed_offers"])
            missed = agent.missed_offers
    if agent is not None and missed >= limit:
        agent_presence_set(agent_id=agent_id, presence="break", reason="missed offers")
    return True


def sweep(*, now: dt.datetime | None = None) -> dict:
    """The periodic re-evaluation: expired offers, overflow, after-call timeouts, alarms, then dispatch passes.

    Waiting criteria expand with time (routing.domain.step_in_force), so an
    interaction nobody qualified for a minute ago may find an agent now; and a
    trigger lost with Redis is made up for here. Returns counts.
    """
    now = now or timezone.now()
    expired = sum(offer_expire(interaction_id=i, now=now) for i in Work.objects.filter(
        status=Work.OFFERED, offer_expires_at__lte=now).values_list("interaction_id", flat=True))
    overflowed = _overflow_all(now)
    back = _after_call_timeouts(now)
    alarms = _service_level_alarms(now)
    routed = dispatch_all(now=now)
    return {"expired": expired, "overflowed": overflowed, "after_call_ended": back, "routed": routed,
            "alarms": alarms}


def _service_level_alarms(now: dt.datetime) -> list[str]:
    """Queues whose longest-waiting interaction is past the service-level threshold: logged and pushed to wallboards.

    Repeated on every sweep while it lasts (a wallboard that connects late
    still hears it); `routing.alarm` carries the queue, the longest wait and
    the threshold.
    """
    alarms = []
    oldest = dict(Work.objects.filter(status=Work.WAITING).values("queue").annotate(first=Min("enqueued_at"))
                  .values_list("queue", "first"))
    for queue in Queue.objects.filter(name__in=list(oldest)):
        waited = (now - oldest[queue.name]).total_seconds()
        if waited > queue.service_level_seconds:
            alarms.append(queue.name)
            log.warning("queue %s: an interaction has waited %.0f s (service level: %d%% within %d s)", queue.name,
                        waited, queue.service_level_percent, queue.service_level_seconds)
            message = {"type": "routing.alarm", "queue": queue.name, "longest_wait_seconds": round(waited, 1),
                       "service_level_seconds": queue.service_level_seconds}
            notify([(realtime.WALLBOARD, message)])
    return alarms


def _after_call_timeouts(now: dt.datetime) -> int:
    limit = now - dt.timedelta(seconds=settings.ROUTING_AFTER_CALL_SECONDS)
    done = 0
    for agent_id in Agent.objects.filter(presence=domain.AFTER_CALL_WORK, presence_since__lte=limit) \
            .values_list("user__username", flat=True):
        with transaction.atomic():
            agent = Agent.objects.select_for_update().select_related("user").get(user__username=agent_id)
            if agent.presence == domain.AFTER_CALL_WORK and agent.presence_since <= limit:
                done += _presence_write(agent, domain.AVAILABLE, "after-call work timed out", SYSTEM)
    return done


def _overflow_all(now: dt.datetime) -> int:
    moved = 0
    queues = {q.name: q for q in Queue.objects.exclude(overflow_queue=None)}
    for queue in queues.values():
        closed = not domain.is_open(queue.business_hours, now)
        if closed:
            due = Work.objects.filter(queue=queue.name, status=Work.WAITING)
        elif queue.overflow_after_seconds is not None:
            due = Work.objects.filter(queue=queue.name, status=Work.WAITING,
                                      enqueued_at__lte=now - dt.timedelta(seconds=queue.overflow_after_seconds))
        else:
            continue
        for interaction_id in due.values_list("interaction_id", flat=True):
            moved += work_overflow(interaction_id=interaction_id, now=now)
    return moved


def work_overflow(*, interaction_id: uuid.UUID, now: dt.datetime | None = None) -> bool:
    """Move a waiting interaction to its queue's overflow queue when it waited too long or the queue is closed.

    Emits routing.InteractionOverflowed and interactions.InteractionQueued
    (the new queue) together; the customer's wait keeps counting. Idempotent:
    once moved, it is no longer in the first queue. False when nothing is due.
    """
    now = now or timezone.now()
    with transaction.atomic():
        row = (Interaction.objects.select_for_update(skip_locked=True)
               .filter(id=interaction_id, status=idomain.QUEUED).first())
        work = Work.objects.filter(interaction_id=interaction_id, status=Work.WAITING).first() if row else None
        queue = Queue.objects.filter(name=work.queue).first() if work else None
        if queue is None or not queue.overflow_queue_id:
            return False
        waited = (now - work.enqueued_at).total_seconds()
        closed = not domain.is_open(queue.business_hours, now)
        if not closed and (queue.overflow_after_seconds is None or waited < queue.overflow_after_seconds):
            return False
        fact = InteractionOverflowed(from_queue=queue.name, to_queue=queue.overflow_queue_id,
                                     waited_seconds=round(waited, 3), reason="closed" if closed else "waited")
        interaction_services.interaction_requeue(interaction_id=row.id, queue=queue.overflow_queue_id, meta=SYSTEM,
                                                 facts=[fact])
    return True
