"""Interaction endpoints: thin views over interactions.services.

The acting agent is the authenticated user (their username is the agent id
until the routing issue brings agent records).

Inbound channel webhooks (POST /api/v1/webhooks/{channel}/{provider}/) are
thin the same way: check who is calling (the signature over the raw body),
read and validate the payload, call services.webhook_receive once, serialize.
"""

import uuid

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from contactcenter import access
from contactcenter.api import CORRELATION_HEADER, UUID_PATH_PATTERN, ErrorSerializer, command_meta, valid
from contactcenter.pagination import CappedCursorPagination
from customers.identity import InvalidIdentity
from customers.identity import identity as make_identity
from events.store import Actor, Metadata, uuid7
from interactions import domain, services, webhooks
from interactions.api import serializers as s
from interactions.models import Interaction

REFUSED = OpenApiResponse(ErrorSerializer, description="not allowed in the interaction's current state")


class NewestFirst(CappedCursorPagination):
    ordering = ("-created_at", "-id")


class InteractionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """One conversation on one channel, and every step of it as a command."""

    pagination_class = NewestFirst

    serializer_class = s.InteractionOutput
    queryset = Interaction.objects.all()
    lookup_value_converter = "uuid"
    lookup_value_regex = UUID_PATH_PATTERN  # anything else is a 404 at the router, never a query

    scope_kwargs = {"pk": "interaction"}  # contactcenter.access.InScope: 404 outside the caller's scope

    def get_queryset(self):
        qs = access.interactions_visible(self.request.user)
        for name in ("customer_id", "case_id", "channel", "status", "queue", "agent_id"):
            if self.request.query_params.get(name):
                qs = qs.filter(**{name: self.request.query_params[name]})
        return qs.order_by("-created_at", "id")

    def _respond(self, result, code=status.HTTP_200_OK):
        return Response(s.command_json(result), status=code)

    def _meta(self, request):
        return command_meta(request)

    @extend_schema(request=s.CreateInteractionInput, responses={201: s.InteractionCommandOutput, 400: ErrorSerializer})
    def create(self, request):
        """Start an interaction for a customer id, or for whoever owns an identity (a new customer if none)."""
        if not access.may_command(request.user):
            raise PermissionDenied("your role reads interactions; it does not start them")
        data = valid(s.CreateInteractionInput, request.data)
        access.require_named(request, data)  # a customer id must be one you may see; an identity reaches anyone
        ident = data.pop("identity", None)
        if ident is not None:
            ident = make_identity(ident["kind"], ident["value"], provider=ident.get("provider", ""),
                                  default_region=settings.DEFAULT_PHONE_REGION)
        result = services.interaction_create(meta=self._meta(request), ident=ident, **data)
        return self._respond(result, status.HTTP_201_CREATED)

    def _run(self, request, pk, service, input_class=None, **extra):
        data = valid(input_class, request.data) if input_class else {}
        result = service(interaction_id=pk, meta=self._meta(request), **data, **extra)
        return self._respond(result)

    @extend_schema(request=s.QueueInput, responses={200: s.InteractionCommandOutput, 409: REFUSED})
    @action(detail=True, methods=["post"])
    def queue(self, request, pk=None):
        return self._run(request, pk, services.interaction_queue, s.QueueInput)

    @extend_schema(request=s.OfferInput, responses={200: s.InteractionCommandOutput, 409: REFUSED})
    @action(detail=True, methods=["post"])
    def offer(self, request, pk=None):
        """Offer to an agent (routing does this). By hand: an agent takes work of their queues for themself; a
        supervisor offers it to an agent of their teams."""
        data = valid(s.OfferInput, request.data)
        if data["agent_id"] != request.user.get_username() and not (
                access.is_supervisor(request.user) and access.agent_in_scope(request.user, data["agent_id"])):
            raise PermissionDenied("an agent takes work for themself; a supervisor offers it to their teams' agents")
        return self._respond(services.interaction_offer(interaction_id=pk, meta=self._meta(request), **data))

    @extend_schema(request=None, responses={200: s.InteractionCommandOutput, 409: REFUSED})
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        """The offered agent (you) takes it; for a call: answered."""
        return self._run(request, pk, services.interaction_accept, agent_id=request.user.get_username())

    @extend_schema(request=s.DeclineInput, responses={200: s.InteractionCommandOutput, 409: REFUSED})
    @action(detail=True, methods=["post"])
    def decline(self, request, pk=None):
        return self._run(request, pk, services.interaction_decline, s.DeclineInput,
                         agent_id=request.user.get_username())

    @extend_schema(request=None, responses={200: s.InteractionCommandOutput, 409: REFUSED})
    @action(detail=True, methods=["post"])
    def hold(self, request, pk=None):
        return self._run(request, pk, services.interaction_hold)

    @extend_schema(request=None, responses={200: s.InteractionCommandOutput, 409: REFUSED})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._run(request, pk, services.interaction_resume)

    @extend_schema(request=s.TransferInput, responses={200: s.InteractionCommandOutput, 409: REFUSED})
    @action(detail=True, methods=["post"])
    def transfer(self, request, pk=None):
        return self._run(request, pk, services.interaction_transfer, s.TransferInput)

    @extend_schema(request=s.MessageInput, responses={200: s.InteractionCommandOutput, 409: REFUSED})
    @action(detail=True, methods=["post"])
    def messages(self, request, pk=None):
        """A chat, email, SMS or social message, either way."""
        return self._run(request, pk, services.message_record, s.MessageInput)

    @extend_schema(request=s.WarnInput, responses={200: s.InteractionCommandOutput, 409: REFUSED})
    @action(detail=True, methods=["post"])
    def warn(self, request, pk=None):
        """Warn an abusive customer that the conversation will end if it goes on: on record, as the abuse
        protocol requires before ending for abuse (docs/PROTOCOLS.md)."""
        return self._run(request, pk, services.interaction_warn, s.WarnInput)

    @extend_schema(request=s.EndInput, responses={200: s.InteractionCommandOutput, 409: REFUSED})
    @action(detail=True, methods=["post"])
    def end(self, request, pk=None):
        """End the conversation, with a reason (the end protocol: docs/PROTOCOLS.md). Ending for abuse is 409
        `protocol_refused` until the required warnings are on record."""
        return self._run(request, pk, services.interaction_end, s.EndInput)

    @extend_schema(request=s.WrapUpInput, responses={200: s.InteractionCommandOutput, 409: REFUSED})
    @action(detail=True, methods=["post"], url_path="wrap-up")
    def wrap_up(self, request, pk=None):
        return self._run(request, pk, services.interaction_wrap_up, s.WrapUpInput)

    @extend_schema(request=s.AbandonInput, responses={200: s.InteractionCommandOutput, 409: REFUSED})
    @action(detail=True, methods=["post"])
    def abandon(self, request, pk=None):
        return self._run(request, pk, services.interaction_abandon, s.AbandonInput)

    @extend_schema(request=s.ReopenInput, responses={200: s.InteractionCommandOutput, 409: REFUSED})
    @action(detail=True, methods=["post"])
    def reopen(self, request, pk=None):
        return self._run(request, pk, services.interaction_reopen, s.ReopenInput)


