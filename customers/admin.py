from django.contrib import admin, messages

from customers import services
from customers.models import Customer, CustomerIdentity, CustomerProfile, TimelineEntry
from events.store import Actor, Metadata


@admin.register(CustomerProfile)
class CustomerProfileAdmin(admin.ModelAdmin):
    """The directory projection, read-only; erasure is a command (an action here)."""

    list_display = ("display_name", "email", "phone", "preferred_channel", "event_count", "last_event_at", "erased")
    search_fields = ("display_name", "email", "phone", "=customer_id")
    list_filter = ("erased", "preferred_channel")
    actions = ["erase"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None and request.user.has_perm("customers.change_customer")

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Erase personal data of the selected customers (cannot be undone)", permissions=["change"])
    def erase(self, request, queryset):
        meta = Metadata(actor=Actor("user", str(request.user.pk), request.user.get_username()))
        erased = 0
        for customer_id in queryset.values_list("customer_id", flat=True):
            if services.customer_erase(customer_id=customer_id, reason="erased from the admin", meta=meta).positions:
                erased += 1
        self.message_user(request, f"{erased} customers erased.", messages.SUCCESS)


class IdentityInline(admin.TabularInline):
    """Kinds only: identities are stored as keyed hashes (the clear values are in the encrypted events)."""

    model = CustomerIdentity
    fields = ("kind", "provider", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("id", "version", "created_at", "erased_at")
    readonly_fields = ("id", "version", "created_at", "erased_at")
    inlines = [IdentityInline]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(TimelineEntry)
class TimelineEntryAdmin(admin.ModelAdmin):
    list_display = ("position", "customer_id", "event_type", "channel", "occurred_at")
    search_fields = ("=customer_id",)
    readonly_fields = [f.name for f in TimelineEntry._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
