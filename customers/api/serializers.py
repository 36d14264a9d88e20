from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from contactcenter.api import iso_datetime
from customers import domain
from customers.domain import CHANNELS, VIP_TIERS
from customers.models import CustomerProfile, TimelineEntry
from events import registry
from followups.api.serializers import PromiseOutput


def _domain_check(normalize):
    """A serializer field validator from a domain normaliser: the domain's message, under the field's name."""

    def validate(self, value):
        try:
            return normalize(value)
        except domain.InvalidValue as exc:
            raise serializers.ValidationError(str(exc)) from None

    return validate



MAX_VERSION = 2**31 - 1  # a stream version is a PostgreSQL integer: a larger one is bad input, not a 500

class RegisterCustomerInput(serializers.Serializer):
    display_name = serializers.CharField(max_length=200)
    email = serializers.EmailField(required=False, allow_null=True, max_length=254)
    # Not trimmed: the pattern (in the schema too) holds for the value as sent; the domain normalises it to E.164.
    phone = serializers.RegexField(r"^\+?[0-9 ()\-]{3,40}$", required=False, allow_null=True, max_length=40,
                                   trim_whitespace=False,
                                   error_messages={"invalid": "Enter a phone number: digits, spaces, ( ) - and an optional leading +."})
    preferred_channel = serializers.ChoiceField(choices=CHANNELS, required=False, default="")


_HHMM = {"type": "string", "pattern": domain.HHMM_PATTERN, "description": "HH:MM, 00:00-23:59"}
# domain.normalize_contact_hours, for OpenAPI: all three, or none at all.
CONTACT_HOURS = {"type": "object", "additionalProperties": False,
                 "properties": {"tz": {"type": "string", "description": "an IANA time zone"}, "from": _HHMM, "to": _HHMM},
                 "oneOf": [{"maxProperties": 0}, {"required": ["tz", "from", "to"]}]}


class ChangeCustomerInput(serializers.Serializer):
    expected_version = serializers.IntegerField(
        min_value=1, max_value=MAX_VERSION, help_text="the `version` you last read (409 if stale)")
    display_name = serializers.CharField(max_length=200, required=False)
    email = serializers.EmailField(required=False, max_length=254)
    phone = serializers.RegexField(r"^\+?[0-9 ()\-]{3,40}$", required=False, max_length=40, trim_whitespace=False)
    preferred_channel = serializers.ChoiceField(choices=CHANNELS, required=False)
    language = serializers.CharField(max_length=35, required=False, allow_blank=True,
                                     help_text='BCP 47 tag, e.g. "de-DE"; "" clears')
    contact_hours = extend_schema_field(CONTACT_HOURS)(serializers.JSONField(
        required=False, help_text='{"tz": "Europe/Berlin", "from": "09:00", "to": "17:00"}; {} clears'))
    vip_tier = serializers.ChoiceField(choices=VIP_TIERS, required=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=domain.MAX_TAG_LENGTH), required=False,
                                 max_length=domain.MAX_TAGS, help_text="replaces the list; [] clears")
    notes = serializers.CharField(max_length=domain.MAX_NOTES_LENGTH, required=False, allow_blank=True)

    # For OpenAPI: the PATCH that takes this still needs expected_version (drf-spectacular makes a PATCH body's
    # fields all optional), and at least one field to change.
    schema_rules = {"required": ["expected_version"], "minProperties": 2}  # and something to change

    validate_language = _domain_check(domain.normalize_language)
    validate_contact_hours = _domain_check(domain.normalize_contact_hours)
    validate_tags = _domain_check(domain.normalize_tags)


class MergeCustomerInput(serializers.Serializer):
    source_id = serializers.UUIDField(help_text="the duplicate, merged into this customer and read-only after")
    expected_version = serializers.IntegerField(
        min_value=1, max_value=MAX_VERSION, help_text="this (target) customer's version you last read")
    source_expected_version = serializers.IntegerField(min_value=1, max_value=MAX_VERSION, required=False,
                                                       help_text="the source's version you last read (optional)")


class UnmergeCustomerInput(serializers.Serializer):
    source_id = serializers.UUIDField(help_text="the customer merged into this one (directly) to make its own again")
    expected_version = serializers.IntegerField(
        min_value=1, max_value=MAX_VERSION, help_text="this (target) customer's version you last read")
    source_expected_version = serializers.IntegerField(min_value=1, max_value=MAX_VERSION, required=False,
                                                       help_text="the source's version you last read (optional)")


