from rest_framework import serializers
from rest_framework.fields import empty

from frameworks.api.serializers import ScriptRunOutput
from quality import kpis


class KpiQuery(serializers.Serializer):
    metric = serializers.ChoiceField(choices=sorted(kpis.metrics()))
    group_by = serializers.CharField(required=False, default="", allow_blank=True,
                                     help_text=f"comma-separated, any of: {', '.join(kpis.GROUPS)}")
    # `from` is a Python keyword: the field is renamed in validate().
    to = serializers.DateTimeField(help_text="end of the window (exclusive)")
    tz = serializers.CharField(required=False, default="UTC", help_text="time zone of hour/day/week groups")

    def to_internal_value(self, data):
        errors, values = {}, {}
        try:
            values = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            errors.update(exc.detail)
        try:
            values["start"] = serializers.DateTimeField().run_validation(data.get("from", empty))
        except serializers.ValidationError as exc:
            errors["from"] = exc.detail
        if errors:
            raise serializers.ValidationError(errors)
        return values

    def validate_group_by(self, value: str) -> list[str]:
        groups = [g.strip() for g in value.split(",") if g.strip()]
        unknown = [g for g in groups if g not in kpis.GROUPS]
        if unknown:
            raise serializers.ValidationError(f"unknown grouping {', '.join(unknown)}; use {', '.join(kpis.GROUPS)}")
        if len(set(groups)) != len(groups):
            raise serializers.ValidationError("a grouping is named twice")
        return groups

    def validate_tz(self, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise serializers.ValidationError(f"unknown time zone {value!r}") from None
        return value

    def validate(self, attrs):
        if attrs["start"] >= attrs["to"]:
            raise serializers.ValidationError({"to": ["must be after `from`"]})
        if (attrs["to"] - attrs["start"]).days > 400:
            raise serializers.ValidationError({"to": ["a window is at most 400 days"]})
        return attrs


class KpiRow(serializers.Serializer):
    value = serializers.FloatField(allow_null=True, help_text="the ratio (0-1), mean seconds or NPS (-100 to 100); "
                                                              "null: nothing counted")
    numerator = serializers.IntegerField(required=False)
    denominator = serializers.IntegerField(required=False)
    total_seconds = serializers.FloatField(required=False)
    count = serializers.IntegerField(required=False)
    net_promoters = serializers.IntegerField(required=False, help_text="nps: promoters minus detractors")
    responses = serializers.IntegerField(required=False, help_text="nps")
    handled_seconds = serializers.FloatField(required=False, help_text="occupancy")
    staffed_seconds = serializers.FloatField(required=False, help_text="occupancy")
    agent = serializers.CharField(required=False, allow_null=True)
    team = serializers.CharField(required=False, allow_null=True)
    queue = serializers.CharField(required=False, allow_null=True)
    channel = serializers.CharField(required=False)
    hour = serializers.DateTimeField(required=False)
    day = serializers.DateTimeField(required=False)
    week = serializers.DateTimeField(required=False)
    drilldown = serializers.CharField(required=False, allow_null=True,
                                      help_text="the contacts behind this figure: GET this path (null for occupancy)")


class KpiReport(serializers.Serializer):
    metric = serializers.CharField()
    kind = serializers.ChoiceField(choices=["ratio", "mean_seconds", "nps"])
    definition = serializers.CharField()
    group_by = serializers.ListField(child=serializers.CharField())
    to = serializers.DateTimeField()
    rows = KpiRow(many=True)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.DateTimeField()  # a Python keyword, so not a class attribute
        return fields


class SurveyAnswerInput(serializers.Serializer):
    csat = serializers.IntegerField(required=False, allow_null=True, help_text="1-5, when the survey asks for it")
    nps = serializers.IntegerField(required=False, allow_null=True, help_text="0-10, when the survey asks for it")
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class SurveyWebhookInput(SurveyAnswerInput):
    survey_id = serializers.UUIDField(required=False, help_text="the survey named in the question")
    interaction_id = serializers.UUIDField(required=False, help_text="or the interaction it asks about (an IVR "
                                                                     "survey after the call knows the call)")

    def validate(self, attrs):
        if ("survey_id" in attrs) == ("interaction_id" in attrs):
            raise serializers.ValidationError({"survey_id": ["give survey_id or interaction_id, one of them"]})
        return attrs


class SurveyOutput(serializers.Serializer):
    id = serializers.UUIDField()
    interaction_id = serializers.UUIDField()
    agent_id = serializers.CharField()
    queue = serializers.CharField(allow_null=True)
    channel = serializers.CharField()
    kind = serializers.CharField()
    outbound_interaction_id = serializers.UUIDField()
    sent_at = serializers.DateTimeField()
    answered_at = serializers.DateTimeField(allow_null=True)
    csat = serializers.IntegerField(allow_null=True)
    nps = serializers.IntegerField(allow_null=True)


class ScorecardInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    form = serializers.JSONField(help_text="sections with weights and criteria: see docs/KPIS.md")


class ScorecardOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    form = serializers.JSONField()
    active = serializers.BooleanField()


class EvaluationInput(serializers.Serializer):
    scorecard = serializers.IntegerField(help_text="a scorecard version's id")
    interaction_id = serializers.UUIDField()
    answers = serializers.DictField(help_text='criterion key -> "yes" / "no" / a number / "n/a"')


class DisputeInput(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class ResolveInput(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=["upheld", "rescored"])
    note = serializers.CharField(max_length=2000, allow_blank=True, default="")
    answers = serializers.DictField(required=False, allow_null=True, default=None,
                                    help_text="outcome rescored: the new answers, as in an evaluation")


class CalibrationQuery(serializers.Serializer):
    interaction_id = serializers.UUIDField()


class EvaluationOutput(serializers.Serializer):
    id = serializers.UUIDField()
    scorecard = serializers.CharField(source="scorecard.__str__")
    scorecard_id = serializers.IntegerField()
    interaction_id = serializers.UUIDField()
    agent_id = serializers.CharField()
    reviewer = serializers.CharField()
    answers = serializers.JSONField()
    score = serializers.FloatField(help_text="0-100; 0 when an auto-fail criterion failed")
    sections = serializers.JSONField(help_text="section name -> percentage")
    auto_failed = serializers.ListField(child=serializers.CharField())
    status = serializers.CharField()
    dispute_reason = serializers.CharField()
    resolution = serializers.CharField()
    created_at = serializers.DateTimeField()


class TranscriptLine(serializers.Serializer):
    at = serializers.DateTimeField()
    event_type = serializers.CharField()
    direction = serializers.CharField(required=False)
    body = serializers.CharField(required=False)
    recording_ref = serializers.CharField(required=False)


class EvaluationDetail(EvaluationOutput):
    transcript = TranscriptLine(many=True, help_text="the interaction's messages and recordings, beside the form")
    script = ScriptRunOutput(allow_null=True, help_text="the call framework the contact followed and how far (the "
                                                        "required steps done, the ones skipped): null if none")


class ReviewSampleOutput(serializers.Serializer):
    interaction_id = serializers.UUIDField()
    agent_id = serializers.CharField()
    week = serializers.DateField()
    weight = serializers.FloatField()
    reasons = serializers.ListField(child=serializers.CharField())
    picked_at = serializers.DateTimeField()


class KpiDrilldownQuery(KpiQuery):
    """A report's query plus the value of each of its groups: the one row to open (as the row's `drilldown`)."""

    # One optional parameter per group, named as the report row names it; given empty: the row whose group is
    # null (an interaction that never queued, an agent without a team).
    agent = serializers.CharField(required=False, allow_blank=True)
    team = serializers.CharField(required=False, allow_blank=True)
    queue = serializers.CharField(required=False, allow_blank=True)
    channel = serializers.CharField(required=False, allow_blank=True)
    hour = serializers.CharField(required=False, allow_blank=True, help_text="the row's label, e.g. 2026-11-02T09:00:00")
    day = serializers.CharField(required=False, allow_blank=True, help_text="the row's label, e.g. 2026-11-02T00:00:00")
    week = serializers.CharField(required=False, allow_blank=True, help_text="the row's label (its Monday)")

    def validate_metric(self, value: str) -> str:
        if value == "occupancy":
            raise serializers.ValidationError("occupancy is staffed time over handle time, not a count of contacts: "
                                              "it has no drill-down")
        return value

    def validate(self, attrs):
        attrs = super().validate(attrs)
        errors, match = {}, {}
        for g in kpis.GROUPS:
            if g in attrs and g not in attrs["group_by"]:
                errors[g] = [f"the report is not grouped by {g}: leave it out, or add it to group_by"]
            elif g in attrs["group_by"]:
                if g not in attrs:
                    errors[g] = [f"give the {g} of the row to open (empty for none), as its `drilldown` link does"]
                else:
                    match[g] = attrs.pop(g) or None
        if errors:
            raise serializers.ValidationError(errors)
        attrs["match"] = match
        return attrs


class DrilldownEvent(serializers.Serializer):
    event_id = serializers.UUIDField()
    position = serializers.IntegerField()
    event_type = serializers.CharField()
    occurred_at = serializers.DateTimeField()


class DrilldownRow(serializers.Serializer):
    interaction_id = serializers.UUIDField()
    customer_id = serializers.UUIDField()
    channel = serializers.CharField()
    direction = serializers.CharField()
    queue = serializers.CharField(allow_null=True)
    agent_id = serializers.CharField(allow_null=True, help_text="who handled it last")
    answered_by = serializers.CharField(allow_null=True, help_text="who accepted it first (transfer_rate's agent)")
    counted_as = serializers.CharField(help_text="ratio: `numerator` (e.g. FCR: resolved first time) or "
                                                 "`denominator_only` (e.g. FCR: a repeat contact or reopened); nps: "
                                                 "promoter, passive or detractor; mean_seconds: `seconds`")
    seconds = serializers.FloatField(required=False, help_text="mean_seconds: this contact's share of the total")
    created_at = serializers.DateTimeField()
    queued_at = serializers.DateTimeField(allow_null=True)
    answered_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    resolved_at = serializers.DateTimeField(allow_null=True)
    abandoned_at = serializers.DateTimeField(allow_null=True)
    surveyed_at = serializers.DateTimeField(allow_null=True)
    talk_seconds = serializers.FloatField()
    hold_seconds = serializers.FloatField()
    acw_seconds = serializers.FloatField()
    transfers = serializers.IntegerField()
    disposition = serializers.CharField()
    reopened = serializers.IntegerField()
    repeat_of = serializers.UUIDField(allow_null=True, help_text="the earlier contact about the same matter")
    repeat_contact_at = serializers.DateTimeField(allow_null=True, help_text="FCR: when the customer came back")
    repeat_contact_id = serializers.UUIDField(allow_null=True, help_text="FCR: the contact they came back with")
    csat = serializers.IntegerField(allow_null=True)
    nps = serializers.IntegerField(allow_null=True)
    interaction = serializers.CharField(help_text="GET: the interaction")
    routing = serializers.CharField(help_text="GET: why it went where it went (routing decisions, candidates, scores)")
    events = DrilldownEvent(many=True, help_text="the stored events the figure's fact was projected from")


class KpiDrilldown(serializers.Serializer):
    metric = serializers.CharField()
    kind = serializers.CharField()
    group = serializers.DictField(help_text="the row opened: group -> value")
    figure = serializers.DictField(help_text="the report row's figure (value and its numerator and denominator, "
                                             "or total and count): the results, over every page, add up to it")
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = DrilldownRow(many=True)
