"""Reads of promises to customers."""

from __future__ import annotations

import uuid

from django.utils import timezone

from followups.models import Callback, Escalation, FollowUp


def open_promises(*, agent_ids: list[str] | None = None, customer_ids: list[uuid.UUID] | None = None,
                  limit: int = 500) -> list[dict]:
    """Everything still owed to customers, soonest due first: callbacks scheduled or under way, open follow-up
    tasks and escalations not yet taken up; some agents' (promised by them) or customers', or all."""
    now, filters = timezone.now(), {}
    if agent_ids is not None:
        filters["agent_id__in"] = agent_ids
    if customer_ids is not None:
        filters["customer_id__in"] = customer_ids
    items = [{"kind": "callback", "id": c.id, "customer_id": c.customer_id, "agent_id": c.agent_id,
              "due_at": c.due_at, "status": c.status, "overdue": c.status == "scheduled" and c.due_at < now,
              "what": f"call back ({c.reason}) on {c.channel}", "interaction_id": c.origin_interaction_id}
             for c in Callback.objects.filter(status__in=Callback.OPEN, **filters)[:limit]]
    items += [{"kind": "followup", "id": f.id, "customer_id": f.customer_id, "agent_id": f.agent_id,
               "due_at": f.due_at, "status": f.status, "overdue": f.due_at < now, "what": f.note,
               "interaction_id": f.interaction_id}
              for f in FollowUp.objects.filter(status=FollowUp.OPEN, **filters)[:limit]]
    items += [{"kind": "escalation", "id": e.id, "customer_id": e.customer_id, "agent_id": e.agent_id,
               "due_at": e.respond_by, "status": e.status, "overdue": e.respond_by < now,
               "what": f"escalated to {e.queue or e.target}: {e.reason}", "interaction_id": e.interaction_id}
              for e in Escalation.objects.filter(status=Escalation.OPEN, **filters)[:limit]]
    return sorted(items, key=lambda i: i["due_at"])[:limit]
