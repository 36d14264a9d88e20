import copy

from rest_framework import serializers

from contactcenter.api import iso_datetime
from customers.identity import KINDS
from interactions import domain
from interactions.models import Interaction
from interactions.webhooks import html_to_text

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

    schema_rules = {"oneOf": [{"required": ["customer_id"]}, {"required": ["identity"]}]}  # validate(), for OpenAPI

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


class WarnInput(serializers.Serializer):
    reason = serializers.ChoiceField(choices=domain.WARNING_REASONS)
    text = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True,
                                 help_text="the words of the warning, as said or written to the customer")


class EndInput(serializers.Serializer):
    reason = serializers.ChoiceField(choices=domain.END_REASONS, help_text=(
        "resolved; customer_request (the customer asked to end); agent_ended_abuse (only after "
        "ABUSE_WARNINGS_REQUIRED warnings: 409 protocol_refused before); technical_drop (a callback to the "
        "customer is scheduled); customer_hung_up; customer_left"))
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


def interaction_json(row: Interaction) -> dict:
    """InteractionOutput(row).data without building a serializer: the intake path answers thousands a second.

    A test holds the two equal, so the schema stays InteractionOutput's.
    """
    return {"id": str(row.id), "customer_id": str(row.customer_id), "case_id": str(row.case_id),
            "channel": row.channel, "direction": row.direction, "status": row.status, "queue": row.queue,
            "agent_id": row.agent_id, "version": row.version, "created_at": iso_datetime(row.created_at),
            "updated_at": iso_datetime(row.updated_at)}


def command_json(result, *, duplicate: bool | None = None) -> dict:
    """InteractionCommandOutput (or, with `duplicate`, WebhookOutput) of a service result."""
    body = {"interaction": interaction_json(result.interaction), "positions": list(result.positions),
            "customer_created": result.customer_created}
    if duplicate is not None:
        body["duplicate"] = duplicate
    return body


class InteractionCommandOutput(serializers.Serializer):
    interaction = InteractionOutput()
    positions = serializers.ListField(child=serializers.IntegerField())
    customer_created = serializers.BooleanField()


# --- channel provider webhooks ---------------------------------------------


class FieldsBuiltOnce:
    """Builds a serializer class's fields once instead of deep-copying every declared field per request.

    DRF deep-copies each declared field (re-running its constructor) for every
    serializer instance; on the webhook path that was about a tenth of a
    request's CPU (docs/BENCHMARKS.md). Fields are stateless while validating,
    so each instance gets shallow copies of one template, bound to itself.
    """

    def get_fields(self):
        cls = type(self)
        template = cls.__dict__.get("_fields_template")
        if template is None:
            template = super().get_fields()
            cls._fields_template = template
        return {name: copy.copy(field) for name, field in template.items()}


class WebhookInput(FieldsBuiltOnce, serializers.Serializer):
    """What every provider sends; each channel adds its own fields."""

    # `from` is a Python keyword: declared in get_fields() below.
    needs_from = True

    provider_message_id = serializers.CharField(max_length=200, help_text="the provider's id of this delivery "
                                                                          "(repeats are answered once)")
    occurred_at = serializers.DateTimeField(required=False, help_text="when it happened (default: now)")
    display_name = serializers.CharField(max_length=200, required=False)
    conversation_id = serializers.CharField(max_length=200, required=False,
                                            help_text="the provider's thread, call or session id")
    direction = serializers.ChoiceField(choices=domain.DIRECTIONS, default="inbound")
    body = serializers.CharField(max_length=MAX_BODY, required=False, allow_blank=True, trim_whitespace=False)
    queue = serializers.CharField(max_length=100, required=False, help_text="queue to wait in (default: default)")

    def get_fields(self):
        fields = super().get_fields()
        # The customer's identity: the sender of an inbound message, the one an outbound one goes to.
        fields["from"] = IdentityInput(required=False)
        return fields

    def validate(self, attrs):
        if self.needs_from_for(attrs) and "from" not in attrs:
            raise serializers.ValidationError({"from": "This field is required."})
        return attrs

    def needs_from_for(self, attrs) -> bool:
        return self.needs_from


