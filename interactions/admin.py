import json
from urllib.parse import urlencode

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from interactions.models import Case, Interaction


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin):
    """State rows, read-only: every change is a command (the API), so it is an event."""

    list_display = ("id", "channel", "direction", "status", "queue", "agent_id", "customer_id", "created_at")
    list_filter = ("channel", "status", "queue", "agent_id")
    search_fields = ("=id", "=customer_id", "=case__id")
    readonly_fields = [f.name for f in Interaction._meta.fields] + ["customer_context_when_offered"]

    @admin.display(description="customer context when offered")
    def customer_context_when_offered(self, obj):
        """The customer's context as the agent saw it when the first offer was made (history/asof.py): the
        context folded from the events recorded up to that offer, with a link to the same answer in the API."""
        from contactcenter.api import iso_datetime
        from customers.api.serializers import CustomerContextOutput
        from customers.models import CustomerProfile
        from history import asof

        at = asof.interaction_offered_at(obj.id) if obj.customer_id else None
        if at is None:
            return "never offered"
        url = reverse("customer-context", kwargs={"customer_id": str(obj.customer_id)})
        url = f"{url}?{urlencode({'as_of': iso_datetime(at)})}"
        try:
            context = CustomerContextOutput(asof.customer_context_as_of(obj.customer_id, at)).data
        except CustomerProfile.DoesNotExist:
            return format_html('<a href="{}">as of {}</a>: the customer was not registered then', url, iso_datetime(at))
        return format_html('<a href="{}">as of {}</a><pre>{}</pre>', url, iso_datetime(at),
                           json.dumps(context, indent=2, default=str))

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
