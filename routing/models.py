"""Routing state: agents and their skills, queues and their policies, and the work waiting or in hand.

Agent and Work are write-side state rows: routing locks them to decide, and
every change that matters is also an event (routing.events). Skill, Team,
Queue and QueueSkill are configuration, edited in the admin.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from interactions.domain import CHANNELS
from routing import domain


class Skill(models.Model):
    name = models.SlugField(max_length=50, primary_key=True)
    description = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return self.name


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    supervisors = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="supervised_teams")

    def __str__(self) -> str:
        return self.name


def _capacity_default() -> dict:
    return dict(domain.DEFAULT_CAPACITY)


class Agent(models.Model):
    """An agent: a user who takes work. `agent_id` everywhere else is the user's username."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="agent")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="agents")
    languages = models.JSONField(default=list, blank=True, help_text='e.g. ["en", "de"]')
    capacity = models.JSONField(default=_capacity_default, help_text="most interactions at once, per channel")
    voice_with_others = models.BooleanField(default=False, help_text="may take a call while handling other work")
    presence = models.CharField(max_length=20, choices=[(p, p) for p in domain.PRESENCES], default="offline")
    presence_reason = models.CharField(max_length=100, blank=True)
    presence_since = models.DateTimeField(null=True, blank=True)
    idle_since = models.DateTimeField(null=True, blank=True, help_text="when the agent last had no work")
    missed_offers = models.PositiveIntegerField(default=0, help_text="offers let time out in a row")
    version = models.PositiveIntegerField(default=0, help_text="of the agent's event stream")
    stream_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False, help_text="the agent's event stream")

    def __str__(self) -> str:
        return self.user.get_username()

    @property
    def agent_id(self) -> str:
        return self.user.get_username()

    def clean(self) -> None:
        if not isinstance(self.capacity, dict) or any(
            ch not in CHANNELS or not isinstance(n, int) or n < 0 for ch, n in self.capacity.items()
        ):
            raise ValidationError({"capacity": f"a map of channel ({', '.join(CHANNELS)}) to a count of 0 or more"})
        if not isinstance(self.languages, list) or not all(isinstance(x, str) for x in self.languages):
            raise ValidationError({"languages": "a list of language tags"})


class AgentSkill(models.Model):
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="skills")
    skill = models.ForeignKey(Skill, on_delete=models.PROTECT)
    proficiency = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(domain.MIN_PROFICIENCY), MaxValueValidator(domain.MAX_PROFICIENCY)])

    class Meta:
        constraints = [models.UniqueConstraint(fields=["agent", "skill"], name="agent_skill_uniq"),
                       models.CheckConstraint(condition=models.Q(proficiency__gte=1, proficiency__lte=5),
                                              name="agent_skill_proficiency_1_5")]


class Queue(models.Model):
    """A queue and its routing policy (see routing.domain for how each field is used)."""

    name = models.SlugField(max_length=100, primary_key=True, help_text="interactions name it in `queue`")
    channels = models.JSONField(default=list, blank=True, help_text="channels it takes; empty: any")
    language = models.CharField(max_length=35, blank=True, help_text="agents must speak it (empty: any)")
    priority = models.IntegerField(default=0, help_text="higher is served first by agents of several queues")
    service_level_percent = models.PositiveSmallIntegerField(default=80, validators=[MaxValueValidator(100)])
    service_level_seconds = models.PositiveIntegerField(default=20, help_text="answered within this many seconds")
    business_hours = models.JSONField(default=dict, blank=True,
                                      help_text='{"tz": "Europe/Berlin", "from": "08:00", "to": "18:00"}; {}: always')
    overflow_queue = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL)
    overflow_after_seconds = models.PositiveIntegerField(null=True, blank=True)
    offer_timeout_seconds = models.PositiveIntegerField(default=20)
    max_missed_offers = models.PositiveIntegerField(default=3, help_text="then the agent is set to break")
    expansion = models.JSONField(default=list, blank=True,
                                 help_text='[{"after_seconds": 30, "min_proficiency_delta": -1, '
                                           '"admit_secondary": true}, ...]')
    vip_boost = models.PositiveIntegerField(default=0)
    repeat_boost = models.PositiveIntegerField(default=0)
    preferred_agent_hours = models.PositiveIntegerField(default=0, help_text="0: no preferred agent")
    tie_break = models.CharField(max_length=20, choices=[(t, t) for t in domain.TIE_BREAKS], default="longest_idle")

    def __str__(self) -> str:
        return self.name

    def policy(self, skills: list[QueueSkill] | None = None) -> domain.QueuePolicy:
        skills = list(self.skills.all()) if skills is None else skills
        try:
            steps = tuple(domain.ExpansionStep(int(s["after_seconds"]), int(s.get("min_proficiency_delta", 0)),
                                               bool(s.get("admit_secondary", False))) for s in self.expansion or [])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise domain.InvalidPolicy("expansion", "a list of {after_seconds, min_proficiency_delta, "
                                                    "admit_secondary}") from None
        return domain.QueuePolicy(
            name=self.name, skills={s.skill_id: s.min_proficiency for s in skills if not s.secondary},
            secondary={s.skill_id: s.min_proficiency for s in skills if s.secondary}, language=self.language,
            priority=self.priority, expansion=steps, vip_boost=self.vip_boost, repeat_boost=self.repeat_boost,
            preferred_agent_hours=self.preferred_agent_hours, tie_break=self.tie_break,
        )

    def clean(self) -> None:
        if not isinstance(self.channels, list) or any(ch not in CHANNELS for ch in self.channels):
            raise ValidationError({"channels": f"a list of channels: {', '.join(CHANNELS)}"})
        if self.overflow_queue_id and self.overflow_queue_id == self.name:
            raise ValidationError({"overflow_queue": "a queue cannot overflow into itself"})
        if self.overflow_after_seconds is not None and not self.overflow_queue_id:
            raise ValidationError({"overflow_after_seconds": "set an overflow queue too"})
        try:
            domain.validate_hours(self.business_hours)
        except domain.InvalidPolicy as exc:
            raise ValidationError({"business_hours": str(exc)}) from None
        try:
            # Skills are validated with the policy once saved (they are an inline).
            domain.validate_policy(self.policy(skills=[]))
        except domain.InvalidPolicy as exc:
            field_name = exc.field if exc.field in ("expansion", "tie_break") else "expansion"
            raise ValidationError({field_name: str(exc)}) from None


