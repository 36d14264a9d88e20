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
