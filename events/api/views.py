"""Read access to the event store itself (staff only): one stream, or everything from a position."""

import uuid

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from contactcenter.access import IsAdmin
from contactcenter.api import valid
from events import store


class EnvelopeOutput(serializers.Serializer):
    position = serializers.IntegerField()
    event_id = serializers.UUIDField()
    event_type = serializers.CharField()
    schema_version = serializers.IntegerField()
    stream_type = serializers.CharField()
    stream_id = serializers.UUIDField()
    stream_version = serializers.IntegerField()
    customer_id = serializers.UUIDField(allow_null=True)
    occurred_at = serializers.DateTimeField()
    recorded_at = serializers.DateTimeField()
    correlation_id = serializers.UUIDField(allow_null=True)
    causation_id = serializers.UUIDField(allow_null=True)
    actor = serializers.DictField()
    channel = serializers.CharField()
    data = serializers.DictField()


class EventPage(serializers.Serializer):
    events = EnvelopeOutput(many=True)
    next_after = serializers.IntegerField(help_text="pass as `after` to read on")


class ReadAllInput(serializers.Serializer):
    after = serializers.IntegerField(min_value=0, default=0, help_text="position to read after")
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=100, help_text="at most 1000")


class EventListView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        parameters=[ReadAllInput],  # with its bounds
        responses={200: EventPage},
    )
    def get(self, request):
        """All events in position order from a position (decrypted, upcast)."""
        params = valid(ReadAllInput, request.query_params)
        events = store.read_all(after_position=params["after"], limit=params["limit"])
        next_after = events[-1].position if events else params["after"]
        return Response({"events": [e.as_dict() for e in events], "next_after": next_after})


class StreamView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses={200: EnvelopeOutput(many=True)})
    def get(self, request, stream_id: uuid.UUID):
        """Every event of one stream in version order."""
        return Response([e.as_dict() for e in store.read_stream(stream_id)])
