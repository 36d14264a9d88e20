"""API plumbing shared by every app: command metadata, error mapping, validation."""

from __future__ import annotations

import datetime as dt
import uuid

from django.core.exceptions import ObjectDoesNotExist
from django.core.validators import RegexValidator
from django.http import JsonResponse, QueryDict
from django.views.defaults import page_not_found
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from events.crypto import CustomerErased
from events.store import Actor, ConcurrencyConflict, Metadata, stream_version, uuid7

CORRELATION_HEADER = "HTTP_X_CORRELATION_ID"
# A router's lookup_value_regex for a UUID id: the pattern of Django's <uuid:...> converter. DRF's routers ignore
# `lookup_value_converter` unless built with use_regex_path=False, so without this "x,y" reached the view.
UUID_PATH_PATTERN = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


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
    misspelt optional field is not lost without a word. Likewise a number where the field takes a string (or a
    UUID) is refused, not converted. Query strings (paging, format) and the channel providers' payloads
    (`strict=False`: providers add fields of their own) are not held to this; a query parameter given twice
    for one value is refused (one given empty is not given, as DRF reads it; the schema says so).
    """
    body = strict and isinstance(data, dict) and not isinstance(data, QueryDict)
    if body:
        unknown = sorted(str(k) for k in data if k not in serializer_class().fields)
        if unknown:
            raise exceptions.ValidationError({k: ["unknown field: this command does not take it"] for k in unknown})
    if isinstance(data, QueryDict):
        # ?a=1&a=2 for a single value: the serializer would read the last and drop the rest without a word.
        fields = serializer_class().fields
        repeated = sorted(k for k in data if len(data.getlist(k)) > 1 and k in fields
                          and not isinstance(fields[k], (serializers.ListField, serializers.MultipleChoiceField)))
        if repeated:
            raise exceptions.ValidationError({k: ["give this parameter once"] for k in repeated})
    serializer = serializer_class(data=data)
    if body:
        mistyped = _mistyped(serializer.fields, data)
        if mistyped:
            raise exceptions.ValidationError(mistyped)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _mistyped(fields, data: dict) -> dict:
    """The JSON values of the wrong type for their field that DRF would otherwise convert: a number for a string
    (CharField takes 12 as "12") or for a UUID (UUIDField takes 0 as the nil UUID). The schema says "string", and
    a client that sends a number has a bug we should tell it about, not paper over."""
    errors = {}
    for name, field in fields.items():
        value = data.get(name)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(field, (serializers.CharField, serializers.UUIDField)) and isinstance(value, (int, float)):
            errors[name] = ["Not a valid string."]
        elif isinstance(field, serializers.Serializer) and isinstance(value, dict):
            nested = _mistyped(field.fields, value)
            if nested:
                errors[name] = nested
        elif isinstance(field, serializers.ListField) and isinstance(field.child, serializers.CharField) \
                and isinstance(value, list):
            items = {i: ["Not a valid string."] for i, item in enumerate(value)
                     if isinstance(item, (int, float)) and not isinstance(item, bool)}
            if items:
                errors[name] = items
    return errors


class ErrorSerializer(serializers.Serializer):
    """Every refusal but input validation: what went wrong, a stable code to branch on, and the input at fault."""

    detail = serializers.CharField()
    code = serializers.CharField(help_text="stable, machine-readable: `not_found`, `permission_denied`, "
                                           "`version_conflict`, `throttled`, ...")
    field = serializers.CharField(required=False, help_text="the input at fault (body field, query parameter or "
                                                            "header), when one is")


def exception_handler(exc, context):
    """Domain errors become HTTP errors here, once, instead of in each view."""
    from contactcenter.degrade import RETRY_AFTER_SECONDS, database_failure

    degraded = database_failure(exc)  # PostgreSQL away (or busy): 503 + Retry-After, never a bare 500
    if degraded is not None:
        return Response(degraded, status=status.HTTP_503_SERVICE_UNAVAILABLE,
                        headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    if isinstance(exc, (exceptions.PermissionDenied, exceptions.NotFound)):
        from contactcenter.throttling import count_denied

        over = count_denied(context.get("request"), context.get("view"))  # denials count against the rates too
        if over is not None:
            exc = over
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
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and isinstance(response.data.get("detail"), str) \
            and "code" not in response.data:
        # DRF's own refusals (401, 403, 404, 405, 406, 415, 429) say only `detail`: give them their code too, so
        # that every refusal but a field-by-field validation error reads the same ({"detail", "code"}).
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
        response.data["code"] = codes if isinstance(codes, str) else "error"
    return response


def not_found(request, exception=None):
    """handler404: a URL that matches no route (a malformed id, say) answers like any other API refusal, in JSON;
    the pages (desk, wallboard, admin) keep Django's own page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "no such resource", "code": "not_found"}, status=404)
    return page_not_found(request, exception)


# --- the OpenAPI schema -----------------------------------------------------------------------------------------

