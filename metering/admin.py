from django.contrib import admin
from unfold.admin import ModelAdmin

from .models import Event, Meter


@admin.register(Meter)
class MeterAdmin(ModelAdmin):
    list_display = ["name", "event_name", "aggregation", "property", "unit", "status"]
    list_filter = ["aggregation", "status"]
    search_fields = ["name", "event_name"]


@admin.register(Event)
class EventAdmin(ModelAdmin):
    list_display = ["name", "event_id", "customer", "timestamp"]
    list_filter = ["name"]
    search_fields = ["event_id"]
    raw_id_fields = ["customer"]
    show_full_result_count = False
