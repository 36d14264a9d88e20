"""An interaction's mood for the agent handling it and for supervisors."""

import uuid

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from contactcenter.api import ErrorSerializer
from intelligence.api.serializers import MoodOutput
from intelligence.models import Mood
from routing.selectors import may_follow


class InteractionMood(APIView):
    @extend_schema(responses={200: MoodOutput, 404: ErrorSerializer})
    def get(self, request, interaction_id: uuid.UUID):
        """The contact's running sentiment and the red flags raised on it (docs/PROTOCOLS.md), for the agent it
        is with and for supervisors (404 for anyone else). A contact with no inbound text yet reads neutral."""
        if not may_follow(request.user, interaction_id):
            raise NotFound("no such interaction")
        mood = Mood.objects.filter(interaction_id=interaction_id).first() or Mood(interaction_id=interaction_id)
        return Response(MoodOutput(mood).data)
