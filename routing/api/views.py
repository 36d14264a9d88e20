"""Routing endpoints: agents and their presence, queues and their live state, and why work went where."""

import uuid

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from contactcenter.api import ErrorSerializer, command_meta, valid
from interactions.models import Interaction
from routing import selectors, services
from routing.api import serializers as s
from routing.models import Queue


class ByName(CursorPagination):
    ordering = "name"
    page_size = 100


class ById(CursorPagination):
    ordering = "id"
    page_size = 100


class AgentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Agents (set up in the admin) and their presence. `me` is the agent of the authenticated user."""

    pagination_class = ById

    serializer_class = s.AgentOutput
    lookup_field = "user__username"
    lookup_url_kwarg = "agent_id"

    def get_queryset(self):
        return selectors.agent_list()

    def _agent_id(self, agent_id: str) -> str:
        return self.request.user.get_username() if agent_id == "me" else agent_id

    def retrieve(self, request, agent_id=None):
        return Response(s.AgentOutput(selectors.agent_get(self._agent_id(agent_id))).data)

    @extend_schema(request=s.PresenceInput, responses={200: s.AgentOutput, 400: ErrorSerializer,
                                                        403: ErrorSerializer, 404: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def presence(self, request, agent_id=None):
        """Set presence: agents their own (`me`); staff anyone's. Becoming available brings waiting work."""
        agent_id = self._agent_id(agent_id)
        if agent_id != request.user.get_username() and not request.user.is_staff:
            raise PermissionDenied("only the agent, or staff, may set an agent's presence")
        selectors.agent_get(agent_id)  # 404 before anything is written
        data = valid(s.PresenceInput, request.data)
        services.agent_presence_set(agent_id=agent_id, meta=command_meta(request), **data)
        return Response(s.AgentOutput(selectors.agent_get(agent_id)).data)


class QueueViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Queues and their policies (configured in the admin), and their state right now."""

    serializer_class = s.QueueOutput
    queryset = Queue.objects.prefetch_related("skills").order_by("name")
    pagination_class = ByName
    lookup_url_kwarg = "name"

    @extend_schema(responses={200: s.QueueStatsOutput, 404: ErrorSerializer})
    @action(detail=True, methods=["get"], pagination_class=None)
    def stats(self, request, name=None):
        """Now: waiting, offered and in-hand work, longest wait, qualified agents by presence.
        Today (UTC): answered, service level, average speed of answer, abandoned."""
        return Response(s.QueueStatsOutput(selectors.queue_stats(name)).data)


class InteractionRoutingView(APIView):
    """Why an interaction went where it went: its routing events, with each decision's candidates and scores."""

    @extend_schema(responses={200: s.RoutingStepOutput(many=True), 404: OpenApiResponse(ErrorSerializer)})
    def get(self, request, interaction_id: uuid.UUID):
        Interaction.objects.only("id").get(id=interaction_id)  # DoesNotExist -> 404
        return Response(s.RoutingStepOutput(selectors.routing_trail(interaction_id), many=True).data)
