from rest_framework import serializers

from followups.models import Callback, Escalation, FollowUp
from interactions.domain import CHANNELS


class CallbackInput(serializers.Serializer):
    customer_id = serializers.UUIDField()
    reason = serializers.ChoiceField(choices=["customer_requested", "promised"],
                                     help_text="technical_drop callbacks are scheduled by the system")
    due_at = serializers.DateTimeField(help_text="when to call back (in the past: at once)")
    channel = serializers.ChoiceField(choices=CHANNELS, required=False,
                                      help_text="default: the customer's preferred channel")
    queue = serializers.CharField(max_length=100, required=False, help_text="default: the origin interaction's")
    origin_interaction_id = serializers.UUIDField(required=False, help_text="the contact it was promised on")
    note = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)


class CancelInput(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class CallbackOutput(serializers.ModelSerializer):
    class Meta:
        model = Callback
        fields = ["id", "customer_id", "reason", "due_at", "channel", "queue", "agent_id", "origin_interaction_id",
                  "case_id", "status", "interaction_id", "created_at"]


class EscalateInput(serializers.Serializer):
    target = serializers.ChoiceField(choices=["queue", "supervisor"])
    queue = serializers.CharField(max_length=100, required=False,
                                  help_text="target queue: the specialist queue (required then)")
    reason = serializers.CharField(max_length=2000)
    respond_within_minutes = serializers.IntegerField(min_value=1, max_value=7 * 24 * 60, help_text=(
        "the response time told to the customer; past it, the supervisors are alerted"))


class EscalationOutput(serializers.ModelSerializer):
    class Meta:
        model = Escalation
        fields = ["id", "interaction_id", "customer_id", "agent_id", "target", "queue", "reason", "respond_by",
                  "status", "breached", "accepted_by", "accepted_at", "created_at"]


class FollowUpInput(serializers.Serializer):
    interaction_id = serializers.UUIDField(required=False, help_text="the contact it was promised on")
    customer_id = serializers.UUIDField(required=False, help_text="the customer (implied by interaction_id)")
    due_at = serializers.DateTimeField(help_text="when it must be done by; past it, the supervisors are alerted")
    note = serializers.CharField(max_length=2000, help_text="what was promised")
    agent_id = serializers.CharField(max_length=150, required=False,
                                     help_text="who owns it (supervisors may assign it; default: you)")

    # followups.services.followup_create, stated for OpenAPI: the customer, or the contact that names them.
    schema_rules = {"anyOf": [{"required": ["interaction_id"]}, {"required": ["customer_id"]}]}


class FollowUpCloseInput(serializers.Serializer):
    text = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True,
                                 help_text="done: the outcome; cancel: the reason (required)")


class FollowUpOutput(serializers.ModelSerializer):
    class Meta:
        model = FollowUp
        fields = ["id", "customer_id", "interaction_id", "agent_id", "note", "due_at", "status", "overdue",
                  "closed_by", "closed_at", "created_at"]


class PromiseOutput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["callback", "followup", "escalation"])
    id = serializers.UUIDField()
    customer_id = serializers.UUIDField()
    agent_id = serializers.CharField(allow_null=True)
    due_at = serializers.DateTimeField()
    status = serializers.CharField()
    overdue = serializers.BooleanField()
    what = serializers.CharField()
    interaction_id = serializers.UUIDField(allow_null=True)
