from decimal import Decimal

from rest_framework import serializers

from authority.models import KINDS, Action


class ActionInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=KINDS)
    amount = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=Decimal("0.01"))
    reason = serializers.CharField(max_length=2000)


class DecisionInput(serializers.Serializer):
    note = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)


class ActionOutput(serializers.ModelSerializer):
    class Meta:
        model = Action
        fields = ["id", "interaction_id", "customer_id", "agent_id", "kind", "amount", "reason", "status",
                  "decided_by", "expected_by", "created_at", "done_at"]