# --- channel provider webhooks -----------------------------------------------

# Which part of `from` an identity error is about.
_FROM_FIELDS = {"kind": "from.kind", "provider": "from.provider"}


def _meta(request, channel: str, provider: str) -> Metadata:
    try:
        correlation_id = uuid.UUID(request.META[CORRELATION_HEADER])
    except (KeyError, ValueError):
        correlation_id = uuid7()
    return Metadata(actor=Actor("provider", f"{channel}/{provider}", provider), correlation_id=correlation_id,
                    channel=channel)


class WebhookView(APIView):
    """A channel provider reports a call event or a message."""

    # The HMAC signature of each request *is* the authentication here: the
    # provider holds no user token. So no authentication classes and AllowAny,
    # on this view only; `post` refuses (401) anything not signed with the
    # provider's secret before reading a single field of it.
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="webhook_receive",
        parameters=[
            OpenApiParameter("channel", str, OpenApiParameter.PATH, enum=list(domain.CHANNELS)),
            OpenApiParameter("provider", str, OpenApiParameter.PATH),
            OpenApiParameter("X-Signature", str, OpenApiParameter.HEADER, required=True,
                             description='hex HMAC-SHA256 of X-Timestamp + "." + raw body, keyed with the '
                                         "provider's secret"),
            OpenApiParameter("X-Timestamp", str, OpenApiParameter.HEADER, required=True,
                             description="unix seconds; within 300 s of the server's clock"),
        ],
        request=PolymorphicProxySerializer("WebhookInput", serializers=list(s.WEBHOOK_INPUTS.values()),
                                           resource_type_field_name=None),
        responses={
            201: s.WebhookOutput, 200: OpenApiResponse(s.WebhookOutput, description="a repeated delivery"),
            400: ErrorSerializer, 401: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer,
            413: ErrorSerializer,
        },
        auth=[],
        description="See docs/WEBHOOKS.md.",
    )
    def post(self, request, channel: str, provider: str):
        if channel not in domain.CHANNELS:
            raise domain.InvalidValue("channel", f"unknown channel {channel!r}; known: {', '.join(domain.CHANNELS)}")
        payload = webhooks.signed_payload(request, provider)
        data = valid(s.WEBHOOK_INPUTS[channel], payload, strict=False)
        ident = self._identity(data.pop("from", None))
        result = services.webhook_receive(channel=channel, provider=provider, data=data, ident=ident,
                                          meta=_meta(request, channel, provider))
        return Response(s.command_json(result, duplicate=result.duplicate),
                        status=status.HTTP_200_OK if result.duplicate else status.HTTP_201_CREATED)

    @staticmethod
    def _identity(given: dict | None):
        if given is None:
            return None
        try:
            return make_identity(given["kind"], given["value"], provider=given.get("provider", ""),
                                 default_region=settings.DEFAULT_PHONE_REGION)
        except InvalidIdentity as exc:
            raise domain.InvalidValue(_FROM_FIELDS.get(exc.field, "from.value"), str(exc)) from None
