"""Reports: KPIs over any window, grouped as asked, as JSON or CSV."""

import csv
import io
import json
from urllib.parse import urlencode

from django.db.models.expressions import RawSQL
from django.http import Http404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from contactcenter import access
from contactcenter.api import ErrorSerializer, command_meta, valid
from contactcenter.pagination import CappedCursorPagination
from contactcenter.parsers import InputRefused
from events.store import Actor, Metadata
from frameworks.selectors import run_view
from interactions import webhooks
from quality import kpis, services
from quality.api import serializers as s
from quality.models import Evaluation, InteractionFact, ReviewSample, Scorecard, Survey
from routing.selectors import is_supervisor


class CsvRenderer(BaseRenderer):
    """`?format=csv`: the report's rows, one per line, with a header; an error stays JSON text."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if not isinstance(data, dict) or "rows" not in data:
            return json.dumps(data)
        # The drill-down link is for API clients; a spreadsheet gets the figures.
        measures = [c for c in data["rows"][0] if c != "drilldown"] if data["rows"] else ["value"]
        columns = [*data["group_by"], *(c for c in measures if c not in data["group_by"])]
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["metric", *columns])
        for row in data["rows"]:
            writer.writerow([data["metric"], *(row.get(c) for c in columns)])
        return out.getvalue()


def may_read_reports(user) -> bool:
    """Staff and team supervisors read KPIs; agents do not (their own figures come with evaluations)."""
    return is_supervisor(user)


def _report_scope(user) -> tuple[list[str], list[str]] | None:
    """A team supervisor's figures count their teams' agents and queues only; an admin's count everything."""
    agents = access.agent_scope(user)
    return None if agents is None else (agents, access.queues_in_scope(user) or [])


