"""Interaction endpoints: thin views over interactions.services.

The acting agent is the authenticated user (their username is the agent id
until the routing issue brings agent records).
"""

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from contactcenter.api import ErrorSerializer, command_meta, valid
from customers.identity import identity as make_identity
from interactions import services
from interactions.api import serializers as s
from interactions.models import Interaction

REFUSED = OpenApiResponse(ErrorSerializer, description="not allowed in the interaction's current state")


class InteractionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """One conversation on one channel, and every step of it as a command."""

    serializer_class = s.InteractionOutput
    queryset = Interaction.objects.all()
    lookup_value_converter = "uuid"

    def get_queryset(self):
        qs = Interaction.objects.all()
        for name in ("customer_id", "case_id", "channel", "status", "queue", "agent_id"):
            if self.request.query_params.get(name):
                qs = qs.filter(**{name: self.request.query_params[name]})
        return qs.order_by("-created_at", "id")

    def _respond(self, result, code=status.HTTP_200_OK):
        body = {"interaction": result.interaction, "positions": result.positions,
                "customer_created": result.customer_created}
        return Response(s.InteractionCommandOutput(body).data, status=code)

    def _meta(self, request):
        return command_meta(request)

    @extend_schema(request=s.CreateInteractionInput, responses={201: s.InteractionCommandOutput, 400: ErrorSerializer})
    def create(self, request):
        """Start an interaction for a customer id, or for whoever owns an identity (a new customer if none)."""
        data = valid(s.CreateInteractionInput, request.data)
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
        """Offer to an agent (routing does this; available here for manual assignment)."""
        return self._run(request, pk, services.interaction_offer, s.OfferInput)

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

    @extend_schema(request=s.EndInput, responses={200: s.InteractionCommandOutput, 409: REFUSED})
    @action(detail=True, methods=["post"])
    def end(self, request, pk=None):
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
