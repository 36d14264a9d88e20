import json

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from customers import services
from customers.models import Customer, CustomerIdentity, CustomerProfile, TimelineEntry
from customers.selectors import timeline_open
from events.store import Actor, Metadata


@admin.register(CustomerProfile)
class CustomerProfileAdmin(admin.ModelAdmin):
    """The directory projection, read-only; erasure is a command (an action here)."""

    list_display = ("display_name", "email", "phone", "preferred_channel", "vip_tier", "event_count", "last_event_at",
                    "erased", "merged_into")
    search_fields = ("display_name", "email", "phone", "=customer_id")
    list_filter = ("erased", "preferred_channel", "vip_tier", "language")
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


TIMELINE_PREVIEW = 20


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    """The write-side row, its identities and (read-only) the latest of its timeline."""

    list_display = ("id", "version", "created_at", "erased_at", "merged_into")
    readonly_fields = ("id", "version", "created_at", "erased_at", "merged_into", "timeline")
    inlines = [IdentityInline]

    @admin.display(description="timeline")
    def timeline(self, obj):
        # TimelineEntry has no foreign key to Customer (it is a projection), so
        # no inline: the latest entries here, and a link to all of them.
        entries = TimelineEntry.objects.filter(customer_id=obj.id).order_by("-occurred_at", "-position")
        url = reverse("admin:customers_timelineentry_changelist") + f"?customer_id__exact={obj.id}"
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((e.occurred_at, e.channel, e.event_type, e.position) for e in entries[:TIMELINE_PREVIEW]),
        )
        return format_html(
            '<table><tr><th>occurred</th><th>channel</th><th>event</th><th>position</th></tr>{}</table>'
            '<p><a href="{}">all {} timeline entries</a></p>', rows, url, entries.count(),
        )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(TimelineEntry)
class TimelineEntryAdmin(admin.ModelAdmin):
    list_display = ("position", "customer_id", "event_type", "channel", "occurred_at")
    search_fields = ("=customer_id",)
    list_filter = ("channel",)
    ordering = ("occurred_at", "position")
    # `data` holds personal fields encrypted: show it decrypted (or "[erased]") instead.
    readonly_fields = [f.name for f in TimelineEntry._meta.fields if f.name != "data"] + ["readable_data"]
    exclude = ["data"]

    @admin.display(description="data")
    def readable_data(self, obj):
        (entry,) = timeline_open([obj])
        return format_html("<pre>{}</pre>", json.dumps(entry.data, indent=2, ensure_ascii=False))

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