class QueueSkill(models.Model):
    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="skills")
    skill = models.ForeignKey(Skill, on_delete=models.PROTECT)
    min_proficiency = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(domain.MIN_PROFICIENCY), MaxValueValidator(domain.MAX_PROFICIENCY)])
    secondary = models.BooleanField(default=False, help_text="admitted only by an expansion step")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["queue", "skill"], name="queue_skill_uniq")]


class Work(models.Model):
    """An interaction waiting in a queue, offered, or in an agent's hands: what routing decides over.

    Kept in step with the interaction's state row in the same transaction
    (interactions.hooks), so capacity is counted from here exactly. Writes
    happen under the interaction row's lock.
    """

    WAITING, OFFERED, ASSIGNED = "waiting", "offered", "assigned"

    interaction_id = models.UUIDField(primary_key=True)
    queue = models.CharField(max_length=100, db_index=True)
    channel = models.CharField(max_length=10)
    customer_id = models.UUIDField()
    status = models.CharField(max_length=10, choices=[(s, s) for s in (WAITING, OFFERED, ASSIGNED)])
    agent_id = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    enqueued_at = models.DateTimeField(help_text="waiting since (kept when an offer is declined)")
    priority = models.IntegerField(default=0)
    vip = models.BooleanField(default=False)
    repeat = models.BooleanField(default=False)
    flag_boost = models.IntegerField(default=0, help_text="added by red flags raised on it (intelligence)")
    preferred_agent = models.CharField(max_length=150, null=True, blank=True,
                                       help_text="promised to this agent (a callback): preferred whatever the queue")
    prefer_skill = models.CharField(max_length=50, blank=True, default="",
                                    help_text="a skill red flags on it ask for (intelligence.FlagPolicy)")
    declined_by = models.JSONField(default=list, blank=True)
    offer_expires_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["status", "queue", "priority", "enqueued_at"], name="work_waiting")]

    def view(self, preferred_agent: str | None = None) -> domain.WaitingView:
        return domain.WaitingView(interaction_id=str(self.interaction_id), channel=self.channel, queue=self.queue,
                                  enqueued_at=self.enqueued_at, vip=self.vip, repeat=self.repeat,
                                  preferred_agent=preferred_agent, declined_by=tuple(self.declined_by),
                                  flag_boost=self.flag_boost, prefer_skill=self.prefer_skill)


class AgentState(models.Model):
    """Projection `routing.agent_states`: each agent's presence as the events tell it (for wallboards, KPIs)."""

    agent_id = models.CharField(max_length=150, primary_key=True)
    presence = models.CharField(max_length=20)
    reason = models.CharField(max_length=100, blank=True)
    since = models.DateTimeField()
    version = models.PositiveIntegerField(help_text="stream version of the last change applied")
    changes = models.PositiveIntegerField(default=0)


class Simulation(models.Model):
    """A what-if routing run (routing.whatif): a recorded period replayed through a candidate policy.

    Requested through the API or `manage.py simulate_routing --save`, run by a Celery worker on the default
    queue (never the routing queue: a long replay must not hold live decisions up). The only row it writes.
    """

    QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    requested_by = models.CharField(max_length=150)
    start = models.DateTimeField(help_text="the recorded period's start (business time)")
    end = models.DateTimeField(help_text="its end, excluded")
    policy = models.JSONField(default=dict, blank=True, help_text="the candidate: changes to the configuration")
    seed = models.IntegerField(default=0)
    status = models.CharField(max_length=10, choices=[(s, s) for s in (QUEUED, RUNNING, DONE, FAILED)],
                              default=QUEUED)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["requested_by", "created_at"], name="simulation_requested")]

    def __str__(self) -> str:
        return f"what-if {self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} ({self.status})"