FIELD_ERRORS = {
    "type": "object",
    "description": "Input validation: each input at fault (`non_field_errors` for the body as a whole) with its "
                   "messages; the fields of a nested object nest the same way.",
    "minProperties": 1,
    "additionalProperties": {"oneOf": [{"type": "array", "items": {}}, {"type": "object"}]},
}
# A string with something besides whitespace, whitespace being what Python's str.strip() removes (DRF trims
# CharField input with it), spelled out: ECMA's \s differs (it lacks \x1c-\x1f and \x85, and has \ufeff).
NOT_BLANK = "[^\\t\\n\\v\\f\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait before trying again"}}


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's AutoSchema, plus what every endpoint really does beyond what its view declares.

    - The refusals any endpoint can give (400 bad input, 401, 403 the role may not, 404 not found or outside the
      caller's scope, 409/422 for commands, 413/415 for bodies, 429 rate limits, 503 database away), each with the
      body it really has: `Error` ({"detail", "code", "field"?}), or for a 400 that or `FieldErrors` (DRF's
      field-by-field validation errors). A view's own declaration of a status wins (its description says more).
    - A request string field that may not be blank says so (`minLength: 1`), so generated clients and the fuzzer
      (tests/test_fuzz.py) know that "" is refused.
    """

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if direction == "request" and isinstance(field, serializers.CharField) and not field.allow_blank \
                and not field.read_only and schema.get("type") == "string":
            schema.setdefault("minLength", 1)
            if field.trim_whitespace and "format" not in schema and not any(
                    isinstance(v, RegexValidator) for v in field.validators):
                schema.setdefault("pattern", NOT_BLANK)  # DRF strips the value before it checks it is not blank
        return schema

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        # Rules across fields that a serializer's validate() (or its service) enforces, stated for the schema:
        # e.g. {"oneOf": [{"required": ["customer_id"]}, {"required": ["identity"]}]}.
        schema.update(getattr(serializer, "schema_rules", {}))
        return schema

    def _signed(self) -> bool:
        # The channel providers' webhooks: a signature instead of a user, and their payloads may carry fields of
        # the provider's own (valid(..., strict=False)).
        return getattr(self.view, "authentication_classes", None) == []

    def _get_request_for_media_type(self, serializer, direction="request"):
        schema, required = super()._get_request_for_media_type(serializer, direction)
        ref = schema.get("$ref", "") if isinstance(schema, dict) else ""
        if ref.startswith("#/components/schemas/") and not self._signed():
            # A command refuses a field it does not take (valid(): no mass assignment); the schema says so.
            self.registry[(ref.rsplit("/", 1)[1], ResolvedComponent.SCHEMA)].schema["additionalProperties"] = False
        if {"anyOf", "oneOf"} & set(getattr(serializer, "schema_rules", {})):
            required = True  # one of the alternatives must be given, so an empty body is refused too
        return schema, required

    def _get_parameters(self):
        parameters = super()._get_parameters()
        for parameter in parameters:
            if parameter.get("in") == "query" and not parameter.get("required"):
                # `?until=` is read as no `until` at all (DRF's reading of an optional field, and the pages').
                parameter["allowEmptyValue"] = True
        return parameters

    def get_auth(self):
        # The bearer scheme is both this view's authenticator and the schema-wide SECURITY: list it once.
        auth = []
        for requirement in super().get_auth():
            if requirement not in auth:
                auth.append(requirement)
        return auth

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        error = self.resolve_serializer(ErrorSerializer, "response").ref
        field_errors = ResolvedComponent("FieldErrors", ResolvedComponent.SCHEMA, schema=FIELD_ERRORS,
                                         object="FieldErrors")
        self.registry.register_on_missing(field_errors)
        bad_input = {"oneOf": [error, field_errors.ref]}
        signed = self._signed()
        command = self.method not in ("GET", "HEAD", "OPTIONS")
        body = self.method in ("POST", "PUT", "PATCH")
        # An id in the path, or a body or query naming objects (access.require_named), or a page cursor that
        # points at no page.
        query = {p["name"] for p in self._get_parameters() if p.get("in") == "query"}
        named = "{" in self.path or (body and self.get_request_serializer() is not None) or bool(
            query & {"interaction_id", "customer_id"}) or (
            self.method == "GET" and self._get_paginator() is not None and self._is_list_view())
        standard = {
            "400": (True, "bad input: a field, query parameter or header (named), or a NUL in the URL"),
            "401": (True, "a webhook's signature is missing or wrong" if signed
                    else "not signed in: no, an unknown or a revoked token"),
            "403": (not signed, "the caller's role may not do this"),
            "404": (named, "no such object, or one outside the caller's scope (the same answer, so ids leak "
                           "nothing); `invalid_cursor`: no such page"),
            "409": (command and not signed, "refused in the current state, or a stale expected version"),
            "413": (body, "the body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE"),
            "415": (body and self.get_request_serializer() is not None, "the body is not application/json"),
            "422": (command and not signed, "a rule of the domain refuses it (`code` says which), or "
                                            "`idempotency_key_reused`: this Idempotency-Key was used with another "
                                            "method, path or body"),
            "429": (True, "`throttled`: over a rate limit (README, Limits)"),
            "503": (True, "the database is unavailable or busy: try again after Retry-After"),
        }
        for code, (applies, description) in standard.items():
            declared = responses.get(code)
            if declared is None and applies:
                responses[code] = {"content": {"application/json": {"schema": bad_input if code == "400" else error}},
                                   "description": description}
            elif code == "400" and declared and declared.get("content", {}).get("application/json", {}).get(
                    "schema") == error:
                # A view that declared its 400 as an Error still validates a body or query first.
                declared["content"]["application/json"]["schema"] = bad_input
            if code in ("429", "503") and code in responses:
                responses[code].setdefault("headers", {}).update(RETRY_AFTER)
        for code, answer in responses.items():
            content = answer.get("content", {})
            if code >= "400" and "application/json" in content:
                # A refusal is JSON whatever the view renders when it succeeds (a CSV report, say).
                answer["content"] = {"application/json": content["application/json"]}
        return dict(sorted(responses.items()))


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """`Authorization: Bearer <token>` under the one name the schema's SECURITY uses (bearerAuth), instead of a
    second, identical scheme from drf-spectacular's TokenAuthentication extension."""

    target_class = "contactcenter.auth.BearerTokenAuthentication"
    name = "bearerAuth"
    priority = 1

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer"}
