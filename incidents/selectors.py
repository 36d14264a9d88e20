"""Who may read incident reports: compliance (the permission `incidents.read_incident_reports`, given by the
`compliance` group) and admins every one; a supervisor those filed by the agents of their teams; an agent the
ones they filed. Nobody else (contactcenter.access)."""

from __future__ import annotations

from django.db.models import QuerySet

from incidents.models import IncidentReport


def reads_all(user) -> bool:
    from contactcenter import access

    return access.reads_everything(user)


def readable(user) -> QuerySet[IncidentReport]:
    from contactcenter import access

    reports = IncidentReport.objects.all()
    if reads_all(user):
        return reports
    if access.is_supervisor(user):
        return access.by_agent(user, reports)
    return reports.filter(agent_id=user.get_username())
