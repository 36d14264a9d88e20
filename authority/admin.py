from django.contrib import admin

from authority.models import Action, AuthorityLimit
from events.admin import ReadOnlyAdmin


@admin.register(AuthorityLimit)
class AuthorityLimitAdmin(admin.ModelAdmin):
    list_display = ("kind", "group", "per_action", "per_day")
    list_filter = ("kind", "group")


@admin.register(Action)
class ActionAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "kind", "amount", "status", "agent_id", "decided_by", "interaction_id")
    list_filter = ("status", "kind")
    search_fields = ("agent_id", "=interaction_id", "=customer_id")
