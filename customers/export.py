"""The subject-access export: everything we hold about one person, as one document (docs/PRIVACY.md).

A read, never a write: it gathers what the projections and the write-side
rows keep about the customer and everyone merged into them (the same person),
decrypting the personal fields with their keys. An erased customer's export
holds no personal data: it says erased, when, and nothing else.

Sizes: one query per section, and the timeline in one go (a customer's whole
history is hundreds to a few thousand entries, which one document can carry).
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.utils import timezone

from contactcenter.models import AuditEntry
from customers import selectors, services
from customers.identity import Identity
from customers.models import Customer, CustomerIdentity, CustomerProfile
from events import store
from events.crypto import ERASED
from followups.models import Callback, Escalation, FollowUp
from incidents.models import IncidentReport
from interactions.models import Interaction

ACCEPTED = "interactions.InteractionAccepted"
ENDED = "interactions.InteractionEnded"
WRAPPED_UP = "interactions.InteractionWrappedUp"
LINKED = "customers.IdentityLinked"
REGISTERED = "customers.CustomerRegistered"


def customer_export(customer_id: uuid.UUID, *, now: dt.datetime | None = None) -> dict:
    """The export of one customer (Customer.DoesNotExist: no such customer, 404).

    Sections: `profile` and `preferences`; `identities` (every phone number,
    address and handle ever linked, with whether it still leads to them);
    `timeline` (every entry, personal fields decrypted); `interactions`
    (channel, times, status, end reason, dispositions); `callbacks`,
    `followups`, `escalations`, `actions` (promises and what was done for
    them); `surveys` (scores and comments); `incident_reports` (as filed, with
    amendments); `script_runs` (what they answered at each step); `access_log`
    (who read their data, from the audit log). Customers merged into this one
    are listed in `merged_from` and their data is included.
    """
    customer = Customer.objects.get(id=customer_id)
    doc: dict = {"customer_id": customer.id, "exported_at": now or timezone.now(),
                 "erased": customer.erased_at is not None, "erased_at": customer.erased_at,
                 "merged_into": customer.merged_into, "merged_from": [], "profile": None, "preferences": None,
                 "identities": [], "timeline": [], "interactions": [], "callbacks": [], "followups": [],
                 "escalations": [], "actions": [], "surveys": [], "incident_reports": [], "script_runs": [],
                 "access_log": []}
    if customer.erased_at is not None:
        return doc  # the key is gone: nothing personal is left to give, and none is given
    merged = _merged_from(customer.id)
    ids = [customer.id, *merged]
    doc["merged_from"] = merged
    profile = CustomerProfile.objects.filter(customer_id=customer.id).first()
    if profile is not None:
        doc["profile"] = {"display_name": profile.display_name, "email": profile.email, "phone": profile.phone,
                          "vip_tier": profile.vip_tier, "tags": profile.tags, "notes": profile.notes,
                          "registered_at": profile.registered_at, "last_event_at": profile.last_event_at}
        doc["preferences"] = {"preferred_channel": profile.preferred_channel, "language": profile.language,
                              "contact_hours": profile.contact_hours}
    doc["identities"] = _identities(customer.id, ids)
    timeline = selectors.timeline_open(list(selectors.timeline_list(customer.id).order_by("occurred_at",
                                                                                          "position")))
    doc["timeline"] = [{"occurred_at": e.occurred_at, "channel": e.channel, "event_type": e.event_type,
                        "stream_type": e.stream_type, "stream_id": e.stream_id, "actor": e.actor, "data": e.data}
                       for e in timeline]
    by_stream: dict = {}
    for e in timeline:
        by_stream.setdefault(e.stream_id, []).append(e)
    doc["interactions"] = _interactions(ids, by_stream)
    doc["callbacks"] = [
        {"id": c.id, "reason": c.reason, "due_at": c.due_at, "channel": c.channel, "status": c.status,
         "agent_id": c.agent_id, "created_at": c.created_at, "interaction_id": c.interaction_id,
         "note": _first(by_stream.get(c.id, []), "followups.CallbackScheduled", "note")}
        for c in Callback.objects.filter(customer_id__in=ids).order_by("created_at")]
    doc["followups"] = [
        {"id": f.id, "note": f.note, "due_at": f.due_at, "status": f.status, "agent_id": f.agent_id,
         "interaction_id": f.interaction_id, "created_at": f.created_at, "closed_at": f.closed_at}
        for f in FollowUp.objects.filter(customer_id__in=ids).order_by("created_at")]
    doc["escalations"] = [
        {"id": e.id, "interaction_id": e.interaction_id, "reason": e.reason, "target": e.target,
         "respond_by": e.respond_by, "status": e.status, "created_at": e.created_at}
        for e in Escalation.objects.filter(customer_id__in=ids).order_by("created_at")]
    doc["actions"] = _actions(ids)
    doc["surveys"] = _surveys(ids, by_stream)
    doc["incident_reports"] = [
        {"id": r.id, "interaction_id": r.interaction_id, "kind": r.kind, "channel": r.channel,
         "contact_started_at": r.contact_started_at, "contact_details": r.contact_details,
         "description": r.description, "agent_responses": r.agent_responses,
         "deescalation_steps": r.deescalation_steps, "warnings": r.warnings, "action_taken": r.action_taken,
         "follow_up_actions": r.follow_up_actions, "amendments": r.amendments, "created_at": r.created_at}
        for r in IncidentReport.objects.filter(customer_id__in=ids).order_by("created_at")]
    doc["script_runs"] = _script_runs(ids)
    doc["access_log"] = [
        {"at": a.at, "username": a.username, "action": a.action, "outcome": a.outcome}
        for a in AuditEntry.objects.filter(object_type="customer", object_id__in=[str(i) for i in ids])
        .order_by("at", "id")]
    return doc


def _merged_from(customer_id: uuid.UUID) -> list[uuid.UUID]:
    """Everyone merged into this customer, along chains (write-side rows: no projection lag)."""
    found: list[uuid.UUID] = []
    frontier = [customer_id]
    while frontier:
        frontier = list(Customer.objects.filter(merged_into__in=frontier).order_by("id").values_list("id", flat=True))
        found += frontier
    return found


def _identities(customer_id: uuid.UUID, ids: list[uuid.UUID]) -> list[dict]:
    """Every identity ever linked to them (from their streams, decrypted); `linked`: it still leads here."""
    leading = set(CustomerIdentity.objects.filter(customer_id=customer_id).values_list("key_hash", flat=True))
    seen, out = set(), []
    for cid in ids:
        for env in store.read_stream(cid):
            if env.event_type != LINKED or env.data.get("value") in (None, ERASED):
                continue
            ident = Identity(env.data["kind"], env.data["value"], env.data.get("provider") or "")
            if ident.key in seen:
                continue
            seen.add(ident.key)
            out.append({"kind": ident.kind, "value": ident.value, "provider": ident.provider,
                        "linked_at": env.occurred_at, "linked": services.identity_hash(ident) in leading})
    return out


def _interactions(ids: list[uuid.UUID], by_stream: dict) -> list[dict]:
    out = []
    for i in Interaction.objects.filter(customer_id__in=ids).order_by("created_at", "id"):
        entries = by_stream.get(i.id, [])
        ended = next((e for e in entries if e.event_type == ENDED), None)
        out.append({
            "id": i.id, "case_id": i.case_id, "channel": i.channel, "direction": i.direction, "status": i.status,
            "queue": i.queue, "agent_id": i.agent_id, "started_at": i.created_at,
            "answered_at": next((e.occurred_at for e in entries if e.event_type == ACCEPTED), None),
            "ended_at": ended.occurred_at if ended else None,
            "end_reason": ended.data.get("reason") if ended else None,
            "dispositions": [e.data.get("disposition") for e in entries if e.event_type == WRAPPED_UP]})
    return out


def _actions(ids: list[uuid.UUID]) -> list[dict]:
    from authority.models import Action

    return [{"id": a.id, "interaction_id": a.interaction_id, "kind": a.kind, "amount": str(a.amount),
             "reason": a.reason, "status": a.status, "created_at": a.created_at, "done_at": a.done_at}
            for a in Action.objects.filter(customer_id__in=ids).order_by("created_at")]


def _surveys(ids: list[uuid.UUID], by_stream: dict) -> list[dict]:
    from quality.models import Survey

    return [{"id": s.id, "interaction_id": s.interaction_id, "channel": s.channel, "kind": s.kind,
             "sent_at": s.sent_at, "answered_at": s.answered_at, "csat": s.csat, "nps": s.nps,
             "comment": _first(by_stream.get(s.id, []), "quality.SurveyAnswered", "comment")}
            for s in Survey.objects.filter(customer_id__in=ids).order_by("sent_at")]


def _script_runs(ids: list[uuid.UUID]) -> list[dict]:
    from frameworks.models import ScriptRun

    return [{"interaction_id": r.interaction_id, "script": str(r.script), "answers": r.completed,
             "started_at": r.started_at}
            for r in ScriptRun.objects.select_related("script").filter(customer_id__in=ids).order_by("started_at")]


def _first(entries: list, event_type: str, name: str):
    return next((e.data.get(name) for e in entries if e.event_type == event_type), None)
