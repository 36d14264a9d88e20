"""Routing endpoints: agents and their presence, queues and their live state, and why work went where."""

import uuid

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from contactcenter import access
from contactcenter.api import ErrorSerializer, command_meta, valid
from contactcenter.pagination import CappedCursorPagination
from history import asof
from interactions.models import Interaction
from routing import selectors, services
from routing.api import serializers as s
from routing.models import Queue


class ByName(CappedCursorPagination):
    ordering = "name"
    page_size = 100


class ById(CappedCursorPagination):
    ordering = "id"
    page_size = 100


class AgentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Agents (set up in the admin) and their presence. `me` is the agent of the authenticated user."""

    pagination_class = ById

    serializer_class = s.AgentOutput
    lookup_field = "user__username"
    lookup_url_kwarg = "agent_id"

    def get_queryset(self):
        return access.by_agent(self.request.user, selectors.agent_list(), field="user__username")

    def _agent_id(self, agent_id: str) -> str:
        agent_id = self.request.user.get_username() if agent_id == "me" else agent_id
        if not access.agent_in_scope(self.request.user, agent_id):  # yourself; a supervisor their teams'
            access.deny(self.request, action=f"{self.request.method} {self.request.path}", object_type="agent",
                        object_id=agent_id)
        return agent_id

    @extend_schema(responses={200: s.AgentOutput, 404: ErrorSerializer})
    def retrieve(self, request, agent_id=None):
        return Response(s.AgentOutput(selectors.agent_get(self._agent_id(agent_id))).data)

    @extend_schema(request=s.PresenceInput, responses={200: s.AgentOutput, 400: ErrorSerializer,
                                                        403: ErrorSerializer, 404: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def presence(self, request, agent_id=None):
        """Set presence: agents their own (`me`); supervisors their teams' agents'; admins anyone's. Becoming
        available brings waiting work."""
        agent_id = self._agent_id(agent_id)  # 404 outside your scope
        if agent_id != request.user.get_username() and not access.is_supervisor(request.user):
            raise PermissionDenied("only the agent, their supervisor or an admin sets an agent's presence")
        selectors.agent_get(agent_id)  # 404 before anything is written
        data = valid(s.PresenceInput, request.data)
        services.agent_presence_set(agent_id=agent_id, meta=command_meta(request), **data)
        return Response(s.AgentOutput(selectors.agent_get(agent_id)).data)

    @extend_schema(parameters=[s.AsOfQuery], responses={200: s.AgentStateOutput, 400: ErrorSerializer,
                                                          404: ErrorSerializer})
    @action(detail=True, methods=["get"], pagination_class=None)
    def state(self, request, agent_id=None):
        """The agent's presence and the work offered to them or in their hands, as it stood at `?as_of=`
        (default now), folded from the events recorded up to then. Who may read it: as for the agent itself."""
        agent_id = self._agent_id(agent_id)  # 404 outside your scope
        at = valid(s.AsOfQuery, request.query_params).get("as_of") or timezone.now()
        return Response(s.AgentStateOutput(asof.agent_state_as_of(agent_id, at)).data)


class QueueViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Queues and their policies (configured in the admin), and their state right now."""

    serializer_class = s.QueueOutput
    queryset = Queue.objects.prefetch_related("skills").order_by("name")
    pagination_class = ByName
    lookup_url_kwarg = "name"

    def get_queryset(self):
        queues = access.queues_in_scope(self.request.user)  # an agent's queues; a supervisor's teams'
        return self.queryset if queues is None else self.queryset.filter(name__in=queues)

    def get_object(self):
        name = self.kwargs["name"]
        if not self.get_queryset().filter(name=name).exists():
            access.deny(self.request, action=f"{self.request.method} {self.request.path}", object_type="queue",
                        object_id=name)
        return super().get_object()

    @extend_schema(responses={200: s.QueueStatsOutput, 404: ErrorSerializer})
    @action(detail=True, methods=["get"], pagination_class=None)
    def stats(self, request, name=None):
        """Now: waiting, offered and in-hand work, longest wait, qualified agents by presence.
        Today (UTC): answered, service level, average speed of answer, abandoned."""
        self.get_object()  # 404 for a queue outside your scope
        return Response(s.QueueStatsOutput(selectors.queue_stats(name)).data)

    @extend_schema(parameters=[s.AsOfQuery], responses={200: s.QueueStateOutput, 400: ErrorSerializer,
                                                          404: ErrorSerializer})
    @action(detail=True, methods=["get"], pagination_class=None)
    def state(self, request, name=None):
        """The queue as it stood at `?as_of=` (default now), folded from the events recorded up to then: each
        waiting interaction with its wait at that instant, offered and in-hand work, qualified agents by
        presence. Who may read it: as for the queue's stats."""
        self.get_object()  # 404 for a queue outside your scope
        at = valid(s.AsOfQuery, request.query_params).get("as_of") or timezone.now()
        return Response(s.QueueStateOutput(asof.queue_state_as_of(name, at)).data)


class InteractionRoutingView(APIView):
    """Why an interaction went where it went: its routing events, with each decision's candidates and scores."""

    @extend_schema(responses={200: s.RoutingStepOutput(many=True), 404: OpenApiResponse(ErrorSerializer)})
    def get(self, request, interaction_id: uuid.UUID):
        Interaction.objects.only("id").get(id=interaction_id)  # DoesNotExist -> 404 (and access.InScope before)
        return Response(s.RoutingStepOutput(selectors.routing_trail(interaction_id), many=True).data)
