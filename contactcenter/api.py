"""API plumbing shared by every app: command metadata, error mapping, validation."""

from __future__ import annotations

import datetime as dt
import uuid

from django.core.exceptions import ObjectDoesNotExist
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from events.crypto import CustomerErased
from events.store import Actor, ConcurrencyConflict, Metadata, stream_version, uuid7

CORRELATION_HEADER = "HTTP_X_CORRELATION_ID"


def command_meta(request, *, channel: str = "") -> Metadata:
    """Who is acting and under which correlation id (the X-Correlation-ID header, or a new one)."""
    user = request.user
    try:
        correlation_id = uuid.UUID(request.META[CORRELATION_HEADER])
    except (KeyError, ValueError):
        correlation_id = uuid7()
    return Metadata(
        actor=Actor("user", str(user.pk), user.get_username()),
        correlation_id=correlation_id,
        channel=channel,
    )


def iso_datetime(value) -> str | None:
    """A datetime as DRF's DateTimeField writes it (ISO 8601 in UTC, "Z" for +00:00), for answers built by hand."""
    if value is None:
        return None
    text = value.astimezone(dt.UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def valid(serializer_class: type[serializers.Serializer], data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()


def exception_handler(exc, context):
    """Domain errors become HTTP errors here, once, instead of in each view."""
    if isinstance(exc, ConcurrencyConflict):
        return Response(
            {
                "detail": str(exc),
                "code": "version_conflict",
                "stream_id": str(exc.stream_id),
                "expected_version": exc.expected_version,
                "current_version": stream_version(exc.stream_id),
            },
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, CustomerErased):
        return Response({"detail": "this customer was erased", "code": "customer_erased"}, status=409)
    if isinstance(exc, ObjectDoesNotExist):
        exc = exceptions.NotFound()
    domain_status = getattr(exc, "status", None)
    if isinstance(domain_status, int) and hasattr(exc, "code") and not isinstance(exc, exceptions.APIException):
        body = {"detail": str(exc), "code": exc.code}
        if getattr(exc, "field", None):
            body["field"] = exc.field  # which input was wrong, for domain-level checks
        return Response(body, status=domain_status)
    return drf_exception_handler(exc, context)
