from rest_framework import serializers

from incidents.models import IncidentReport


class IncidentInput(serializers.Serializer):
    interaction_id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=IncidentReport.KINDS)
    description = serializers.CharField(max_length=10_000, help_text="the customer's behaviour, in their words "
                                                                      "where you can")
    agent_responses = serializers.CharField(max_length=10_000, help_text="what you said and did in response")
    deescalation_steps = serializers.CharField(max_length=10_000, help_text="how you tried to calm it down")
    action_taken = serializers.ChoiceField(choices=IncidentReport.ACTIONS)
    supervisor = serializers.CharField(max_length=150, help_text="the supervisor involved (user name)")
    follow_up_actions = serializers.CharField(max_length=10_000, required=False, default="", allow_blank=True)


class AmendInput(serializers.Serializer):
    field = serializers.ChoiceField(choices=["description", "agent_responses", "deescalation_steps",
                                             "follow_up_actions", "contact_details"])
    value = serializers.CharField(max_length=10_000)
    reason = serializers.CharField(max_length=2_000)


class IncidentSummary(serializers.ModelSerializer):
    class Meta:
        model = IncidentReport
        fields = ["id", "interaction_id", "customer_id", "agent_id", "kind", "action_taken", "supervisor",
                  "contact_started_at", "created_at"]


class IncidentOutput(serializers.ModelSerializer):
    class Meta:
        model = IncidentReport
        fields = ["id", "interaction_id", "customer_id", "agent_id", "kind", "contact_started_at",
                  "duration_seconds", "channel", "contact_details", "description", "agent_responses",
                  "deescalation_steps", "warnings", "action_taken", "supervisor", "follow_up_actions", "amendments",
                  "created_at"]
