"""Actions for a customer within the agent's authority, and supervisors' approvals above it."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from authority import services
from authority.api import serializers as s
from authority.models import Action
from contactcenter import access
from contactcenter.api import ErrorSerializer, command_meta, valid


class InteractionActions(APIView):
    @extend_schema(request=s.ActionInput, responses={
        201: OpenApiResponse(s.ActionOutput, description="`done` (within your limits) or `pending`: tell the "
                                                          "customer to expect an answer by `expected_by`"),
        400: ErrorSerializer, 409: ErrorSerializer})
    def post(self, request, interaction_id):
        """A refund, credit, discount, expedited shipping or fee waiver for the customer of a contact you are
        handling. Within your authority limits it is done at once; above them it waits for a supervisor."""
        data = valid(s.ActionInput, request.data)
        action = services.action_request(interaction_id=interaction_id, user=request.user,
                                         meta=command_meta(request), **data)
        return Response(s.ActionOutput(action).data, status=201)


class ApprovalList(APIView):
    @extend_schema(responses={200: s.ActionOutput(many=True)})
    def get(self, request):
        """Actions waiting for approval, oldest first: a supervisor's teams' (an admin's: all), an agent's own."""
        pending = access.by_agent(request.user, Action.objects.filter(status=Action.PENDING).order_by("created_at"))
        return Response(s.ActionOutput(pending[:500], many=True).data)


class _Decide(APIView):
    approved = True

    @extend_schema(request=s.DecisionInput, responses={200: s.ActionOutput, 403: ErrorSerializer,
                                                       404: ErrorSerializer, 409: ErrorSerializer})
    def post(self, request, action_id):
        if not access.is_supervisor(request.user):
            raise PermissionDenied("only a supervisor approves or rejects")
        action = Action.objects.filter(id=action_id).first()
        if action is None or not access.agent_in_scope(request.user, action.agent_id):
            access.deny(request, action=f"{request.method} {request.path}", object_type="action", object_id=action_id)
        data = valid(s.DecisionInput, request.data)
        action = services.approval_decide(action_id=action_id, approved=self.approved,
                                          by=request.user.get_username(), meta=command_meta(request), **data)
        return Response(s.ActionOutput(action).data)


class ApprovalApprove(_Decide):
    """Approve: the action is taken (supervisors)."""

    approved = True


class ApprovalReject(_Decide):
    """Reject: nothing is done (supervisors)."""

    approved = False
