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
import uuid
from collections import defaultdict

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Min
from django.utils import timezone

from contactcenter.realtime import notify
from customers.models import CustomerProfile
from events import store
from events.store import Actor, Metadata
from interactions import domain as idomain
from interactions import events as iev
from interactions import services as interaction_services
from interactions.models import Interaction
from routing import domain, realtime
from routing.events import AgentPresenceChanged, InteractionOverflowed, InteractionRouted
from routing.models import Agent, Queue, Work

log = logging.getLogger(__name__)

SYSTEM = Metadata(actor=Actor("system", "routing", "routing"))
LIFECYCLE = (iev.InteractionCreated, iev.InteractionQueued, iev.InteractionOffered, iev.OfferDeclined,
             iev.InteractionAccepted, iev.InteractionTransferred, iev.InteractionEnded, iev.InteractionWrappedUp,
             iev.InteractionAbandoned, iev.InteractionReopened)
IN_HAND = (Work.OFFERED, Work.ASSIGNED)
DEFAULT_QUEUE = "default"


def _defer(task_name: str, *args) -> None:
    """Queue a routing task once the transaction commits (a lost trigger is caught by the periodic sweep)."""

    def send():
        from routing import tasks

        try:
            getattr(tasks, task_name).delay(*args)
        except Exception:  # Redis away: the sweep (routing.tasks.sweep) routes it within seconds
            log.warning("could not queue %s%r; the sweep will pick it up", task_name, args, exc_info=True)

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
        _defer("route_agent", agent_id)
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
    if not any(isinstance(e, LIFECYCLE) for e in new_events):
        return  # a message, a recording: nothing changes for routing
    work = Work.objects.filter(interaction_id=row.id).first()
    previous_agent = work.agent_id if work else None
    if row.status == idomain.QUEUED:
        queue = row.queue or DEFAULT_QUEUE
        if work is None:
            work = _new_work(row, queue)
        else:
            declined = [e.agent_id for e in new_events if isinstance(e, iev.OfferDeclined)]
            work.declined_by = list(dict.fromkeys([*work.declined_by, *declined]))
            if work.queue != queue:
                # Another queue: a transfer starts a new wait there; an overflow keeps the customer's wait.
                if not any(isinstance(e, InteractionOverflowed) for e in new_events):
                    work.enqueued_at = timezone.now()
                work.queue, work.declined_by = queue, []
                work.priority = _priority(_policy(queue), work)
            work.status, work.agent_id, work.offer_expires_at = Work.WAITING, None, None
            work.save()
        _defer("route_interaction", str(row.id))
        if previous_agent:
            _defer("route_agent", previous_agent)
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
            _defer("route_agent", previous_agent)
    _push_work(row, previous_agent)
    _after_call(row, new_events)


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


def _push_offer(agent: Agent, row: Interaction, work: Work, expires_at: dt.datetime) -> None:
    """The offer on the agent's socket (after the commit); AgentConsumer attaches the customer's context.

    Building the context there, in the web process and only for a desk that
    is listening, keeps it off the routing worker's path.
    """
    pk = agent.pk
    offer = {"interaction_id": str(row.id), "customer_id": str(row.customer_id), "channel": work.channel,
             "queue": work.queue, "priority": work.priority, "expires_at": expires_at.isoformat()}
    realtime.push_after_commit(lambda: [(realtime.agent_group(pk), {"type": "routing.offer", **offer})])


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


def _new_work(row: Interaction, queue: str) -> Work:
    profile = CustomerProfile.objects.filter(customer_id=row.customer_id).values_list("vip_tier", flat=True).first()
    repeat = Interaction.objects.filter(case_id=row.case_id).exclude(id=row.id).exists()
    work = Work(interaction_id=row.id, queue=queue, channel=row.channel, customer_id=row.customer_id,
                status=Work.WAITING, enqueued_at=timezone.now(), vip=bool(profile and profile != "none"),
                repeat=repeat)
    work.priority = _priority(_policy(queue), work)
    work.save(force_insert=True)
    return work


def _policy(queue: str) -> domain.QueuePolicy:
    found = Queue.objects.filter(name=queue).prefetch_related("skills").first()
    return found.policy() if found else domain.QueuePolicy(name=queue)


def _priority(policy: domain.QueuePolicy, work: Work) -> int:
    return domain.priority(policy, work.view())


# --- loads and candidates ---------------------------------------------------------------------------------


