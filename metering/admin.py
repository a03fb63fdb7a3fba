from django.contrib import admin, messages
from django.utils.html import format_html
from unfold.admin import ModelAdmin
from unfold.decorators import action, display

from . import services
from .models import BackfillStatus, Event, Meter, MeterStatus

_DEFINITION_FIELDS = ["name", "event_name", "aggregation", "property", "unit", "filter"]
_BACKFILL_FIELDS = [
    "generation",
    "backfill_progress",
    "backfill_processed",
    "backfill_total",
    "backfill_started_at",
    "backfilled_at",
    "backfill_error",
]


@admin.register(Meter)
class MeterAdmin(ModelAdmin):
    """Meters (R-M1..R-M4). Saving goes through the services, so a change of what a meter
    counts re-builds its rollups in the background; progress shows here, read-only."""

    list_display = [
        "name",
        "event_name",
        "aggregation",
        "property",
        "unit",
        "status",
        "backfill_progress",
    ]
    list_filter = ["aggregation", "status", "backfill_status"]
    search_fields = ["name", "event_name"]
    actions = ["archive_meters", "rebuild_rollups"]
    fieldsets = [
        (None, {"fields": _DEFINITION_FIELDS}),
        ("Status", {"fields": ["status", "archived_at"]}),
        ("Rollups back-fill", {"fields": _BACKFILL_FIELDS}),
    ]

    def get_readonly_fields(self, request, obj=None):
        frozen = ["status", "archived_at", *_BACKFILL_FIELDS]
        if obj is not None and obj.status == MeterStatus.ARCHIVED:
            return [*_DEFINITION_FIELDS, *frozen]
        return frozen

    @display(description="Back-fill")
    def backfill_progress(self, obj: Meter) -> str:
        if obj.backfill_status == BackfillStatus.DONE:
            return "done"
        if obj.backfill_status == BackfillStatus.RUNNING:
            return format_html(
                "running {}% ({} / {})",
                obj.backfill_percent,
                obj.backfill_processed,
                obj.backfill_total,
            )
        return str(obj.get_backfill_status_display()).lower()

    def save_model(self, request, obj, form, change):
        fields = {f: form.cleaned_data[f] for f in _DEFINITION_FIELDS if f in form.cleaned_data}
        fields["filter"] = fields.get("filter") or None
        if change:
            meter = services.meter_update(meter=obj, **fields)
        else:
            meter = services.meter_create(**fields)
        obj.pk = meter.pk
        obj.refresh_from_db()

    @action(description="Archive (stop counting new events)")
    def archive_meters(self, request, queryset):
        for meter in queryset:
            services.meter_archive(meter=meter)
        self.message_user(request, f"Archived {queryset.count()} meter(s).", messages.SUCCESS)

    @action(description="Re-build rollups from stored events")
    def rebuild_rollups(self, request, queryset):
        for meter in queryset:
            services.meter_backfill_start(meter=meter)
        self.message_user(request, "Re-build started.", messages.SUCCESS)


@admin.register(Event)
class EventAdmin(ModelAdmin):
    """Events are immutable records (R-M8): shown, never edited here."""

    list_display = ["name", "event_id", "customer", "timestamp", "received_at"]
    list_filter = ["name"]
    search_fields = ["event_id"]
    raw_id_fields = ["customer"]
    list_select_related = ["customer"]
    show_full_result_count = False
    readonly_fields = ["event_id", "name", "customer", "timestamp", "properties", "received_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
