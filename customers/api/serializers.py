from rest_framework import serializers

from customers.domain import CHANNELS
from customers.models import CustomerProfile, TimelineEntry


class RegisterCustomerInput(serializers.Serializer):
    display_name = serializers.CharField(max_length=200)
    email = serializers.EmailField(required=False, allow_null=True, max_length=254)
    phone = serializers.RegexField(r"^\+?[0-9 ()\-]{3,40}$", required=False, allow_null=True, max_length=40,
                                   error_messages={"invalid": "Enter a phone number: digits, spaces, ( ) - and an optional leading +."})
    preferred_channel = serializers.ChoiceField(choices=CHANNELS, required=False, default="")


class ChangeCustomerInput(serializers.Serializer):
    expected_version = serializers.IntegerField(min_value=1, help_text="the `version` you last read (409 if stale)")
    display_name = serializers.CharField(max_length=200, required=False)
    email = serializers.EmailField(required=False, max_length=254)
    phone = serializers.RegexField(r"^\+?[0-9 ()\-]{3,40}$", required=False, max_length=40)
    preferred_channel = serializers.ChoiceField(choices=CHANNELS, required=False)


class EraseCustomerInput(serializers.Serializer):
    reason = serializers.CharField(max_length=500, help_text="why (e.g. the data-protection request reference)")


class CommandOutput(serializers.Serializer):
    id = serializers.UUIDField(source="customer_id")
    version = serializers.IntegerField()
    positions = serializers.ListField(child=serializers.IntegerField(), help_text="positions of the events appended")


class CustomerProfileOutput(serializers.ModelSerializer):
    id = serializers.UUIDField(source="customer_id")

    class Meta:
        model = CustomerProfile
        fields = ["id", "display_name", "email", "phone", "preferred_channel", "registered_at", "version",
                  "event_count", "last_event_at", "erased"]


class TimelineEntryOutput(serializers.ModelSerializer):
    class Meta:
        model = TimelineEntry
        fields = ["position", "event_id", "event_type", "stream_type", "stream_id", "occurred_at", "channel", "actor",
                  "data", "personal_fields"]
