from django.contrib import admin

from events.admin import ReadOnlyAdmin
from followups.models import Callback


@admin.register(Callback)
class CallbackAdmin(ReadOnlyAdmin):
    """Every promise to call a customer back; open ones first. Changed only through the API (events)."""

    list_display = ("due_at", "status", "reason", "agent_id", "customer_id", "channel", "queue", "interaction_id")
    list_filter = ("status", "reason", "channel", "queue")
    search_fields = ("=customer_id", "agent_id", "=interaction_id", "=origin_interaction_id")
    ordering = ("status", "due_at")
