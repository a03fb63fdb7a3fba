import json
from functools import partial
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from unfold.admin import ModelAdmin
from unfold.decorators import action, display

from . import selectors, services
from .api.pagination import EventCursorPagination
from .forms import EventExplorerForm, MeterAdminForm, MeterChartForm
from .models import BackfillStatus, Event, Meter, MeterStatus
from .selectors import MeterChart

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

    form = MeterAdminForm
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
    actions_list = ["usage_chart"]
    actions_detail = ["usage_chart_of_meter"]
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

    @action(description="Usage chart", icon="monitoring", url_path="chart", permissions=["view"])
    def usage_chart(self, request):
        """Several meters' quantity by day, week or month (R-M7), read from rollups."""
        data = request.GET.copy()
        for key, value in MeterChartForm.defaults(timezone.localdate()).items():
            if key not in data:
                data.setlist(key, value if isinstance(value, list) else [value])
        form = MeterChartForm(data)
        chart, error = None, None
        if form.is_valid():
            start, end = form.local_range()
            try:
                chart = selectors.meter_chart(
                    meters=form.cleaned_data["meters"],
                    start=start,
                    end=end,
                    window=form.cleaned_data["window"],
                    tz=form.cleaned_data["timezone"],
                    customer_id=form.cleaned_data["customer"],
                )
            except ValueError as exc:  # too many months, or dates out of the calendar
                error = str(exc)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Meter usage over time",
            "form": form,
            "error": error,
            "chart": chart,
            "max_points": selectors.MAX_CHART_POINTS,
            **(_chart_table(chart, form.cleaned_data["timezone"]) if chart else {}),
        }
        return TemplateResponse(request, "metering/meter_chart.html", context)

    @action(description="Usage chart", icon="monitoring", url_path="chart", permissions=["view"])
    def usage_chart_of_meter(self, request, object_id):
        return redirect(f"{reverse('admin:metering_meter_usage_chart')}?meters={int(object_id)}")

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
    """Events are immutable records (R-M8): shown, never edited here.

    The list is the events explorer (R-M7): Django's changelist would COUNT(*) the table, page
    with OFFSET and list DISTINCT names for a filter, each a scan at 10 M rows; the explorer
    pages by keyset, newest first, with the API's ``EventCursorPagination``.
    """

    explorer_page_size = 50
    readonly_fields = ["event_id", "name", "customer", "timestamp", "properties", "received_at"]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        form = EventExplorerForm(request.GET)
        rows, next_url, previous_url, error = [], None, None, None
        if form.is_valid():
            try:
                events, next_url, previous_url = _event_page(
                    request, form.event_list_criteria(), self.explorer_page_size
                )
            except NotFound:
                error = "This page link is no longer valid: start again from the newest events."
            else:
                rows = [(e, json.dumps(e.properties, indent=2, ensure_ascii=False)) for e in events]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Events",
            "form": form,
            "rows": rows,
            "next_url": next_url,
            "previous_url": previous_url,
            "first_url": _without_cursor(request),
            "error": error,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "metering/event_explorer.html", context)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _event_page(request, criteria: dict, page_size: int):
    """One keyset page of ``selectors.event_list(**criteria)``, newest first, and the links
    to the next and previous pages; with a meter, only the events it counts."""
    row_filter = None
    if criteria["meter"] is not None:
        compiled = selectors.meter_compiled(criteria["meter"])
        row_filter = partial(selectors.event_counted_by, compiled)
    paginator = EventCursorPagination()
    paginator.page_size = page_size
    events = paginator.paginate_queryset(
        selectors.event_list(**criteria),
        Request(request),
        view=SimpleNamespace(row_filter=row_filter),
    )
    return events, paginator.get_next_link(), paginator.get_previous_link()


def _without_cursor(request) -> str:
    query = request.GET.copy()
    query.pop(EventCursorPagination.cursor_query_param, None)
    return f"?{query.urlencode()}" if query else "?"


def _chart_table(chart: MeterChart, tz: str) -> dict:
    """The chart's points as table rows (exact values) and as Chart.js data (floats)."""
    label_format = "%Y-%m" if chart.window == "month" else "%Y-%m-%d"
    labels = [start.astimezone(ZoneInfo(tz)).strftime(label_format) for start, _ in chart.spans]
    rows = [
        {"label": label, "values": [summary.windows[i].value for _, summary in chart.summaries]}
        for i, label in enumerate(labels)
    ]
    datasets = [
        {
            "label": f"{meter.name} ({meter.unit})" if meter.unit else meter.name,
            "meterId": meter.pk,
            "data": [None if w.value is None else float(w.value) for w in summary.windows],
        }
        for meter, summary in chart.summaries
    ]
    return {
        "rows": rows,
        "totals": [summary.total_value for _, summary in chart.summaries],
        "chart_data": {"labels": labels, "datasets": datasets},
    }
