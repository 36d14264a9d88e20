"""Incident reports: file one, list the ones you may read, read one (on record), amend one."""

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from contactcenter import access
from contactcenter.api import ErrorSerializer, command_meta, valid
from contactcenter.models import Served
from incidents import selectors, services
from incidents.api import serializers as s
from interactions.models import Interaction


class IncidentList(APIView):
    @extend_schema(responses={200: s.IncidentSummary(many=True)})
    def get(self, request):
        """Reports you may read, newest first, without their narrative: supervisors and compliance see all,
        an agent the ones they filed. Reading one (GET .../{id}/) is recorded."""
        return Response(s.IncidentSummary(selectors.readable(request.user)[:500], many=True).data)

    @extend_schema(request=s.IncidentInput, responses={201: s.IncidentOutput, 400: ErrorSerializer,
                                                       403: ErrorSerializer})
    def post(self, request):
        """File a report about a contact you handled (or, as a supervisor, any). Every field of your account is
        required; the contact's facts come from its events. Filed, it cannot change: amend it."""
        data = valid(s.IncidentInput, request.data)
        access.require_named(request, data)  # 404 for a contact outside your scope
        interaction = Interaction.objects.filter(id=data["interaction_id"]).first()
        username = request.user.get_username()
        handled = Served.objects.filter(agent_id=username, interaction_id=data["interaction_id"]).exists()
        if interaction is None or (interaction.agent_id != username and not handled
                                   and not access.is_supervisor(request.user)):
            raise PermissionDenied("file a report about a contact you handled")
        report = services.incident_file(filed_by=username, meta=command_meta(request), **data)
        return Response(s.IncidentOutput(report).data, status=201)


def _report(request, report_id):
    report = selectors.readable(request.user).filter(id=report_id).first()
    if report is None:  # also when it exists but is not yours to read: on record, and its existence does not leak
        access.deny(request, action=f"{request.method} {request.path}", object_type="incident_report",
                    object_id=report_id, message="no such incident report")
    return report


class IncidentDetail(APIView):
    @extend_schema(responses={200: s.IncidentOutput, 404: ErrorSerializer})
    def get(self, request, report_id):
        """The whole report with its amendments. This read is recorded (incidents.IncidentRead)."""
        report = _report(request, report_id)
        services.incident_read(report=report, by=request.user.get_username(), meta=command_meta(request))
        access.audit(request, outcome="read", action="incidents.read", object_type="incident_report",
                     object_id=report.id)
        return Response(s.IncidentOutput(report).data)


class IncidentAmend(APIView):
    @extend_schema(request=s.AmendInput, responses={200: s.IncidentOutput, 400: ErrorSerializer,
                                                    403: ErrorSerializer, 404: ErrorSerializer})
    def post(self, request, report_id):
        """Add to or correct one field (the agent who filed it, or a supervisor): the filed text stays."""
        report = _report(request, report_id)
        username = request.user.get_username()
        if report.agent_id != username and not access.is_supervisor(request.user):
            raise PermissionDenied("only the agent who filed it or a supervisor amends a report")
        data = valid(s.AmendInput, request.data)
        report = services.incident_amend(report_id=report.id, field_name=data["field"], value=data["value"],
                                         reason=data["reason"], by=username, meta=command_meta(request))
        return Response(s.IncidentOutput(report).data)
