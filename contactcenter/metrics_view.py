"""GET /metrics: the Prometheus scrape (figures in contactcenter/metrics.py, meanings in docs/OPERATIONS.md)."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from contactcenter import access, metrics
from contactcenter.api import ErrorSerializer

METRICS_PERMISSION = "contactcenter.read_metrics"


class CanReadMetrics(BasePermission):
    """The monitoring system's user (permission contactcenter.read_metrics), or staff."""

    message = f"reading /metrics needs the permission {METRICS_PERMISSION}"

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and (access.is_admin(user) or user.has_perm(METRICS_PERMISSION)))


class _ErrorsAsJson(BaseContentNegotiation):
    """Refusals are JSON whatever the scraper accepts; the figures themselves bypass renderers."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class MetricsView(APIView):
    permission_classes = [IsAuthenticated, CanReadMetrics]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _ErrorsAsJson

    @extend_schema(
        operation_id="metrics",
        tags=["observability"],
        responses={
            (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="Prometheus text format (or "
                                                 "OpenMetrics when the scraper asks for it)"),
            401: OpenApiResponse(ErrorSerializer, description="no or an unknown token"),
            403: OpenApiResponse(ErrorSerializer, description="a user without contactcenter.read_metrics"),
        },
    )
    def get(self, request):
        """Every figure operators watch: latency, routing, outbox, projection lag, queues, sockets, tasks.

        For the monitoring system's user (permission `contactcenter.read_metrics`) or staff.
        What each figure means and what to do when it moves: docs/OPERATIONS.md.
        """
        body, content_type = metrics.exposition(request.META.get("HTTP_ACCEPT"))
        response = HttpResponse(body, content_type=content_type)
        response["Cache-Control"] = "no-store"
        return response
