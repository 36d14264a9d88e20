from rest_framework import serializers


class ScriptRunOutput(serializers.Serializer):
    script = serializers.CharField()
    version = serializers.IntegerField()
    steps = serializers.ListField(child=serializers.DictField(), help_text="the flow (docs/PROTOCOLS.md)")
    completed = serializers.DictField(child=serializers.CharField(allow_blank=True),
                                      help_text="step key -> answer")
    next_step = serializers.CharField(allow_null=True)
    due = serializers.ListField(child=serializers.CharField(), help_text="steps still to do, in order")
    skipped = serializers.ListField(child=serializers.CharField(), help_text="off the branch a decision chose")
    required_pending = serializers.ListField(child=serializers.CharField())
    closed_gates = serializers.ListField(child=serializers.CharField(),
                                         help_text="what is refused until its step is done (account_changes)")
    required_done = serializers.IntegerField()
    required_total = serializers.IntegerField()


class SwitchInput(serializers.Serializer):
    disposition = serializers.CharField(max_length=100, required=False, default="",
                                        help_text="the contact reason whose script to follow")
    script = serializers.CharField(max_length=100, required=False, default="", help_text="or a script by name")

    schema_rules = {"anyOf": [  # validate(), for OpenAPI: one of the two, not empty
        {"required": ["disposition"], "properties": {"disposition": {"minLength": 1}}},
        {"required": ["script"], "properties": {"script": {"minLength": 1}}}]}

    def validate(self, attrs):
        if not attrs["disposition"] and not attrs["script"]:
            raise serializers.ValidationError({"disposition": "name a disposition or a script"})
        return attrs


class StepInput(serializers.Serializer):
    step = serializers.CharField(max_length=100)
    answer = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True,
                                   help_text="a decision: the option's value; else what the customer said (optional)")
