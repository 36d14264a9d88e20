from rest_framework import serializers

from routing import domain
from routing.models import Agent, Queue


class AgentOutput(serializers.ModelSerializer):
    agent_id = serializers.CharField(source="user.username")
    team = serializers.CharField(source="team.name", allow_null=True, default=None)
    skills = serializers.SerializerMethodField()

    class Meta:
        model = Agent
        fields = ["agent_id", "team", "skills", "languages", "capacity", "voice_with_others", "presence",
                  "presence_reason", "presence_since", "idle_since", "missed_offers", "version"]

    def get_skills(self, agent) -> dict[str, int]:
        return {s.skill_id: s.proficiency for s in agent.skills.all()}


class PresenceInput(serializers.Serializer):
    presence = serializers.ChoiceField(choices=domain.PRESENCES)
    reason = serializers.CharField(max_length=100, required=False, default="", allow_blank=True,
                                   help_text='a reason code, e.g. "lunch", "training"')


class QueueOutput(serializers.ModelSerializer):
    skills = serializers.SerializerMethodField()

    class Meta:
        model = Queue
        fields = ["name", "channels", "language", "priority", "service_level_percent", "service_level_seconds",
                  "overflow_queue", "overflow_after_seconds", "offer_timeout_seconds", "max_missed_offers", "expansion",
                  "vip_boost", "repeat_boost", "preferred_agent_hours", "tie_break", "skills"]

    def get_skills(self, queue) -> list[dict]:
        return [{"skill": s.skill_id, "min_proficiency": s.min_proficiency, "secondary": s.secondary}
                for s in queue.skills.all()]


class QueueStatsOutput(serializers.Serializer):
    queue = serializers.CharField()
    waiting = serializers.IntegerField()
    offered = serializers.IntegerField()
    in_hand = serializers.IntegerField(help_text="accepted or on hold")
    longest_wait_seconds = serializers.FloatField()
    agents = serializers.DictField(child=serializers.IntegerField(),
                                   help_text="qualified agents by presence (available, busy, break, ...)")
    since = serializers.DateTimeField(help_text="today's figures count from here (midnight UTC)")
    answered = serializers.IntegerField()
    answered_within_target = serializers.IntegerField(help_text="within the queue's service_level_seconds")
    service_level = serializers.FloatField(allow_null=True, help_text="answered within target / answered")
    average_speed_of_answer_seconds = serializers.FloatField(allow_null=True)
    abandoned = serializers.IntegerField()


class RoutingStepOutput(serializers.Serializer):
    position = serializers.IntegerField()
    occurred_at = serializers.DateTimeField()
    event_type = serializers.CharField()
    data = serializers.DictField(help_text="routing.InteractionRouted carries `explanation`: the step in force, "
                                           "the wait, and each candidate with score and reasons")


class AsOfQuery(serializers.Serializer):
    as_of = serializers.DateTimeField(required=False, help_text="ISO 8601, not in the future (default: now): the "
                                      "state as it stood then, from the events recorded up to it (docs/HISTORY.md)")

    def validate_as_of(self, value):
        from django.utils import timezone

        if value > timezone.now():
            raise serializers.ValidationError("must not be in the future: history is known only up to now")
        return value


class WaitingAsOfOutput(serializers.Serializer):
    interaction_id = serializers.UUIDField()
    channel = serializers.CharField()
    queued_at = serializers.DateTimeField(allow_null=True, help_text="when it last entered the queue")
    waited_seconds = serializers.FloatField(allow_null=True, help_text="how long it had waited at as_of")


class QueueWorkAsOfOutput(serializers.Serializer):
    interaction_id = serializers.UUIDField()
    channel = serializers.CharField()
    agent_id = serializers.CharField(allow_null=True)
    status = serializers.CharField(required=False)


class QueueStateOutput(serializers.Serializer):
    queue = serializers.CharField()
    as_of = serializers.DateTimeField()
    waiting = WaitingAsOfOutput(many=True, help_text="longest waiting first")
    offered = QueueWorkAsOfOutput(many=True)
    in_hand = QueueWorkAsOfOutput(many=True, help_text="accepted or on hold")
    longest_wait_seconds = serializers.FloatField()
    agents = serializers.DictField(child=serializers.IntegerField(),
                                   help_text="agents who qualify (today's skills) by their presence at as_of")


class AgentWorkAsOfOutput(serializers.Serializer):
    interaction_id = serializers.UUIDField()
    channel = serializers.CharField()
    queue = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=["offered", "active", "held", "wrap_up"])


class AgentStateOutput(serializers.Serializer):
    agent_id = serializers.CharField()
    as_of = serializers.DateTimeField()
    presence = serializers.CharField()
    reason = serializers.CharField(allow_blank=True)
    since = serializers.DateTimeField(allow_null=True, help_text="when that presence was set (null: never by then)")
    work = AgentWorkAsOfOutput(many=True, help_text="offered to them or in their hands at as_of")


# --- what-if routing (routing.whatif, docs/HISTORY.md) ----------------------------------------------------

POLICY_HELP = (
    "The candidate: changes to today's configuration, {} for none (the recorded policy replayed twice). "
    '`queues`: {name: {skills: {skill: min level}, secondary: {...}, expansion: [{after_seconds, '
    "min_proficiency_delta, admit_secondary}], priority, vip_boost, repeat_boost, preferred_agent_hours, "
    'tie_break, language, overflow_queue, overflow_after_seconds}}; `agents`: {name or "*" (everyone): '
    "{skills, languages, capacity: {channel: n}, voice_with_others}}, and an agent not configured with "
    "`copy_of` (their skills and recorded presence) to try one more agent. Fields left out keep their value.")


