import re
from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from authority.models import KINDS, Action

# A positive amount of money as a decimal string, as every answer writes it ("120.00"; ".5" too, as a browser's
# number field may give it): at most 10 whole digits and 2 decimals, no sign, exponent or leading zero. The field
# checks this very pattern, so the schema is exact.
AMOUNT_PATTERN = r"^(?:[1-9][0-9]{0,9}(?:\.[0-9]{1,2})?|0?\.(?:[1-9][0-9]?|0[1-9]))$"


@extend_schema_field({"type": "string", "format": "decimal", "pattern": AMOUNT_PATTERN, "example": "120.00"})
class AmountField(serializers.DecimalField):
    def __init__(self, **kwargs):
        super().__init__(max_digits=12, decimal_places=2, min_value=Decimal("0.01"), **kwargs)

    def to_internal_value(self, data):
        # DRF would also take 120, "1.2e2", " +120 " or "0120": one spelling is easier to check, log and audit.
        if not isinstance(data, str) or not re.fullmatch(AMOUNT_PATTERN, data):
            self.fail("invalid")
        return super().to_internal_value(data)


class ActionInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=KINDS)
    amount = AmountField(help_text='a decimal string, e.g. "120.00"')
    reason = serializers.CharField(max_length=2000)


class DecisionInput(serializers.Serializer):
    note = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)


class ActionOutput(serializers.ModelSerializer):
    class Meta:
        model = Action
        fields = ["id", "interaction_id", "customer_id", "agent_id", "kind", "amount", "reason", "status",
                  "decided_by", "expected_by", "created_at", "done_at"]