def _loads(agent_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per agent, per channel: interactions offered to or held by them (from Work, exact)."""
    loads: dict[str, dict[str, int]] = defaultdict(dict)
    rows = (Work.objects.filter(agent_id__in=agent_ids, status__in=IN_HAND).values("agent_id", "channel")
            .annotate(n=Count("interaction_id")))
    for r in rows:
        loads[r["agent_id"]][r["channel"]] = r["n"]
    return loads


def _view(agent: Agent, load: dict[str, int]) -> domain.AgentView:
    return domain.AgentView(agent_id=agent.user.get_username(), presence=agent.presence,
                            skills={s.skill_id: s.proficiency for s in agent.skills.all()},
                            languages=tuple(agent.languages or ()), capacity=dict(agent.capacity or {}), load=load,
                            voice_with_others=agent.voice_with_others, idle_since=agent.idle_since)


def _candidates(policy: domain.QueuePolicy, work: Work, now: dt.datetime) -> tuple[list[domain.AgentView], int]:
    """The available agents who may take `work` under the step in force, found in SQL; and how many are available.

    PostgreSQL does the filtering that does not depend on scores (presence,
    language, declines, each required skill at its relaxed minimum, a free
    slot on the channel) and returns each candidate's skills and load with
    it, so a decision among 1,000 agents is one query and scores only the
    few who qualify. routing.domain.evaluate checks them all again (the voice
    rule, secondary skills, the preferred agent) before one is chosen, and
    the chosen one's slot is recounted under their row lock.
    """
    _, delta, _ = domain.step_in_force(policy, (now - work.enqueued_at).total_seconds())
    skills = list(policy.skills)
    needed = [max(domain.MIN_PROFICIENCY, policy.skills[k] + delta) for k in skills]
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT u.username, a.presence, a.languages, a.capacity, a.voice_with_others, a.idle_since,
                   (SELECT coalesce(jsonb_object_agg(s.skill_id, s.proficiency), '{}')
                    FROM routing_agentskill s WHERE s.agent_id = a.id),
                   (SELECT coalesce(jsonb_object_agg(l.channel, l.n), '{}')
                    FROM (SELECT w.channel, count(*) AS n FROM routing_work w
                          WHERE w.agent_id = u.username AND w.status IN ('offered', 'assigned')
                          GROUP BY w.channel) l),
                   (SELECT count(*) FROM routing_agent WHERE presence = 'available')
            FROM routing_agent a JOIN auth_user u ON u.id = a.user_id
            WHERE a.presence = 'available'
              AND NOT (u.username = ANY(%(declined)s))
              AND (%(language)s = '' OR a.languages ? %(language)s)
              AND NOT EXISTS (
                  SELECT 1 FROM unnest(%(skills)s::text[], %(needed)s::int[]) AS r(skill, needed)
                  WHERE NOT EXISTS (SELECT 1 FROM routing_agentskill s
                                    WHERE s.agent_id = a.id AND s.skill_id = r.skill AND s.proficiency >= r.needed))
              AND coalesce((a.capacity ->> %(channel)s)::int, 0) > (
                  SELECT count(*) FROM routing_work w
                  WHERE w.agent_id = u.username AND w.channel = %(channel)s AND w.status IN ('offered', 'assigned'))
            """,
            {"declined": list(work.declined_by), "language": policy.language, "skills": skills, "needed": needed,
             "channel": work.channel},
        )
        rows = cur.fetchall()
    available = rows[0][8] if rows else Agent.objects.filter(presence=domain.AVAILABLE).count()
    def js(value):  # Django leaves jsonb as text on raw cursors (JSONField parses it itself)
        return json.loads(value) if isinstance(value, str) else (value or {})

    views = [domain.AgentView(agent_id=r[0], presence=r[1], languages=tuple(js(r[2]) or ()), capacity=js(r[3]),
                              voice_with_others=r[4], idle_since=r[5], skills=js(r[6]), load=js(r[7]))
             for r in rows]
    return views, available


def _preferred_agent(policy: domain.QueuePolicy, work: Work, now: dt.datetime) -> str | None:
    if not policy.preferred_agent_hours:
        return None
    return (Interaction.objects.filter(customer_id=work.customer_id, status=idomain.RESOLVED,
                                       updated_at__gte=now - dt.timedelta(hours=policy.preferred_agent_hours))
            .exclude(agent_id=None).order_by("-updated_at").values_list("agent_id", flat=True).first())


# --- routing ----------------------------------------------------------------------------------------------


def work_route(*, interaction_id: uuid.UUID, now: dt.datetime | None = None) -> domain.Decision | None:
    """Interaction side: offer a waiting interaction to the best available qualified agent.

    Emits routing.InteractionRouted (why) and interactions.InteractionOffered
    in one transaction. Returns the decision (agent_id None: nobody
    qualifies yet; it waits and the sweep tries again as criteria expand),
    or None when the interaction is not waiting or is being changed by
    someone else right now. Idempotent: once offered it is no longer
    waiting, so a re-run (a redelivered task) decides nothing.
    """
    with transaction.atomic():
        row = (Interaction.objects.select_for_update(skip_locked=True)
               .filter(id=interaction_id, status=idomain.QUEUED).first())
        work = Work.objects.filter(interaction_id=interaction_id, status=Work.WAITING).first() if row else None
        if work is None:
            return None
        now = now or timezone.now()
        policy = _policy(work.queue)
        agents, available = _candidates(policy, work, now)
        view = work.view(_preferred_agent(policy, work, now))
        excluded: set[str] = set()
        while True:
            decision = domain.decide_route(policy, view, [a for a in agents if a.agent_id not in excluded], now=now)
            if decision.agent_id is None:
                return decision
            if _reserve(row, work, policy, decision, side="interaction", available=available):
                return decision
            excluded.add(decision.agent_id)  # lost a race for that agent's last slot: next best


