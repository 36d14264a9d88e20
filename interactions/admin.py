from django.contrib import admin

from interactions.models import Case, Interaction


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin):
    """State rows, read-only: every change is a command (the API), so it is an event."""

    list_display = ("id", "channel", "direction", "status", "queue", "agent_id", "customer_id", "created_at")
    list_filter = ("channel", "status", "queue", "agent_id")
    search_fields = ("=id", "=customer_id", "=case__id")
    readonly_fields = [f.name for f in Interaction._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ("id", "customer_id", "created_at")
    search_fields = ("=id", "=customer_id")
    readonly_fields = ("id", "customer_id", "created_at")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
