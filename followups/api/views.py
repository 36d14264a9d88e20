"""Promises to customers: callbacks, escalations, follow-up tasks, and every open promise in one list."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from contactcenter import access
from contactcenter.api import ErrorSerializer, command_meta, valid
from followups import services
from followups.api import serializers as s
from followups.models import Callback, Escalation, FollowUp
from followups.selectors import open_promises


def _agent_scope(request) -> list[str] | None:
    """The agents whose promises to list: `agent_id` if given and in your scope, else everyone in your scope
    (yourself; a supervisor's teams; None: everyone, for admins and compliance)."""
    scope = access.agent_scope(request.user)
    wanted = request.query_params.get("agent_id")
    if wanted:
        return [wanted] if scope is None or wanted in scope else []
    return scope


def _in_scope(request, record, kind: str):
    """`record` if it exists and its agent is in the caller's scope; else 404 (on record), as if it did not."""
    if record is None or not access.agent_in_scope(request.user, record.agent_id):
        access.deny(request, action=f"{request.method} {request.path}", object_type=kind,
                    object_id=getattr(record, "id", "") or request.parser_context["kwargs"].get(f"{kind}_id", ""))
    return record


def _listed(request, records, *, open_statuses: tuple[str, ...]):
    """The first 500 `records` in the caller's agent scope, of `?customer_id=`, and of `?status=` (open by default,
    one status, or all)."""
    agents = _agent_scope(request)
    if agents is not None:
        records = records.filter(agent_id__in=agents)
    if request.query_params.get("customer_id"):
        records = records.filter(customer_id=valid(_CustomerFilter, request.query_params)["customer_id"])
    wanted = request.query_params.get("status", "open")
    if wanted == "open":
        records = records.filter(status__in=open_statuses)
    elif wanted != "all":
        records = records.filter(status=wanted)
    return records[:500]


class CallbackList(APIView):
    @extend_schema(parameters=[
        OpenApiParameter("customer_id", OpenApiTypes.UUID, description="one customer's"),
        OpenApiParameter("agent_id", str, description="promised by this agent (supervisors; agents see their own)"),
        OpenApiParameter("status", str, description="open (default: scheduled or started), or one status, or all"),
    ], responses={200: s.CallbackOutput(many=True)})
    def get(self, request):
        """Callbacks, soonest first. Agents see those promised by them; staff and supervisors anyone's."""
        callbacks = _listed(request, Callback.objects.order_by("due_at"), open_statuses=Callback.OPEN)
        return Response(s.CallbackOutput(callbacks, many=True).data)

    @extend_schema(request=s.CallbackInput, responses={201: s.CallbackOutput, 400: ErrorSerializer})
    def post(self, request):
        """Promise a callback (the customer asked for one, or you promised to come back). It is yours: when it
        falls due it is routed to you if you are free and qualified, else to the queue."""
        _commanding(request)
        data = valid(s.CallbackInput, request.data)
        access.require_named(request, data)
        callback = services.callback_schedule(meta=command_meta(request), agent_id=request.user.get_username(),
                                              **data)
        return Response(s.CallbackOutput(callback).data, status=201)


def _commanding(request) -> None:
    """Promises are made and kept by agents and supervisors: compliance reads them, a user without a role
    does nothing (403 before any object is looked at)."""
    if not access.may_command(request.user):
        raise PermissionDenied("your role reads promises; it does not make, cancel or close them")


class CallbackCancel(APIView):
    @extend_schema(request=s.CancelInput, responses={200: s.CallbackOutput, 403: ErrorSerializer,
                                                     404: ErrorSerializer, 409: ErrorSerializer})
    def post(self, request, callback_id):
        """Cancel an open callback (yours, or any for supervisors), with the reason."""
        _commanding(request)
        _in_scope(request, Callback.objects.filter(id=callback_id).first(), "callback")
        data = valid(s.CancelInput, request.data)
        return Response(s.CallbackOutput(services.callback_cancel(callback_id=callback_id, meta=command_meta(request),
                                                                  **data)).data)


class _CustomerFilter(s.serializers.Serializer):
    customer_id = s.serializers.UUIDField()


class InteractionEscalate(APIView):
    @extend_schema(request=s.EscalateInput, responses={201: s.EscalationOutput, 400: ErrorSerializer,
                                                       409: ErrorSerializer})
    def post(self, request, interaction_id):
        """Escalate a contact you are handling: to a specialist queue (it is transferred there and routed) or to
        the supervisors (alerted on the wallboard). Tell the customer `respond_by`; past it, the supervisors
        are alerted again."""
        data = valid(s.EscalateInput, request.data)
        escalation = services.escalate(interaction_id=interaction_id, agent_id=request.user.get_username(),
                                       meta=command_meta(request), **data)
        return Response(s.EscalationOutput(escalation).data, status=201)


class EscalationList(APIView):
    @extend_schema(parameters=[OpenApiParameter("status", str, description="open (default), accepted or all")],
                   responses={200: s.EscalationOutput(many=True)})
    def get(self, request):
        """Escalations, soonest due first: supervisors see all, agents the ones they raised."""
        escalations = access.by_agent(request.user, Escalation.objects.order_by("respond_by"))
        wanted = request.query_params.get("status", "open")
        if wanted != "all":
            escalations = escalations.filter(status=wanted)
        return Response(s.EscalationOutput(escalations[:500], many=True).data)


class EscalationAccept(APIView):
    @extend_schema(request=None, responses={200: s.EscalationOutput, 403: ErrorSerializer, 404: ErrorSerializer,
                                            409: ErrorSerializer})
    def post(self, request, escalation_id):
        """A supervisor takes the escalation up: its clock stops."""
        if not access.is_supervisor(request.user):
            raise PermissionDenied("supervisors take escalations up")
        _in_scope(request, Escalation.objects.filter(id=escalation_id).first(), "escalation")
        escalation = services.escalation_accept(escalation_id=escalation_id, by=request.user.get_username(),
                                                meta=command_meta(request))
        return Response(s.EscalationOutput(escalation).data)


class FollowUpList(APIView):
    @extend_schema(parameters=[
        OpenApiParameter("customer_id", OpenApiTypes.UUID, description="one customer's"),
        OpenApiParameter("agent_id", str, description="owned by this agent (supervisors; agents see their own)"),
        OpenApiParameter("status", str, description="open (default), done, cancelled or all"),
    ], responses={200: s.FollowUpOutput(many=True)})
    def get(self, request):
        """Follow-up tasks, soonest due first: agents see their own, supervisors anyone's."""
        tasks = _listed(request, FollowUp.objects.order_by("due_at"), open_statuses=(FollowUp.OPEN,))
        return Response(s.FollowUpOutput(tasks, many=True).data)

    @extend_schema(request=s.FollowUpInput, responses={201: s.FollowUpOutput, 400: ErrorSerializer,
                                                       403: ErrorSerializer})
    def post(self, request):
        """Promise a follow-up task with a due time (for the customer of a contact, or a customer). It is yours
        unless a supervisor assigns it; past its due time it is flagged overdue and the supervisors alerted."""
        _commanding(request)
        data = valid(s.FollowUpInput, request.data)
        access.require_named(request, data)
        owner = data.pop("agent_id", None) or request.user.get_username()
        if owner != request.user.get_username() and not (access.is_supervisor(request.user)
                                                          and access.agent_in_scope(request.user, owner)):
            raise PermissionDenied("only a supervisor assigns a follow-up to someone else (of their teams)")
        task = services.followup_create(agent_id=owner, meta=command_meta(request), **data)
        return Response(s.FollowUpOutput(task).data, status=201)


class _FollowUpClose(APIView):
    done = True

    @extend_schema(request=s.FollowUpCloseInput, responses={200: s.FollowUpOutput, 400: ErrorSerializer,
                                                            404: ErrorSerializer, 409: ErrorSerializer})
    def post(self, request, followup_id):
        _commanding(request)
        _in_scope(request, FollowUp.objects.filter(id=followup_id).first(), "followup")  # existence does not leak
        data = valid(s.FollowUpCloseInput, request.data)
        task = services.followup_close(followup_id=followup_id, by=request.user.get_username(), done=self.done,
                                       meta=command_meta(request), **data)
        return Response(s.FollowUpOutput(task).data)


class FollowUpDone(_FollowUpClose):
    """Mark your follow-up done, with the outcome (supervisors: anyone's)."""

    done = True


class FollowUpCancel(_FollowUpClose):
    """Cancel your follow-up, with the reason (supervisors: anyone's)."""

    done = False


class PromiseList(APIView):
    @extend_schema(parameters=[
        OpenApiParameter("customer_id", OpenApiTypes.UUID, description="one customer's"),
        OpenApiParameter("agent_id", str, description="this agent's (supervisors; agents see their own)"),
    ], responses={200: s.PromiseOutput(many=True)})
    def get(self, request):
        """Every open promise, soonest due first: callbacks not yet kept, open follow-up tasks and escalations
        not yet taken up, each with `overdue`. Agents see theirs; supervisors anyone's (or everyone's)."""
        customer_id = None
        if request.query_params.get("customer_id"):
            customer_id = valid(_CustomerFilter, request.query_params)["customer_id"]
        items = open_promises(agent_ids=_agent_scope(request),
                              customer_ids=[customer_id] if customer_id else None)
        return Response(s.PromiseOutput(items, many=True).data)
