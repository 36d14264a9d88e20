"""Routing endpoints: agents and their presence, queues and their live state, and why work went where."""

import uuid

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
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
from routing import selectors, services, whatif
from routing.api import serializers as s
from routing.models import Queue, Simulation


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


class SimulationPages(CappedCursorPagination):
    ordering = "-created_at"
    page_size = 50


class SimulationViewSet(viewsets.GenericViewSet):
    """What-if routing (docs/HISTORY.md): replay a recorded period's traffic through a candidate policy with the
    routing engine itself, and read service level, speed of answer, abandonment, occupancy and per-agent load
    for the recorded policy and the candidate side by side. Supervisors and admins; nothing live is changed."""

    pagination_class = SimulationPages
    serializer_class = s.SimulationInput  # what OPTIONS describes for POST
    lookup_url_kwarg = "simulation_id"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not selectors.is_supervisor(request.user):
            raise PermissionDenied("what-if routing is for supervisors and admins")

    def get_queryset(self):
        user = self.request.user
        qs = Simulation.objects.all()
        return qs if access.is_admin(user) else qs.filter(requested_by=user.get_username())

    def _out(self, sim: Simulation) -> dict:
        user = self.request.user
        result = whatif.scoped(sim.result, access.queues_in_scope(user), access.agent_scope(user))
        return s.SimulationOutput({
            "id": sim.id, "url": reverse("simulation-detail", kwargs={"simulation_id": sim.id}),
            "status": sim.status, "requested_by": sim.requested_by, "start": sim.start, "end": sim.end,
            "policy": sim.policy, "seed": sim.seed, "created_at": sim.created_at, "finished_at": sim.finished_at,
            "error": sim.error, "result": result}).data

    @extend_schema(responses={200: s.SimulationOutput(many=True)})
    def list(self, request):
        """Your simulations, newest first (an admin sees everyone's)."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([self._out(sim) for sim in page])

    @extend_schema(request=s.SimulationInput, responses={202: s.SimulationOutput, 400: ErrorSerializer,
                                                         403: ErrorSerializer},
                   examples=[OpenApiExample("Two more chat slots each, billing relaxed after 20 s", request_only=True,
                                            value={"from": "2026-11-16T00:00:00Z", "to": "2026-11-23T00:00:00Z",
                                                   "policy": {"agents": {"*": {"capacity": {"chat": 3}}},
                                                              "queues": {"billing": {"expansion": [
                                                                  {"after_seconds": 20,
                                                                   "min_proficiency_delta": -1}]}}}})])
    def create(self, request):
        """Replay [from, to) through `policy`: answered 202 at once with the simulation's `url`; GET it until
        `status` is done (a day of 20,000 contacts takes well under a minute). A policy naming an unknown field
        or a value routing cannot use is a 400 naming it (`policy.queues.billing.expansion`)."""
        data = valid(s.SimulationInput, request.data)
        sim = whatif.simulation_request(requested_by=request.user.get_username(), start=data["from"],
                                        end=data["to"], policy=data["policy"], seed=data["seed"])
        return Response(self._out(sim), status=202)

    @extend_schema(responses={200: s.SimulationOutput, 404: ErrorSerializer})
    def retrieve(self, request, simulation_id=None):
        """One simulation: its status and, once done, the figures side by side. Team supervisors see their teams'
        queues and agents, with the totals of those."""
        try:
            sim = self.get_queryset().filter(id=uuid.UUID(str(simulation_id))).first()
        except ValueError:
            sim = None
        if sim is None:
            access.deny(request, action=f"GET {request.path}", object_type="simulation", object_id=simulation_id)
        return Response(self._out(sim))
