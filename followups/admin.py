from django.contrib import admin

from followups.models import Callback


@admin.register(Callback)
class CallbackAdmin(admin.ModelAdmin):
    """Every promise to call a customer back; open ones first. Changed only through the API (events)."""

    list_display = ("due_at", "status", "reason", "agent_id", "customer_id", "channel", "queue", "interaction_id")
    list_filter = ("status", "reason", "channel", "queue")
    search_fields = ("=customer_id", "agent_id", "=interaction_id", "=origin_interaction_id")
    ordering = ("status", "due_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
