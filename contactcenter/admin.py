"""The audit log in the admin: read-only (the database refuses changes anyway), for compliance and admins."""

from django.contrib import admin

from contactcenter.models import AuditEntry, Served


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("at", "outcome", "username", "action", "object_type", "object_id", "reason", "ip")
    list_filter = ("outcome", "object_type")
    search_fields = ("username", "object_id", "action", "correlation_id")
    date_hierarchy = "at"

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser or request.user.has_perm("contactcenter.read_audit_log") or \
            request.user.has_perm("contactcenter.view_auditentry")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Served)
class ServedAdmin(admin.ModelAdmin):
    """Who served which customer: why an agent may read them (contactcenter.access). Kept for good."""

    list_display = ("at", "agent_id", "customer_id", "interaction_id")
    search_fields = ("agent_id", "customer_id", "interaction_id")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
