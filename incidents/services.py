"""Incident reports: filed by the agent on the contact (or a supervisor), immutable, amended by new events,
read only by supervisors, compliance and the agent who filed it, every read on record (docs/PROTOCOLS.md)."""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

from events import store
from events.store import Metadata
from incidents.events import IncidentAmended, IncidentRead, IncidentReported
from incidents.models import IncidentReport
from interactions import domain as idomain

REQUIRED = ("description", "agent_responses", "deescalation_steps", "action_taken", "supervisor")
AMENDABLE = ("description", "agent_responses", "deescalation_steps", "follow_up_actions", "contact_details")


def incident_file(*, interaction_id: uuid.UUID, filed_by: str, kind: str, description: str, agent_responses: str,
                  deescalation_steps: str, action_taken: str, supervisor: str, meta: Metadata,
                  follow_up_actions: str = "") -> IncidentReport:
    """File a report about one contact. Emits incidents.IncidentReported. The contact's date, time, duration,
    channel, customer and contact details and the warnings given come from its events; the agent's account
    is required in full (`InvalidValue` names the first missing field)."""
    from customers.models import CustomerProfile
    from interactions.models import Interaction

    values = {"description": description, "agent_responses": agent_responses,
              "deescalation_steps": deescalation_steps, "action_taken": action_taken, "supervisor": supervisor}
    for name in REQUIRED:
        if not str(values[name] or "").strip():
            raise idomain.InvalidValue(name, f"{name} is required in an incident report")
    if kind not in IncidentReport.KINDS:
        raise idomain.InvalidValue("kind", f"unknown kind {kind!r}; known: {', '.join(IncidentReport.KINDS)}")
    if action_taken not in IncidentReport.ACTIONS:
        raise idomain.InvalidValue("action_taken", f"unknown action {action_taken!r}; known: "
                                                   f"{', '.join(IncidentReport.ACTIONS)}")
    if not _is_supervisor_name(supervisor):
        raise idomain.InvalidValue("supervisor", f"{supervisor!r} is not a supervisor")
    interaction = Interaction.objects.filter(id=interaction_id).first()
    if interaction is None:
        raise idomain.InvalidValue("interaction_id", "no such interaction")
    history = store.read_stream(interaction.id)
    started = history[0].occurred_at
    ended = next((e for e in history if e.event_type == "interactions.InteractionEnded"), None)
    answered = next((e for e in history if e.event_type == "interactions.InteractionAccepted"), None)
    duration = ended.data.get("duration_seconds") if ended else None
    if duration is None and ended is not None and answered is not None:
        duration = int((ended.occurred_at - answered.occurred_at).total_seconds())
    warnings = [f"{e.occurred_at.isoformat()} {e.data['reason']}: {e.data.get('text', '')}".strip()
                for e in history if e.event_type == "interactions.WarningGiven"]
    profile = CustomerProfile.objects.filter(customer_id=interaction.customer_id).first()
    details = "; ".join(x for x in ([profile.display_name, profile.phone, profile.email] if profile else []) if x)
    report_id = store.uuid7()
    reported = IncidentReported(
        interaction_id=interaction.id, agent_id=filed_by, kind=kind, contact_started_at=started.isoformat(),
        duration_seconds=duration, channel=interaction.channel, action_taken=action_taken, supervisor=supervisor,
        contact_details=details, description=idomain.masked(description),
        agent_responses=idomain.masked(agent_responses), deescalation_steps=idomain.masked(deescalation_steps),
        follow_up_actions=idomain.masked(follow_up_actions), warnings=warnings)
    with transaction.atomic():
        store.append(stream_type="incident", stream_id=report_id, customer_id=interaction.customer_id,
                     events=[reported], expected_version=0, meta=meta)
        return IncidentReport.objects.create(
            id=report_id, interaction_id=interaction.id, customer_id=interaction.customer_id, agent_id=filed_by,
            kind=kind, contact_started_at=started, duration_seconds=duration, channel=interaction.channel,
            contact_details=details, description=reported.description, agent_responses=reported.agent_responses,
            deescalation_steps=reported.deescalation_steps, warnings=warnings, action_taken=action_taken,
            supervisor=supervisor, follow_up_actions=reported.follow_up_actions, version=1)


def incident_amend(*, report_id: uuid.UUID, field_name: str, value: str, reason: str, by: str,
                   meta: Metadata) -> IncidentReport:
    """Add to or correct one field; the filed text stays, the amendment follows it. Emits
    incidents.IncidentAmended."""
    if field_name not in AMENDABLE:
        raise idomain.InvalidValue("field", f"amend one of {', '.join(AMENDABLE)}")
    if not value.strip() or not reason.strip():
        raise idomain.InvalidValue("value" if not value.strip() else "reason", "an amendment needs a value and "
                                                                              "a reason")
    with transaction.atomic():
        report = IncidentReport.objects.select_for_update().get(id=report_id)
        amended = IncidentAmended(field_name=field_name, by=by, value=idomain.masked(value),
                                  reason=idomain.masked(reason))
        _append(report, amended, meta)
        report.amendments = [*report.amendments, {"field": field_name, "value": amended.value,
                                                  "reason": amended.reason, "by": by,
                                                  "at": timezone.now().isoformat()}]
        report.save(update_fields=["amendments", "version"])
    return report


def incident_read(*, report: IncidentReport, by: str, meta: Metadata) -> None:
    """Record that `by` opened the report (an event on its stream; never skipped)."""
    with transaction.atomic():
        locked = IncidentReport.objects.select_for_update().get(id=report.id)
        _append(locked, IncidentRead(by=by), meta)
        locked.save(update_fields=["version"])


def _append(report: IncidentReport, event, meta: Metadata) -> None:
    store.append(stream_type="incident", stream_id=report.id, customer_id=report.customer_id, events=[event],
                 expected_version=report.version, meta=meta)
    report.version += 1


def _is_supervisor_name(username: str) -> bool:
    from django.contrib.auth import get_user_model

    from routing.selectors import is_supervisor

    user = get_user_model().objects.filter(username=username).first()
    return user is not None and is_supervisor(user)
