import json

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from customers import services
from customers.domain import CustomerError
from customers.models import Customer, CustomerIdentity, CustomerProfile, MergeSuggestion, TimelineEntry
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


@admin.register(MergeSuggestion)
class MergeSuggestionAdmin(admin.ModelAdmin):
    """The review queue: customers found sharing an identity (IDENTITY_AUTO_MERGE = "suggest").

    Merging keeps the target and makes the source its duplicate (customers.services.customer_merge); a
    wrong merge is undone with POST /api/v1/customers/{target}/unmerge/ (docs/HISTORY.md).
    """

    list_display = ("created_at", "kind", "target_link", "source_link", "status", "decided_by", "decided_at")
    list_filter = ("status", "kind")
    search_fields = ("=target_id", "=source_id")
    readonly_fields = ("target_id", "source_id", "kind", "status", "created_at", "decided_at", "decided_by")
    actions = ["merge", "dismiss"]

    @admin.display(description="target (kept)")
    def target_link(self, obj):
        return self._customer_link(obj.target_id)

    @admin.display(description="source (duplicate)")
    def source_link(self, obj):
        return self._customer_link(obj.source_id)

    def _customer_link(self, customer_id):
        return format_html('<a href="{}">{}</a>', reverse("admin:customers_customer_change", args=[customer_id]),
                           customer_id)

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("status", "created_at")  # pending first, oldest first

    @admin.action(description="Merge the selected pairs (source into target)", permissions=["change"])
    def merge(self, request, queryset):
        self._decide(request, queryset, services.merge_suggestion_accept, "merged")

    @admin.action(description="Dismiss the selected suggestions (different people)", permissions=["change"])
    def dismiss(self, request, queryset):
        self._decide(request, queryset, services.merge_suggestion_dismiss, "dismissed")

    def _decide(self, request, queryset, service, done):
        meta = Metadata(actor=Actor("user", str(request.user.pk), request.user.get_username()))
        count = 0
        for suggestion_id in queryset.values_list("id", flat=True):
            try:
                service(suggestion_id=suggestion_id, meta=meta)
                count += 1
            except CustomerError as refused:  # e.g. already decided, or one side erased or merged meanwhile
                self.message_user(request, f"suggestion {suggestion_id}: {refused}", messages.WARNING)
        self.message_user(request, f"{count} suggestions {done}.", messages.SUCCESS)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None and request.user.has_perm("customers.change_customer")

    def has_delete_permission(self, request, obj=None):
        return False