def _reserve(row: Interaction, work: Work, policy: domain.QueuePolicy, decision: domain.Decision, *,
             side: str, available: int) -> bool:
    """Lock the chosen agent, recount their load, and offer. False if the agent has no room after all."""
    agent = Agent.objects.select_for_update().select_related("user").filter(user__username=decision.agent_id).first()
    if agent is None or agent.presence != domain.AVAILABLE:
        return False
    view = domain.AgentView(agent_id=decision.agent_id, presence=agent.presence, skills={},
                            capacity=dict(agent.capacity or {}), voice_with_others=agent.voice_with_others,
                            load=_loads([decision.agent_id]).get(decision.agent_id, {}))
    if not domain.has_room(view, work.channel)[0]:  # recounted under the lock: the slot may be gone
        return False
    chosen = next(c for c in decision.candidates if c.agent_id == decision.agent_id)
    _offer(agent, row, work, score=chosen.score, side=side,
           explanation={**decision.explanation(), "available": available})
    return True


def _offer(agent: Agent, row: Interaction, work: Work, *, score: float, side: str, explanation: dict) -> None:
    """Offer `row` to the locked `agent`: the decision and the offer in one append, the expiry, the push."""
    agent_id = agent.user.get_username()
    routed = InteractionRouted(agent_id=agent_id, queue=work.queue, score=score, priority=work.priority, side=side,
                               explanation=explanation)
    interaction_services.interaction_offer(interaction_id=row.id, agent_id=agent_id, meta=SYSTEM, facts=[routed])
    timeout = _offer_timeout(work.queue)
    expires_at = timezone.now() + dt.timedelta(seconds=timeout)
    Work.objects.filter(interaction_id=row.id).update(offer_expires_at=expires_at)
    _defer_expiry(str(row.id), timeout)
    _push_offer(agent, row, work, expires_at)


def _offer_timeout(queue: str) -> int:
    return Queue.objects.filter(name=queue).values_list("offer_timeout_seconds", flat=True).first() or 20


def _defer_expiry(interaction_id: str, timeout: int) -> None:
    def send():
        from routing import tasks

        try:
            tasks.expire_offer.apply_async((interaction_id,), countdown=timeout)
        except Exception:
            log.warning("could not schedule the offer expiry of %s; the sweep expires it", interaction_id,
                        exc_info=True)

    transaction.on_commit(send)


def agent_route(*, agent_id: str, now: dt.datetime | None = None, limit: int = 50) -> list[str]:
    """Agent side: give a free agent the highest-priority, longest-waiting interactions they qualify for.

    Fills the agent's free slots, one offer each (Emits
    routing.InteractionRouted and interactions.InteractionOffered per
    offer). Returns the interaction ids offered. Idempotent: a full or
    unavailable agent gets nothing more.
    """
    offered: list[str] = []
    with transaction.atomic():
        agent = (Agent.objects.select_for_update().select_related("user").prefetch_related("skills")
                 .filter(user__username=agent_id, presence=domain.AVAILABLE).first())
        if agent is None:
            return offered
        now = now or timezone.now()
        policies: dict[str, domain.QueuePolicy] = {}
        load = _loads([agent_id]).get(agent_id, {})
        waiting = (Work.objects.filter(status=Work.WAITING).exclude(declined_by__contains=[agent_id])
                   .order_by("-priority", "enqueued_at")[:limit])
        for work in waiting:
            view = _view(agent, load)
            if not domain.has_room(view, work.channel)[0]:
                continue
            policy = policies.get(work.queue) or policies.setdefault(work.queue, _policy(work.queue))
            step = domain.step_in_force(policy, (now - work.enqueued_at).total_seconds())
            candidate = domain.evaluate(policy, work.view(_preferred_agent(policy, work, now)), view, step=step)
            if not candidate.eligible:
                continue
            row = (Interaction.objects.select_for_update(skip_locked=True)
                   .filter(id=work.interaction_id, status=idomain.QUEUED).first())
            if row is None:
                continue  # someone else is deciding about it right now
            decision = domain.Decision(agent_id, step[0], (now - work.enqueued_at).total_seconds(), (candidate,))
            _offer(agent, row, work, score=candidate.score, side="agent", explanation=decision.explanation())
            load = {**load, work.channel: load.get(work.channel, 0) + 1}
            offered.append(str(row.id))
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
    """The periodic re-evaluation: expired offers, and every waiting interaction routed again.

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
    routed = 0
    for interaction_id in Work.objects.filter(status=Work.WAITING).order_by("-priority", "enqueued_at") \
            .values_list("interaction_id", flat=True)[:500]:
        decision = work_route(interaction_id=interaction_id, now=now)
        routed += bool(decision and decision.agent_id)
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
