"""Admin for the event backbone: events (read-only), outbox, dead letters, projections."""

from django.contrib import admin, messages
from django.utils.html import format_html_join

from events import registry, selectors
from events.models import DeadLetter, Event, OutboxEntry, ProjectionState, RelayState
from events.projection import retry_dead_letter


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class EventTypeFilter(admin.SimpleListFilter):
    """Choices from the registry: no DISTINCT over the whole (unindexed) column."""

    title = "event type"
    parameter_name = "event_type"

    def lookups(self, request, model_admin):
        return [(et.name, et.name) for et in registry.all_types()]

    def queryset(self, request, queryset):
        return queryset.filter(event_type=self.value()) if self.value() else queryset


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("position", "event_type", "stream_type", "stream_id", "stream_version", "customer_id", "recorded_at")
    list_filter = (EventTypeFilter,)
    # Exact matches on the indexed columns: the search stays fast on a big store.
    search_fields = ("=stream_id", "=customer_id", "=correlation_id", "=event_id")
    search_help_text = "Stream id, customer id, correlation id or event id (exact)."
    show_full_result_count = False
    ordering = ("-position",)


@admin.register(OutboxEntry)
class OutboxAdmin(ReadOnlyAdmin):
    list_display = ("position", "event_type", "enqueued_at")
    ordering = ("position",)

    @admin.display(description="event type")
    def event_type(self, obj):
        return Event.objects.filter(position=obj.position).values_list("event_type", flat=True).first()

    def changelist_view(self, request, extra_context=None):
        backlog = selectors.outbox_backlog()
        self.message_user(
            request,
            f"{backlog['count']} events wait for Kafka; the oldest for {backlog['oldest_age_seconds']:.1f}s.",
            messages.WARNING if backlog["alert"] else messages.INFO,
        )
        return super().changelist_view(request, extra_context)


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ("projection", "event_type", "position", "error", "attempts", "failed_at", "resolved_at")
    list_filter = ("projection", "event_type", ("resolved_at", admin.EmptyFieldListFilter))
    search_fields = ("=event_id", "=stream_id", "error")
    readonly_fields = [f.name for f in DeadLetter._meta.fields]
    actions = ["retry"]

    def has_change_permission(self, request, obj=None):
        return obj is None and request.user.has_perm("events.change_deadletter")

    @admin.action(description="Retry the selected dead letters", permissions=["change"])
    def retry(self, request, queryset):
        ok = sum(1 for pk in queryset.values_list("pk", flat=True) if retry_dead_letter(pk))
        failed = queryset.count() - ok
        self.message_user(request, f"{ok} applied, {failed} failed again.", messages.WARNING if failed else messages.SUCCESS)


@admin.register(ProjectionState)
class ProjectionStateAdmin(ReadOnlyAdmin):
    list_display = ("name", "status", "applied_total", "lag", "last_applied_at", "broker_epoch", "positions")

    @admin.display(description="lag (messages)")
    def lag(self, obj):
        # One small query per projection (there are a handful); no state on
        # the admin instance, which every request shares.
        row = next((r for r in selectors.projection_lag() if r["name"] == obj.name), {})
        return "restarting" if row.get("lag_messages") is None else row["lag_messages"]

    @admin.display(description="next offset per partition")
    def positions(self, obj):
        from events.models import ProjectionCheckpoint

        rows = ProjectionCheckpoint.objects.filter(projection=obj.name).order_by("partition")
        return format_html_join(", ", "{}:{}", ((c.partition, c.next_offset) for c in rows)) or "-"


@admin.register(RelayState)
class RelayStateAdmin(ReadOnlyAdmin):
    list_display = ("broker_epoch", "published_total", "last_published_at")
