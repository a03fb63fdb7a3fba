from django.contrib import admin
from unfold.admin import ModelAdmin, TabularInline

from .models import Clock, Customer, CustomerContact, Subscription


class ContactInline(TabularInline):
    model = CustomerContact
    extra = 0
    fields = ["email", "name", "role", "user"]
    autocomplete_fields = ["user"]


@admin.register(Customer)
class CustomerAdmin(ModelAdmin):
    list_display = ["external_id", "name", "email", "tax_rate", "created_at"]
    search_fields = ["external_id", "name", "email", "contacts__email"]
    list_filter = ["created_at"]
    inlines = [ContactInline]


@admin.register(Subscription)
class SubscriptionAdmin(ModelAdmin):
    list_display = [
        "id",
        "customer",
        "offer",
        "status",
        "current_period_start",
        "current_period_end",
        "clock",
    ]
    list_filter = ["status", "offer", "clock"]
    search_fields = ["customer__external_id", "customer__name", "offer__code"]
    list_select_related = ["customer", "offer", "clock"]
    autocomplete_fields = ["customer", "offer"]
    readonly_fields = ["created_at"]
    date_hierarchy = "current_period_start"


@admin.register(Clock)
class ClockAdmin(ModelAdmin):
    list_display = ["name", "now", "updated_at"]
    search_fields = ["name"]
