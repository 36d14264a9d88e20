from django.contrib import admin

from events.admin import ReadOnlyAdmin
from incidents.models import IncidentReport
from incidents.selectors import reads_all


@admin.register(IncidentReport)
class IncidentReportAdmin(ReadOnlyAdmin):
    """Read-only, for supervisors and compliance; opening one is recorded like a read through the API."""

    list_display = ("created_at", "kind", "agent_id", "action_taken", "supervisor", "interaction_id")
    list_filter = ("kind", "action_taken")
    search_fields = ("=interaction_id", "=customer_id", "agent_id")

    def has_module_permission(self, request):
        return reads_all(request.user)

    def has_view_permission(self, request, obj=None):
        return reads_all(request.user)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        from contactcenter.api import command_meta
        from incidents.services import incident_read

        report = IncidentReport.objects.filter(pk=object_id).first()
        if report is not None and reads_all(request.user):
            incident_read(report=report, by=request.user.get_username(), meta=command_meta(request))
        return super().change_view(request, object_id, form_url, extra_context)
