"""Reports: KPIs over any window, grouped as asked, as JSON or CSV."""

import csv
import io
import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from contactcenter.api import ErrorSerializer, valid
from quality import kpis
from quality.api import serializers as s


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
