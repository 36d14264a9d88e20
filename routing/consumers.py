"""WebSockets of routing: the agent desk's socket and the supervisors' wallboard.

Open with a ticket (POST /api/v1/ws-tickets/, then ?ticket=<ticket>); without a valid one the socket is
closed with 4401, users who may not listen with 4403. The first message is the welcome (each stream's
current `seq` and the REST reads that resync it); every push carries `stream` and `seq`, and a gap means
"read the REST resources again" (README, "Real-time contract"). Messages are hints, REST is the truth.
"""

from urllib.parse import quote

from channels.db import database_sync_to_async

from contactcenter import access, metrics
from contactcenter.realtime import StreamConsumer, ordering
from routing.realtime import WALLBOARD, agent_group, offer_context, queue_live
from routing.selectors import is_supervisor


class _Consumer(StreamConsumer):
    group: str | None = None

    async def connect(self):
        if await self.open_streams():
            metrics.socket_opened(self)  # cc_websocket_connections (docs/OPERATIONS.md)

    async def streams_for(self, user):
        self.group = await database_sync_to_async(self.group_for)(user)
        return [self.group] if self.group else None

    def group_for(self, user) -> str | None:
        """The group this user may listen to, or None (closed with 4403). Each socket says; by default, none."""
        return None

    async def disconnect(self, code):
        metrics.socket_closed(self, code)
        await self.close_streams()


class AgentConsumer(_Consumer):
    """`/ws/agent/`: the user's own offers (with the customer's context), assignments, withdrawals, presence.

    {"type": "routing.offer", "interaction_id", "channel", "queue", "priority", "expires_at", "context"};
    {"type": "routing.assigned" | "routing.withdrawn", "interaction_id", "status"};
    {"type": "routing.presence", "agent_id", "presence", "reason", "since"};
    {"type": "authority.decided", "action_id", "approved", "by", "kind", "amount", "interaction_id"};
    {"type": "intelligence.flag", "interaction_id", "kind", "term", "compound", "effects"} (a red flag on a
    contact the agent is handling: docs/PROTOCOLS.md);
    {"type": "followups.overdue", "followup_id", "customer_id", "agent_id", "due_at", "overdue_seconds"} (one of
    the agent's follow-up tasks is past its due time).
    """

    def resync_for(self):
        me = quote(self.scope["user"].get_username())
        return ["/api/v1/agents/me/", f"/api/v1/interactions/?agent_id={me}&status=offered",
                f"/api/v1/promises/?agent_id={me}"]

    def group_for(self, user):
        from routing.models import Agent

        agent = Agent.objects.filter(user=user).only("pk").first()
        if agent is None:  # 4403: not an agent (the socket is always the caller's own: no one follows another's)
            access.audit(self.scope, outcome="denied", action=f"WS {self.scope.get('path', '')}",
                         reason="not an agent", user=user)
            return None
        return agent_group(agent.pk)

    async def routing_offer(self, message):
        # The context is read here, for a desk that is listening, not by the routing worker.
        context = await database_sync_to_async(offer_context)(message["customer_id"])
        await self.send_json({**message, "context": context})

    routing_assigned = routing_withdrawn = routing_presence = authority_decided = intelligence_flag = (
        followups_overdue) = _Consumer.forward


class WallboardConsumer(_Consumer):
    """`/ws/wallboard/`, for supervisors: their teams' queues' live state and agents' presence (an admin's: all).
    A message about another team's queue or agent arrives as {"type": "wallboard.skipped", "stream", "seq"}.

    {"type": "routing.queue", "queue", "waiting", "offered", "in_hand", "longest_wait_seconds", "agents"};
    {"type": "routing.agent", "agent_id", "presence", "reason", "since"};
    {"type": "routing.alarm", "queue", "longest_wait_seconds", "service_level_seconds"} (every sweep while
    a queue's longest wait is past its service-level threshold);
    {"type": "intelligence.flag", "interaction_id", "kind", "term", "queue", "agent_id", "compound"} (a red
    flag whose policy alerts supervisors: docs/PROTOCOLS.md);
    {"type": "authority.approval", "action_id", "kind", "amount", "agent_id", "interaction_id", "limit",
    "expected_by"} (an action above an agent's authority waits for a supervisor);
    {"type": "followups.escalation" | "followups.escalation_breached", "escalation_id", "interaction_id",
    "agent_id", "target", "queue", "respond_by" | "overdue_seconds"};
    {"type": "followups.overdue", "followup_id", "customer_id", "agent_id", "due_at", "overdue_seconds"} (a
    follow-up task promised to a customer is past its due time).
    """

    def group_for(self, user):
        if is_supervisor(user):
            # A team supervisor sees their teams' agents and queues (contactcenter.access); an admin everything.
            self.agents = access.agent_scope(user)
            self.queues = access.queues_in_scope(user)
            return WALLBOARD
        access.audit(self.scope, outcome="denied", action=f"WS {self.scope.get('path', '')}",
                     reason="the wallboard is for supervisors", user=user)
        return None

    def _in_scope(self, message: dict) -> bool:
        if getattr(self, "agents", None) is None:
            return True
        return message.get("agent_id") in self.agents or message.get("queue") in (self.queues or [])

    async def _scoped(self, message):
        # Outside the supervisor's teams: the message is replaced by a bare tick carrying its `seq`, so the
        # stream shows no gap (a gap means "resync") and nothing of another team's work is told.
        if self._in_scope(message):
            await self.send_json(message)
        else:
            await self.send_json({"type": "wallboard.skipped", **ordering(message)})

    def resync_for(self):
        return ["/api/v1/queues/", "/api/v1/queues/{name}/stats/", "/api/v1/agents/"]

    async def routing_queue(self, message):
        # The worker only names the queue; its state is read here, for a wallboard that is listening.
        # (A burst of hints beyond the channel layer's per-socket capacity is dropped: the seq gap tells.)
        if not self._in_scope(message):
            await self._scoped(message)
            return
        live = await database_sync_to_async(queue_live)(message["queue"])
        await self.send_json({"type": "routing.queue", **live, **ordering(message)})

    routing_agent = routing_alarm = intelligence_flag = authority_approval = _scoped
    followups_escalation = followups_escalation_breached = followups_overdue = _scoped