class VoiceWebhookInput(WebhookInput):
    event = serializers.ChoiceField(choices=domain.CALL_EVENTS)
    conversation_id = serializers.CharField(max_length=200, help_text="the provider's call id")
    agent_id = serializers.CharField(max_length=64, required=False, help_text="ringing at / answered by this agent")
    to_queue = serializers.CharField(max_length=100, required=False)
    to_agent_id = serializers.CharField(max_length=64, required=False)
    note = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)
    # Plain text, checked by the domain against END_REASONS (400 naming `reason`).
    reason = serializers.CharField(max_length=50, required=False, help_text="ended: one of the end reasons")
    duration_seconds = serializers.IntegerField(min_value=0, required=False)
    recording_ref = serializers.CharField(max_length=500, required=False)
    recording_consent = serializers.BooleanField(required=False, allow_null=True, default=None)
    speaker = serializers.ChoiceField(choices=domain.SPEAKERS, required=False,
                                      help_text="transcript: who spoke (the text is in body)")
    offset_seconds = serializers.FloatField(min_value=0, required=False,
                                            help_text="transcript: where in the call the segment starts")

    def needs_from_for(self, attrs) -> bool:
        return attrs["event"] == "ringing"


class ChatWebhookInput(WebhookInput):
    event = serializers.ChoiceField(choices=domain.CHAT_EVENTS, default="message")
    conversation_id = serializers.CharField(max_length=200, help_text="the provider's chat session id")
    reason = serializers.CharField(max_length=50, default="customer_left", help_text="end: one of the end reasons")

    def needs_from_for(self, attrs) -> bool:
        return attrs["event"] == "start"

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if attrs["event"] == "message" and not attrs.get("body"):
            raise serializers.ValidationError({"body": "a chat message needs a body"})
        return attrs


class SmsWebhookInput(WebhookInput):
    body = serializers.CharField(max_length=MAX_BODY, trim_whitespace=False)


class SocialWebhookInput(WebhookInput):
    kind = serializers.ChoiceField(choices=domain.SOCIAL_KINDS, help_text="dm (direct message) or mention (public)")
    body = serializers.CharField(max_length=MAX_BODY, trim_whitespace=False)


def _message_id(value: str) -> str:
    return value.strip().strip("<>").strip()


class EmailWebhookInput(WebhookInput):
    message_id = serializers.CharField(max_length=500, required=False,
                                       help_text="the Message-ID header (default: provider_message_id)")
    in_reply_to = serializers.CharField(max_length=500, required=False, allow_blank=True)
    references = serializers.ListField(child=serializers.CharField(max_length=500), required=False,
                                       max_length=200, help_text="the References header (a list, or the header text)")
    subject = serializers.CharField(max_length=500, required=False, allow_blank=True)
    sender = serializers.CharField(max_length=254, required=False, help_text="From header (default: from.value)")
    to = serializers.ListField(child=serializers.CharField(max_length=254), required=False, default=list,
                               max_length=100)
    cc = serializers.ListField(child=serializers.CharField(max_length=254), required=False, default=list,
                               max_length=100)
    html = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                 help_text="HTML body; kept as its text only")

    def to_internal_value(self, data):
        if isinstance(data, dict) and isinstance(data.get("references"), str):
            data = {**data, "references": data["references"].split()}
        return super().to_internal_value(data)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        attrs["message_id"] = _message_id(attrs.get("message_id") or attrs["provider_message_id"])
        attrs["in_reply_to"] = _message_id(attrs.get("in_reply_to") or "")
        attrs["references"] = [_message_id(r) for r in attrs.get("references", []) if _message_id(r)]
        if not attrs.get("body"):
            if not attrs.get("html"):
                raise serializers.ValidationError({"body": "an email needs a text body (body) or an html body"})
            attrs["body"] = html_to_text(attrs["html"])
            if len(attrs["body"]) > MAX_BODY:
                raise serializers.ValidationError(
                    {"html": f"the text of the HTML body is longer than {MAX_BODY} characters"})
        attrs.pop("html", None)
        return attrs


WEBHOOK_INPUTS = {"voice": VoiceWebhookInput, "chat": ChatWebhookInput, "email": EmailWebhookInput,
                  "social": SocialWebhookInput, "sms": SmsWebhookInput}


class WebhookOutput(serializers.Serializer):
    interaction = InteractionOutput()
    positions = serializers.ListField(child=serializers.IntegerField())
    customer_created = serializers.BooleanField()
    duplicate = serializers.BooleanField(help_text="a repeated delivery: this is the original result")
