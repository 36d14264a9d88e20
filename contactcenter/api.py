"""API plumbing shared by every app: command metadata, error mapping, validation."""

from __future__ import annotations

import datetime as dt
import uuid

from django.core.exceptions import ObjectDoesNotExist
from django.http import QueryDict
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


def valid(serializer_class: type[serializers.Serializer], data, *, strict: bool = True) -> dict:
    """`data` checked by `serializer_class`: its validated data, or a 400 naming each wrong field.

    A JSON body with a field the command does not take is refused (400 naming it) rather than silently
    ignored: nobody sets an owner, an agent or a role by adding a field (no mass assignment), and a
    misspelt optional field is not lost without a word. Query strings (paging, format) and the channel
    providers' payloads (`strict=False`: providers add fields of their own) are not held to this.
    """
    if strict and isinstance(data, dict) and not isinstance(data, QueryDict):
        unknown = sorted(str(k) for k in data if k not in serializer_class().fields)
        if unknown:
            raise exceptions.ValidationError({k: ["unknown field: this command does not take it"] for k in unknown})
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()


def exception_handler(exc, context):
    """Domain errors become HTTP errors here, once, instead of in each view."""
    from contactcenter.degrade import RETRY_AFTER_SECONDS, database_failure

    degraded = database_failure(exc)  # PostgreSQL away (or busy): 503 + Retry-After, never a bare 500
    if degraded is not None:
        return Response(degraded, status=status.HTTP_503_SERVICE_UNAVAILABLE,
                        headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed, exceptions.PermissionDenied)):
        from contactcenter.access import audit_denied_response

        audit_denied_response(context["request"], exc)  # every denied attempt is on record
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
