"""Who may read incident reports: supervisors (staff or team supervisors), compliance (the permission
`incidents.read_incident_reports`, given by the `compliance` group), and the agent who filed one."""

from __future__ import annotations

from django.db.models import QuerySet

from incidents.models import IncidentReport


def reads_all(user) -> bool:
    from routing.selectors import is_supervisor

    return is_supervisor(user) or user.has_perm("incidents.read_incident_reports")


def readable(user) -> QuerySet[IncidentReport]:
    reports = IncidentReport.objects.all()
    return reports if reads_all(user) else reports.filter(agent_id=user.get_username())