class TimelineQuery(serializers.Serializer):
    channel = serializers.CharField(max_length=20, required=False)
    event_type = serializers.ChoiceField(choices=[], required=False, help_text="e.g. interactions.MessageRecorded",
                                         error_messages={"invalid_choice": "unknown event type {input!r}"})
    since = serializers.DateTimeField(required=False, help_text="ISO 8601; entries that occurred at or after")
    until = serializers.DateTimeField(required=False, help_text="ISO 8601; entries that occurred before")
    as_of = serializers.DateTimeField(required=False, help_text="ISO 8601, not in the future: the timeline as it "
                                      "stood then, from the events recorded up to it (docs/HISTORY.md)")

    def validate_as_of(self, value):
        return _as_of(value)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The registry's types, read here (every app's events are registered by now): the schema lists them.
        self.fields["event_type"].choices = [et.name for et in registry.all_types()]

    def validate(self, attrs):
        if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": "must be after since"})
        return attrs


def _as_of(value):
    from django.utils import timezone

    if value > timezone.now():
        raise serializers.ValidationError("must not be in the future: history is known only up to now")
    return value


class AsOfQuery(serializers.Serializer):
    as_of = serializers.DateTimeField(required=False, help_text="ISO 8601, not in the future: the answer as it "
                                      "stood then, from the events recorded up to it (docs/HISTORY.md)")

    def validate_as_of(self, value):
        return _as_of(value)


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
        fields = ["id", "display_name", "email", "phone", "preferred_channel", "language", "contact_hours",
                  "vip_tier", "tags", "notes", "registered_at", "version", "event_count", "last_event_at", "erased",
                  "merged_into"]


class TimelineEntryOutput(serializers.ModelSerializer):
    class Meta:
        model = TimelineEntry
        fields = ["position", "event_id", "event_type", "stream_type", "stream_id", "occurred_at", "channel", "actor",
                  "data", "personal_fields"]


def timeline_json(entry: TimelineEntry) -> dict:
    """TimelineEntryOutput(entry).data without a serializer (a page is 100 entries; a test holds them equal)."""
    return {"position": entry.position, "event_id": str(entry.event_id), "event_type": entry.event_type,
            "stream_type": entry.stream_type, "stream_id": str(entry.stream_id), "occurred_at": iso_datetime(entry.occurred_at),
            "channel": entry.channel, "actor": entry.actor, "data": entry.data,
            "personal_fields": entry.personal_fields}


class IdentityKindOutput(serializers.Serializer):
    kind = serializers.CharField()
    provider = serializers.CharField()


class OpenInteractionOutput(serializers.Serializer):
    id = serializers.UUIDField()
    case_id = serializers.UUIDField()
    channel = serializers.CharField()
    direction = serializers.CharField()
    status = serializers.CharField()
    queue = serializers.CharField(allow_null=True)
    agent_id = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


class OpenCaseOutput(serializers.Serializer):
    id = serializers.UUIDField()
    created_at = serializers.DateTimeField(allow_null=True)
    open_interactions = serializers.ListField(child=serializers.UUIDField())


class ContactOutput(serializers.Serializer):
    interaction_id = serializers.UUIDField()
    case_id = serializers.UUIDField(allow_null=True)
    channel = serializers.CharField()
    direction = serializers.CharField(allow_null=True)
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    end_reason = serializers.CharField(allow_null=True)
    disposition = serializers.CharField(allow_null=True)
    outcome = serializers.ChoiceField(choices=["open", "ended", "resolved", "abandoned"])


class SentimentPointOutput(serializers.Serializer):
    interaction_id = serializers.UUIDField()
    running = serializers.FloatField()
    lowest = serializers.FloatField()
    flags = serializers.ListField(child=serializers.CharField())
    at = serializers.DateTimeField()


class SentimentTrendOutput(serializers.Serializer):
    latest = serializers.FloatField(allow_null=True)
    trend = serializers.ChoiceField(choices=["declining", "improving", "steady", "unknown"])
    interactions = SentimentPointOutput(many=True)


class CustomerContextOutput(serializers.Serializer):
    customer = CustomerProfileOutput(source="profile")
    identities = IdentityKindOutput(many=True, help_text="kinds only: the values are personal data")
    preferences = serializers.SerializerMethodField()
    vip_tier = serializers.CharField(source="profile.vip_tier")
    open_interactions = OpenInteractionOutput(many=True)
    open_cases = OpenCaseOutput(many=True)
    last_contacts = ContactOutput(many=True, help_text="the last 5 interactions, newest first, with their outcome")
    repeat_contact = serializers.BooleanField(
        help_text="an interaction resolved in the last 7 days whose case is still open or was contacted again "
                  "within 7 days (see customers.selectors.repeat_contacts)")
    repeat_of = serializers.ListField(child=serializers.UUIDField(), help_text="those resolved interactions")
    sentiment = SentimentTrendOutput(help_text="how the customer has felt lately: the running sentiment (-1 to 1) "
                                               "of their last 10 scored interactions, and its trend")
    open_promises = PromiseOutput(many=True, help_text="callbacks, follow-up tasks and escalations still owed to "
                                                       "the customer, soonest due first (at most 20)")

    def get_preferences(self, obj) -> dict:
        p = obj.profile
        return {"preferred_channel": p.preferred_channel, "language": p.language, "contact_hours": p.contact_hours}