class FormatNegotiation(DefaultContentNegotiation):
    """`?format=` other than json or csv is a 400 naming `format` (DRF answers 404, as if the report were gone)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except Http404:
            raise InputRefused("format must be json or csv", code="invalid", field="format") from None


class KpiReportView(APIView):
    renderer_classes = [JSONRenderer, CsvRenderer]
    content_negotiation_class = FormatNegotiation

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        # A refusal is JSON, as documented and as everywhere else, even when ?format=csv asked for CSV rows.
        self.request.accepted_renderer, self.request.accepted_media_type = JSONRenderer(), "application/json"
        return response

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
            rows = kpis.report(q["metric"], q["group_by"], q["start"], q["to"], q["tz"],
                               scope=_report_scope(request.user))
        except kpis.Ungroupable as exc:
            raise ValidationError({"group_by": [str(exc)]}) from None
        for row in rows:
            row["drilldown"] = None if metric.name == "occupancy" else drilldown_link(q, row)
        return Response({"metric": metric.name, "kind": metric.kind, "definition": metric.definition,
                         "group_by": q["group_by"], "from": q["start"].isoformat(), "to": q["to"].isoformat(),
                         "rows": rows})


def drilldown_link(q: dict, row: dict) -> str:
    """The drill-down path of one report row: the report's own query plus the row's group values (a null group
    given empty), so it opens exactly the contacts that row counted."""
    query = {"metric": q["metric"], "from": q["start"].isoformat(), "to": q["to"].isoformat(), "tz": q["tz"]}
    if q["group_by"]:
        query["group_by"] = ",".join(q["group_by"])
    query.update({g: "" if row[g] is None else row[g] for g in q["group_by"]})
    return f"{reverse('report-kpis-drilldown')}?{urlencode(query)}"


class ContactsInOrder(CappedCursorPagination):
    ordering = ("created_at", "interaction_id")


class KpiDrilldownView(APIView):
    pagination_class = ContactsInOrder

    @extend_schema(
        parameters=[
            OpenApiParameter("metric", str, enum=sorted(set(kpis.metrics()) - {"occupancy"}), required=True),
            OpenApiParameter("group_by", str, description="the report's grouping, as its row's link gives it"),
            OpenApiParameter("from", OpenApiTypes.DATETIME, required=True),
            OpenApiParameter("to", OpenApiTypes.DATETIME, required=True),
            OpenApiParameter("tz", str, description="as the report's (default UTC)"),
            *(OpenApiParameter(g, str, description=f"required when group_by names {g}: the row's {g} (empty for "
                                                   "none); a time group by the row's label")
              for g in kpis.GROUPS),
            OpenApiParameter("page_size", int), OpenApiParameter("cursor", str),
        ],
        responses={200: s.KpiDrilldown, 400: ErrorSerializer, 403: ErrorSerializer},
    )
    def get(self, request):
        """The contacts behind one KPI figure (a report row's `drilldown` link): each with how it counts
        (numerator or only the denominator, its seconds, its NPS group), its times, a link to the interaction
        and to its routing decisions, and the stored events its fact came from. Over every page they add up to
        `figure` exactly: both come from the one query definition. Oldest contact first. For staff and team
        supervisors (their teams' contacts only, as in the report)."""
        if not may_read_reports(request.user):
            raise PermissionDenied("reports are for supervisors")
        q = valid(s.KpiDrilldownQuery, request.query_params)
        metric = kpis.metrics()[q["metric"]]
        scope = _report_scope(request.user)
        args = (q["metric"], q["group_by"], q["start"], q["to"], q["tz"])
        try:
            sql, values = kpis.drilldown_ids_sql(*args, scope=scope, match=q["match"])
            found = kpis.report(*args, scope=scope, match=q["match"])
        except kpis.NoSuchGroup as exc:
            raise ValidationError({exc.field: [str(exc)]}) from None
        empty = {"ratio": ("numerator", "denominator"), "nps": ("net_promoters", "responses"),
                 "mean_seconds": ("total_seconds", "count")}[metric.kind]
        figure = found[0] if found else {**q["match"], "value": None, **{k: 0 for k in empty}}
        paginator = self.pagination_class()
        # The SQL is kpis.facts_sql's own text (metric definitions, group keys); every value is a bound parameter.
        ids_in_figure = RawSQL(sql, values)  # nosec B611
        page = paginator.paginate_queryset(InteractionFact.objects.filter(interaction_id__in=ids_in_figure), request,
                                           view=self)
        ids = [f.interaction_id for f in page]
        parts, events, repeats = kpis.row_parts(metric.name, ids), kpis.fact_events(ids), kpis.repeat_contacts(ids)
        rows = [self._row(metric, fact, parts.get(fact.interaction_id), events.get(fact.interaction_id, []),
                          repeats.get(fact.interaction_id)) for fact in page]
        links = paginator.get_paginated_response(rows).data
        return Response(s.KpiDrilldown({
            "metric": metric.name, "kind": metric.kind, "group": q["match"], "figure": figure,
            "next": links["next"], "previous": links["previous"], "results": rows}).data)

    @staticmethod
    def _row(metric, fact: InteractionFact, part, events: list[dict], repeat) -> dict:
        row = {name: getattr(fact, name) for name in s.DrilldownRow._declared_fields if hasattr(fact, name)}
        if metric.kind == "ratio":
            row["counted_as"] = "numerator" if part else "denominator_only"
        elif metric.kind == "nps":
            row["counted_as"] = part
        else:
            row["counted_as"], row["seconds"] = "seconds", part
        row["interaction"] = f"/api/v1/interactions/{fact.interaction_id}/"
        row["routing"] = f"/api/v1/interactions/{fact.interaction_id}/routing/"
        row["events"] = events
        row["repeat_contact_id"] = repeat
        return row


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
        survey = _survey(survey_id)
        if not access.may_see_interaction(request.user, survey.interaction_id):  # a contact of your teams
            access.deny(request, action=f"{request.method} {request.path}", object_type="survey",
                        object_id=survey_id)  # "no such survey", as for one that does not exist
        return Response(s.SurveyOutput(survey).data)


class SurveyAnswerView(APIView):
    @extend_schema(request=s.SurveyAnswerInput,
                   responses={201: s.SurveyOutput, 200: OpenApiResponse(s.SurveyOutput, description="the same "
                              "answer again: counted once"), 400: ErrorSerializer, 403: ErrorSerializer,
                              404: ErrorSerializer, 409: ErrorSerializer})
    def post(self, request, survey_id):
        """Record the customer's answer (a survey page or IVR integration: staff, or the permission
        `quality.answer_survey`). It counts once: a different second answer is 409."""
        if not (access.is_admin(request.user) or request.user.has_perm("quality.answer_survey")):
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
        data = valid(s.SurveyWebhookInput, webhooks.signed_payload(request, provider), strict=False)
        if "interaction_id" in data:
            found = Survey.objects.filter(interaction_id=data.pop("interaction_id")).values_list("id", flat=True)
            if not found:
                raise NotFound("no survey of that interaction")
            survey_id = found[0]
        else:
            survey_id = data.pop("survey_id")
            _survey(survey_id)
        meta = Metadata(actor=Actor("provider", f"survey/{provider}", provider))
        survey, repeated = services.survey_answer(survey_id=survey_id, meta=meta, via=f"webhook/{provider}", **data)
        return Response(s.SurveyOutput(survey).data, status=200 if repeated else 201)


# --- scorecards and evaluations ----------------------------------------------------------------------------


def is_reviewer(user) -> bool:
    """Staff and team supervisors review; agents see and answer their own evaluations only."""
    return may_read_reports(user)


class ScorecardList(APIView):
    @extend_schema(responses={200: s.ScorecardOutput(many=True)})
    def get(self, request):
        """The active scorecard versions."""
        return Response(s.ScorecardOutput(Scorecard.objects.filter(active=True).order_by("name", "-version"),
                                          many=True).data)

    @extend_schema(request=s.ScorecardInput, responses={201: s.ScorecardOutput, 400: ErrorSerializer,
                                                        403: ErrorSerializer})
    def post(self, request):
        """A new scorecard, or the next version of one (the earlier versions stop being offered). Staff only."""
        if not access.is_admin(request.user):
            raise PermissionDenied("only staff edit scorecards")
        data = valid(s.ScorecardInput, request.data)
        card = services.scorecard_save(name=data["name"], form=data["form"])
        return Response(s.ScorecardOutput(card).data, status=201)


def _visible(request):
    """A reviewer sees their teams' agents' evaluations (an admin all); an agent their own."""
    qs = Evaluation.objects.select_related("scorecard")
    if is_reviewer(request.user):
        return access.by_agent(request.user, qs)
    return qs.filter(agent_id=request.user.get_username())


def _evaluation(request, evaluation_id) -> Evaluation:
    found = _visible(request).filter(id=evaluation_id).first()
    if found is None:  # also for someone else's: existence does not leak
        access.deny(request, action=f"{request.method} {request.path}", object_type="evaluation",
                    object_id=evaluation_id)
    return found


def _transcript(evaluation: Evaluation) -> list[dict]:
    from events.store import read_stream

    lines = []
    for env in read_stream(evaluation.interaction_id):
        line = {"at": env.occurred_at, "event_type": env.event_type}
        if env.event_type == "interactions.MessageRecorded":
            line.update(direction=env.data.get("direction"), body=env.data.get("body"))
        elif env.event_type == "interactions.TranscriptSegmentRecorded":
            line.update(direction="inbound" if env.data.get("speaker") == "customer" else "outbound",
                        body=env.data.get("text"))
        elif env.event_type == "interactions.RecordingAttached":
            line["recording_ref"] = env.data.get("recording_ref")
        lines.append(line)
    return lines


class EvaluationList(APIView):
    @extend_schema(parameters=[OpenApiParameter("agent_id", str), OpenApiParameter("status", str)],
                   responses={200: s.EvaluationOutput(many=True)})
    def get(self, request):
        """Evaluations: reviewers see all, agents their own (newest first, at most 200)."""
        qs = _visible(request)
        for name in ("agent_id", "status"):
            if request.query_params.get(name):
                qs = qs.filter(**{name: request.query_params[name]})
        return Response(s.EvaluationOutput(qs.order_by("-created_at")[:200], many=True).data)

    @extend_schema(request=s.EvaluationInput, responses={201: s.EvaluationOutput, 400: ErrorSerializer,
                                                         403: ErrorSerializer, 409: ErrorSerializer})
    def post(self, request):
        """Evaluate an interaction against a scorecard (reviewers). The score comes from the form's weights."""
        if not is_reviewer(request.user):
            raise PermissionDenied("only supervisors evaluate")
        data = valid(s.EvaluationInput, request.data)
        access.require_named(request, data)  # an interaction of your teams
        ev = services.evaluation_submit(scorecard_id=data["scorecard"], interaction_id=data["interaction_id"],
                                        reviewer=request.user.get_username(), answers=data["answers"],
                                        meta=command_meta(request))
        return Response(s.EvaluationOutput(ev).data, status=201)


class EvaluationDetailView(APIView):
    @extend_schema(responses={200: s.EvaluationDetail, 404: ErrorSerializer})
    def get(self, request, evaluation_id):
        """An evaluation with the interaction's transcript and recording references beside it."""
        ev = _evaluation(request, evaluation_id)
        transcript = _transcript(ev)
        if any("recording_ref" in line for line in transcript):  # who read a recording reference is on record
            access.audit(request, outcome="read", action="evaluations.detail", object_type="recording",
                         object_id=ev.interaction_id)
        return Response(s.EvaluationDetail({**s.EvaluationOutput(ev).data, "transcript": transcript,
                                            "script": run_view(ev.interaction_id)}).data)


class EvaluationAction(APIView):
    action = ""

    def _own(self, request, evaluation_id) -> Evaluation:
        ev = _evaluation(request, evaluation_id)
        if ev.agent_id != request.user.get_username():
            raise PermissionDenied("only the agent evaluated may do this")
        return ev


class EvaluationAcknowledge(EvaluationAction):
    @extend_schema(request=None, responses={200: s.EvaluationOutput, 403: ErrorSerializer, 404: ErrorSerializer,
                                            409: ErrorSerializer})
    def post(self, request, evaluation_id):
        """The agent evaluated accepts it."""
        ev = self._own(request, evaluation_id)
        ev = services.evaluation_acknowledge(evaluation_id=ev.id, agent_id=ev.agent_id, meta=command_meta(request))
        return Response(s.EvaluationOutput(ev).data)


class EvaluationDispute(EvaluationAction):
    @extend_schema(request=s.DisputeInput, responses={200: s.EvaluationOutput, 400: ErrorSerializer,
                                                      403: ErrorSerializer, 404: ErrorSerializer,
                                                      409: ErrorSerializer})
    def post(self, request, evaluation_id):
        """The agent evaluated disputes it, saying why; a supervisor resolves it."""
        ev = self._own(request, evaluation_id)
        data = valid(s.DisputeInput, request.data)
        ev = services.evaluation_dispute(evaluation_id=ev.id, agent_id=ev.agent_id, reason=data["reason"],
                                         meta=command_meta(request))
        return Response(s.EvaluationOutput(ev).data)


class EvaluationResolve(APIView):
    @extend_schema(request=s.ResolveInput, responses={200: s.EvaluationOutput, 400: ErrorSerializer,
                                                      403: ErrorSerializer, 404: ErrorSerializer,
                                                      409: ErrorSerializer})
    def post(self, request, evaluation_id):
        """A supervisor decides a dispute: upheld, or rescored with new answers."""
        if not is_reviewer(request.user):
            raise PermissionDenied("only supervisors resolve disputes")
        ev = _evaluation(request, evaluation_id)
        data = valid(s.ResolveInput, request.data)
        ev = services.evaluation_resolve(evaluation_id=ev.id, resolved_by=request.user.get_username(),
                                         meta=command_meta(request), **data)
        return Response(s.EvaluationOutput(ev).data)


class CalibrationView(APIView):
    @extend_schema(parameters=[OpenApiParameter("interaction_id", OpenApiTypes.UUID, required=True)],
                   responses={200: OpenApiTypes.OBJECT, 400: ErrorSerializer, 403: ErrorSerializer})
    def get(self, request):
        """Calibration: every reviewer's score of one interaction, per scorecard, with the mean and spread."""
        if not is_reviewer(request.user):
            raise PermissionDenied("calibration is for supervisors")
        q = valid(s.CalibrationQuery, request.query_params)
        access.require_named(request, q)
        return Response(services.calibration(q["interaction_id"]))


class ReviewQueueView(APIView):
    @extend_schema(parameters=[OpenApiParameter("agent_id", str)],
                   responses={200: s.ReviewSampleOutput(many=True), 403: ErrorSerializer})
    def get(self, request):
        """The evaluation queue: interactions the weekly sampling picked that nobody has evaluated yet, heaviest
        first (low CSAT, long handle time, a repeat contact). For reviewers."""
        if not is_reviewer(request.user):
            raise PermissionDenied("the evaluation queue is for supervisors")
        qs = access.by_agent(request.user, ReviewSample.objects.exclude(
            interaction_id__in=Evaluation.objects.values("interaction_id")))
        if request.query_params.get("agent_id"):
            qs = qs.filter(agent_id=request.query_params["agent_id"])
        return Response(s.ReviewSampleOutput(qs.order_by("-weight", "picked_at")[:200], many=True).data)
