from django.contrib import admin

from events.admin import ReadOnlyAdmin
from intelligence.models import EngagementAlert, FlagPolicy, FlagTerm, Mood


@admin.register(FlagTerm)
class FlagTermAdmin(admin.ModelAdmin):
    list_display = ("term", "kind", "active")
    list_filter = ("kind", "active")
    search_fields = ("term",)


@admin.register(FlagPolicy)
class FlagPolicyAdmin(admin.ModelAdmin):
    list_display = ("kind", "priority_boost", "alert_supervisors", "prefer_skill")


@admin.register(Mood)
class MoodAdmin(ReadOnlyAdmin):
    list_display = ("interaction_id", "customer_id", "texts", "running", "lowest", "flags", "updated_at")
    search_fields = ("=interaction_id", "=customer_id")


@admin.register(EngagementAlert)
class EngagementAlertAdmin(ReadOnlyAdmin):
    """Customers who used to contact us often and went silent: a list for proactive outreach, newest first."""

    list_display = ("customer_id", "last_contact_at", "contacts", "usual_gap_days", "raised_at")
    search_fields = ("=customer_id",)
