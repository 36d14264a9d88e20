from rest_framework import serializers

from customers.identity import KINDS
from interactions import domain
from interactions.models import Interaction

# Bodies larger than this are refused (400) rather than stored; the request
# itself is capped by DATA_UPLOAD_MAX_MEMORY_SIZE.
MAX_BODY = 20_000


class IdentityInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=KINDS)
    value = serializers.CharField(max_length=254)
    provider = serializers.CharField(max_length=20, required=False, default="")


class CreateInteractionInput(serializers.Serializer):
    channel = serializers.ChoiceField(choices=domain.CHANNELS)
    direction = serializers.ChoiceField(choices=domain.DIRECTIONS, default="inbound")
    customer_id = serializers.UUIDField(required=False)
    identity = IdentityInput(required=False, help_text="who is in touch, when the customer id is not known")
    display_name = serializers.CharField(max_length=200, required=False)
    case_id = serializers.UUIDField(required=False, help_text="continue this case (same customer)")
    subject = serializers.CharField(max_length=500, required=False)
    queue = serializers.CharField(max_length=100, required=False)

    def validate(self, attrs):
        if ("customer_id" in attrs) == ("identity" in attrs):
            raise serializers.ValidationError({"customer_id": "give exactly one of customer_id or identity"})
        return attrs


class QueueInput(serializers.Serializer):
    queue = serializers.CharField(max_length=100)


class OfferInput(serializers.Serializer):
    agent_id = serializers.CharField(max_length=64, help_text="username of the agent")


class DeclineInput(serializers.Serializer):
    reason = serializers.ChoiceField(choices=["rejected", "timeout"], default="rejected")


class TransferInput(serializers.Serializer):
    to_agent_id = serializers.CharField(max_length=64, required=False)
    to_queue = serializers.CharField(max_length=100, required=False)
    note = serializers.CharField(max_length=2000)


class MessageInput(serializers.Serializer):
    direction = serializers.ChoiceField(choices=domain.DIRECTIONS)
    body = serializers.CharField(max_length=MAX_BODY, trim_whitespace=False)
    provider_message_id = serializers.CharField(max_length=200, required=False)


class EndInput(serializers.Serializer):
    reason = serializers.ChoiceField(choices=domain.END_REASONS)
    duration_seconds = serializers.IntegerField(min_value=0, required=False)


class WrapUpInput(serializers.Serializer):
    disposition = serializers.CharField(max_length=100)
    notes = serializers.CharField(max_length=MAX_BODY, required=False, default="", allow_blank=True)


class AbandonInput(serializers.Serializer):
    waited_seconds = serializers.IntegerField(min_value=0, required=False)


class ReopenInput(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class InteractionOutput(serializers.ModelSerializer):
    case_id = serializers.UUIDField()

    class Meta:
        model = Interaction
        fields = ["id", "customer_id", "case_id", "channel", "direction", "status", "queue", "agent_id", "version",
                  "created_at", "updated_at"]


class InteractionCommandOutput(serializers.Serializer):
    interaction = InteractionOutput()
    positions = serializers.ListField(child=serializers.IntegerField())
    customer_created = serializers.BooleanField()
