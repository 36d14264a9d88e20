"""Reports: KPIs over any window, grouped as asked, as JSON or CSV."""

import csv
import io
import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from contactcenter.api import ErrorSerializer, command_meta, valid
from events.store import Actor, Metadata
from interactions import webhooks
from interactions.domain import InvalidValue
from quality import kpis, services
from quality.api import serializers as s
from quality.models import Survey


class CsvRenderer(BaseRenderer):
    """`?format=csv`: the report's rows, one per line, with a header; an error stays JSON text."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if not isinstance(data, dict) or "rows" not in data:
            return json.dumps(data)
        measures = list(data["rows"][0]) if data["rows"] else ["value"]
        columns = [*data["group_by"], *(c for c in measures if c not in data["group_by"])]
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["metric", *columns])
        for row in data["rows"]:
            writer.writerow([data["metric"], *(row.get(c) for c in columns)])
        return out.getvalue()


def may_read_reports(user) -> bool:
    """Staff and team supervisors read KPIs; agents do not (their own figures come with evaluations)."""
    return user.is_staff or user.supervised_teams.exists()


class KpiReportView(APIView):
    renderer_classes = [JSONRenderer, CsvRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter("metric", str, enum=sorted(kpis.metrics()), required=True,
                             description="; ".join(f"`{m.name}`: {m.definition}" for m in kpis.metrics().values())),
            OpenApiParameter("group_by", str, description=f"comma-separated, any of {', '.join(kpis.GROUPS)}"),
            OpenApiParameter("from", OpenApiTypes.DATETIME, required=True, description="start of the window"),
            OpenApiParameter("to", OpenApiTypes.DATETIME, required=True, description="end of the window (exclusive)"),
            OpenApiParameter("tz", str, description="time zone of the hour/day/week groups (default UTC)"),
            OpenApiParameter("format", str, enum=["json", "csv"], description="csv: the rows as CSV"),
        ],
        responses={200: s.KpiReport, 400: ErrorSerializer, 403: ErrorSerializer,
                   (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="the rows as CSV")},
    )
    def get(self, request):
        """A KPI (definitions in docs/KPIS.md) over [from, to), grouped by agent, team, queue, channel and/or
        hour, day or week. For staff and team supervisors."""
        if not may_read_reports(request.user):
            raise PermissionDenied("reports are for supervisors")
        q = valid(s.KpiQuery, request.query_params)
        metric = kpis.metrics()[q["metric"]]
        try:
            rows = kpis.report(q["metric"], q["group_by"], q["start"], q["to"], q["tz"])
        except kpis.Ungroupable as exc:
            raise ValidationError({"group_by": [str(exc)]}) from None
        return Response({"metric": metric.name, "kind": metric.kind, "definition": metric.definition,
                         "group_by": q["group_by"], "from": q["start"].isoformat(), "to": q["to"].isoformat(),
                         "rows": rows})


def _survey(survey_id) -> Survey:
    survey = Survey.objects.filter(id=survey_id).first()
    if survey is None:
        raise NotFound("no such survey")
    return survey


class SurveyView(APIView):
    @extend_schema(responses={200: s.SurveyOutput, 403: ErrorSerializer, 404: ErrorSerializer})
    def get(self, request, survey_id):
        """A satisfaction survey: what was asked, of whom, and the answer. For staff and team supervisors."""
        if not may_read_reports(request.user):
            raise PermissionDenied("surveys are for supervisors")
        return Response(s.SurveyOutput(_survey(survey_id)).data)


class SurveyAnswerView(APIView):
    @extend_schema(request=s.SurveyAnswerInput,
                   responses={201: s.SurveyOutput, 200: OpenApiResponse(s.SurveyOutput, description="the same "
                              "answer again: counted once"), 400: ErrorSerializer, 403: ErrorSerializer,
                              404: ErrorSerializer, 409: ErrorSerializer})
    def post(self, request, survey_id):
        """Record the customer's answer (a survey page or IVR integration: staff, or the permission
        `quality.answer_survey`). It counts once: a different second answer is 409."""
        if not (request.user.is_staff or request.user.has_perm("quality.answer_survey")):
            raise PermissionDenied("only a survey integration records answers")
        _survey(survey_id)
        data = valid(s.SurveyAnswerInput, request.data)
        survey, repeated = services.survey_answer(survey_id=survey_id, meta=command_meta(request), via="api", **data)
        return Response(s.SurveyOutput(survey).data, status=200 if repeated else 201)


class SurveyWebhookView(APIView):
    """A provider relays the customer's survey answer, signed like the channel webhooks (docs/WEBHOOKS.md)."""

    authentication_classes = []  # the HMAC signature is the authentication, checked before anything is read
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="survey_webhook_receive",
        parameters=[OpenApiParameter("X-Signature", str, OpenApiParameter.HEADER, required=True),
                    OpenApiParameter("X-Timestamp", str, OpenApiParameter.HEADER, required=True)],
        request=s.SurveyWebhookInput,
        responses={201: s.SurveyOutput, 200: OpenApiResponse(s.SurveyOutput, description="a repeated delivery"),
                   400: ErrorSerializer, 401: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
        auth=[],
    )
    def post(self, request, provider: str):
        secret = webhooks.secret_for(provider)
        raw = request.body
        if len(raw) > webhooks.MAX_BYTES:
            raise webhooks.BodyTooLarge()
        webhooks.verify(secret=secret, timestamp=request.META.get(webhooks.TIMESTAMP_HEADER),
                        signature=request.META.get(webhooks.SIGNATURE_HEADER), body=raw)
        try:
            payload = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidValue("payload", f"the body is not JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise InvalidValue("payload", "the body must be a JSON object")
        data = valid(s.SurveyWebhookInput, payload)
        survey_id = data.pop("survey_id")
        _survey(survey_id)
        meta = Metadata(actor=Actor("provider", f"survey/{provider}", provider))
        survey, repeated = services.survey_answer(survey_id=survey_id, meta=meta, via=f"webhook/{provider}", **data)
        return Response(s.SurveyOutput(survey).data, status=200 if repeated else 201)
