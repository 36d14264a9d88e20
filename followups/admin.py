from django.contrib import admin

from events.admin import ReadOnlyAdmin
from followups.models import Callback, Escalation, FollowUp


@admin.register(Callback)
class CallbackAdmin(ReadOnlyAdmin):
    """Every promise to call a customer back; open ones first. Changed only through the API (events)."""

    list_display = ("due_at", "status", "reason", "agent_id", "customer_id", "channel", "queue", "interaction_id")
    list_filter = ("status", "reason", "channel", "queue")
    search_fields = ("=customer_id", "agent_id", "=interaction_id", "=origin_interaction_id")
    ordering = ("status", "due_at")


@admin.register(Escalation)
class EscalationAdmin(ReadOnlyAdmin):
    list_display = ("respond_by", "status", "breached", "target", "queue", "agent_id", "accepted_by",
                    "interaction_id")
    list_filter = ("status", "breached", "target", "queue")
    search_fields = ("=interaction_id", "=customer_id", "agent_id")


@admin.register(FollowUp)
class FollowUpAdmin(ReadOnlyAdmin):
    """Every follow-up task promised to a customer; open and overdue ones first. Changed only through the API."""

    list_display = ("due_at", "status", "overdue", "agent_id", "note", "customer_id", "interaction_id")
    list_filter = ("status", "overdue")
    search_fields = ("=customer_id", "agent_id", "=interaction_id")
    ordering = ("status", "due_at")
