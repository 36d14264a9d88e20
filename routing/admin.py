from django.contrib import admin

from events.admin import ReadOnlyAdmin
from routing.models import Agent, AgentSkill, Queue, QueueSkill, Skill, Team, Work


@admin.register(Skill)
class SkillAdmin(admin.ModelAdmin):
    list_display = ("name", "description")
    search_fields = ("name",)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name",)
    filter_horizontal = ("supervisors",)


class AgentSkillInline(admin.TabularInline):
    model = AgentSkill
    extra = 1


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    """Agents: skills, languages, capacity. Presence is the agent's to set (API), shown here read-only."""

    list_display = ("user", "team", "presence", "presence_reason", "presence_since", "missed_offers")
    list_filter = ("presence", "team")
    search_fields = ("user__username",)
    readonly_fields = ("presence", "presence_reason", "presence_since", "idle_since", "missed_offers", "version",
                       "stream_id")
    inlines = [AgentSkillInline]


class QueueSkillInline(admin.TabularInline):
    model = QueueSkill
    extra = 1


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    """Queues and their routing policy; the model validates the policy (routing.domain.validate_policy)."""

    list_display = ("name", "channels", "language", "priority", "service_level_percent", "service_level_seconds",
                    "overflow_queue")
    search_fields = ("name",)
    inlines = [QueueSkillInline]


@admin.register(Work)
class WorkAdmin(ReadOnlyAdmin):
    """What routing decides over right now (read-only: it follows the interactions)."""

    list_display = ("interaction_id", "queue", "channel", "status", "agent_id", "priority", "enqueued_at",
                    "offer_expires_at")
    list_filter = ("status", "queue", "channel")
    search_fields = ("=interaction_id", "agent_id")
    ordering = ("-priority", "enqueued_at")
