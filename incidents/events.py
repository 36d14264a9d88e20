"""Events of incident reports (stream_type "incident", stream_id = the report's id). A report is immutable once
filed: corrections are amendments, each its own event; every reading of a report is recorded too."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from events.registry import event, pii


@event("incidents.IncidentReported", version=1, emitted_by="incidents.services.incident_file")
@dataclass(frozen=True)
class IncidentReported:
    """An incident report about an abusive or threatening contact, or one ended early. The contact's facts
    (`contact_started_at`, `duration_seconds`, `channel`, `contact_details`, `warnings`) are taken from the
    interaction's events; the rest is the agent's account."""

    interaction_id: uuid.UUID
    agent_id: str
    kind: str
    contact_started_at: str
    duration_seconds: int | None
    channel: str
    action_taken: str
    supervisor: str
    contact_details: str = pii(default="")
    description: str = pii(default="")
    agent_responses: str = pii(default="")
    deescalation_steps: str = pii(default="")
    follow_up_actions: str = pii(default="")
    warnings: list[str] = pii(default_factory=list)  # the words of each warning given (WarningGiven.text: personal)


@event("incidents.IncidentAmended", version=1, emitted_by="incidents.services.incident_amend")
@dataclass(frozen=True)
class IncidentAmended:
    """An addition or correction to one field of a filed report, by `by`, with why; the original stays."""

    field_name: str
    by: str
    value: str = pii(default="")
    reason: str = pii(default="")


@event("incidents.IncidentRead", version=1, emitted_by="incidents.services.incident_read")
@dataclass(frozen=True)
class IncidentRead:
    """Someone opened the report (every read of a report is on record)."""

    by: str
