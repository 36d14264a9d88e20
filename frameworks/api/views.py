"""A contact's call framework: read it, switch it for a contact reason, record a step."""

import uuid

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from contactcenter.api import ErrorSerializer, command_meta, valid
from frameworks import services
from frameworks.api import serializers as s
from frameworks.selectors import run_view
from routing.selectors import may_follow


class InteractionScript(APIView):
    @extend_schema(responses={200: s.ScriptRunOutput, 404: ErrorSerializer})
    def get(self, request, interaction_id: uuid.UUID):
        """The script this contact follows and where it stands: the next step, the required steps not done, and
        the gates still closed (for the agent handling it and supervisors; 404 when it follows none)."""
        if not may_follow(request.user, interaction_id):
            raise NotFound("no such interaction")
        view = run_view(interaction_id)
        if view is None:
            raise NotFound("this contact follows no script")
        return Response(s.ScriptRunOutput(view).data)

    @extend_schema(request=s.SwitchInput, responses={200: s.ScriptRunOutput, 400: ErrorSerializer,
                                                     409: ErrorSerializer})
    def post(self, request, interaction_id: uuid.UUID):
        """Switch the contact you are handling to the script of a contact reason (or one by name); steps done
        whose keys it shares carry over."""
        data = valid(s.SwitchInput, request.data)
        services.script_switch(interaction_id=interaction_id, agent_id=request.user.get_username(),
                               meta=command_meta(request), **data)
        return Response(s.ScriptRunOutput(run_view(interaction_id)).data)


class InteractionScriptStep(APIView):
    @extend_schema(request=s.StepInput, responses={200: s.ScriptRunOutput, 400: ErrorSerializer,
                                                   409: ErrorSerializer})
    def post(self, request, interaction_id: uuid.UUID):
        """Record a step of the script as done (a decision with the option chosen). Identity verification and
        other gating steps open what they gate (e.g. account changes) once recorded."""
        data = valid(s.StepInput, request.data)
        services.step_complete(interaction_id=interaction_id, agent_id=request.user.get_username(),
                               meta=command_meta(request), **data)
        return Response(s.ScriptRunOutput(run_view(interaction_id)).data)
