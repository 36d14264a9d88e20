from django.contrib import admin

from intelligence.models import FlagPolicy, FlagTerm, Mood


@admin.register(FlagTerm)
class FlagTermAdmin(admin.ModelAdmin):
    list_display = ("term", "kind", "active")
    list_filter = ("kind", "active")
    search_fields = ("term",)


@admin.register(FlagPolicy)
class FlagPolicyAdmin(admin.ModelAdmin):
    list_display = ("kind", "priority_boost", "alert_supervisors")


@admin.register(Mood)
class MoodAdmin(admin.ModelAdmin):
    list_display = ("interaction_id", "customer_id", "texts", "running", "lowest", "flags", "updated_at")
    search_fields = ("=interaction_id", "=customer_id")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