class SimulationInput(serializers.Serializer):
    to = serializers.DateTimeField(help_text="the period's end (excluded), not in the future; at most 31 days "
                                             "after `from`")
    policy = serializers.DictField(required=False, default=dict, help_text=POLICY_HELP)
    seed = serializers.IntegerField(required=False, default=0, min_value=0, max_value=2**31 - 1,
                                    help_text="for the choices the replay draws (patience, work content of "
                                              "unanswered contacts): the same seed, the same figures")

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.DateTimeField(help_text="the recorded period's start (business time)")
        return fields


class WhatIfTotals(serializers.Serializer):
    arrived = serializers.IntegerField(help_text="contacts that first queued in the period")
    answered = serializers.IntegerField()
    answered_in_sl = serializers.IntegerField(help_text="answered within their queue's service-level threshold")
    abandoned = serializers.IntegerField(help_text="hung up after at least KPI_SHORT_ABANDON_SECONDS")
    short_abandons = serializers.IntegerField(help_text="hung up sooner: left out of the ratios (docs/KPIS.md)")
    unanswered = serializers.IntegerField(help_text="neither answered nor abandoned by the end of the replay: "
                                                    "nobody the policy allows could take them, and they would wait")
    wait_seconds = serializers.FloatField(help_text="the answered contacts' waits, added up")
    service_level = serializers.FloatField(allow_null=True, help_text="answered_in_sl / (answered + abandoned)")
    asa_seconds = serializers.FloatField(allow_null=True, help_text="average speed of answer")
    abandonment_rate = serializers.FloatField(allow_null=True, help_text="abandoned / (answered + abandoned)")
    occupancy = serializers.FloatField(allow_null=True, help_text="handle time (talk and after-call work) over "
                                                                  "staffed time, as docs/KPIS.md defines it")
    agents_staffed = serializers.IntegerField()


class WhatIfQueue(serializers.Serializer):
    queue = serializers.CharField()
    arrived = serializers.IntegerField()
    answered = serializers.IntegerField()
    answered_in_sl = serializers.IntegerField()
    abandoned = serializers.IntegerField()
    short_abandons = serializers.IntegerField()
    unanswered = serializers.IntegerField()
    wait_seconds = serializers.FloatField()
    service_level = serializers.FloatField(allow_null=True)
    asa_seconds = serializers.FloatField(allow_null=True)
    abandonment_rate = serializers.FloatField(allow_null=True)


class WhatIfAgent(serializers.Serializer):
    agent_id = serializers.CharField()
    handled = serializers.IntegerField(help_text="contacts answered")
    handle_seconds = serializers.FloatField(help_text="talk (acceptance to end) and after-call work")
    occupied_seconds = serializers.FloatField(help_text="time with at least one contact in hand or in after-call work")
    staffed_seconds = serializers.FloatField()
    occupancy = serializers.FloatField(allow_null=True)


class WhatIfFigures(serializers.Serializer):
    totals = WhatIfTotals()
    queues = WhatIfQueue(many=True, help_text="each contact counts in the queue it first entered")
    agents = WhatIfAgent(many=True, help_text="per-agent load")


class WhatIfDifference(serializers.Serializer):
    service_level = serializers.FloatField(allow_null=True)
    asa_seconds = serializers.FloatField(allow_null=True)
    abandonment_rate = serializers.FloatField(allow_null=True)
    occupancy = serializers.FloatField(allow_null=True)
    answered = serializers.IntegerField(allow_null=True)
    abandoned = serializers.IntegerField(allow_null=True)


class WhatIfFidelity(serializers.Serializer):
    difference = WhatIfDifference(help_text="the recorded policy's replay minus what happened")
    tolerance = serializers.DictField(child=serializers.FloatField(), help_text="how close it must come (ASA: "
                                                                                "5 s or 20 %, whichever is more)")
    within_tolerance = serializers.DictField(child=serializers.BooleanField())


class WhatIfPerformance(serializers.Serializer):
    events_read = serializers.IntegerField()
    load_seconds = serializers.FloatField()
    simulated_events = serializers.IntegerField(help_text="arrivals, presence changes, answers, ends... of both "
                                                          "replays")
    dispatch_passes = serializers.IntegerField()
    simulation_seconds = serializers.FloatField()
    events_per_second = serializers.IntegerField(allow_null=True)


class WhatIfResult(serializers.Serializer):
    contacts = serializers.IntegerField()
    agents = serializers.IntegerField()
    recorded = WhatIfFigures(help_text="what actually happened")
    recorded_policy = WhatIfFigures(help_text="the recorded traffic replayed through today's configuration")
    candidate = WhatIfFigures(help_text="the same traffic through the candidate policy")
    difference = WhatIfDifference(help_text="candidate minus recorded_policy: the policy's effect "
                                            "(service_level +0.05: five points better)")
    fidelity = WhatIfFidelity()
    performance = WhatIfPerformance(allow_null=True, help_text="null for a team supervisor (it tells the whole "
                                                                "center's volume)")
    scoped = serializers.BooleanField(required=False, help_text="true: only your teams' queues and agents are "
                                                                "shown, and the totals are theirs")


class SimulationOutput(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.CharField(help_text="GET it until `status` is done or failed")
    status = serializers.ChoiceField(choices=["queued", "running", "done", "failed"])
    requested_by = serializers.CharField()
    to = serializers.DateTimeField(source="end")
    policy = serializers.JSONField()
    seed = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(help_text="why it failed (empty otherwise)")
    result = WhatIfResult(allow_null=True, help_text="once done")

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.DateTimeField(source="start")
        return fields
