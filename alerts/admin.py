"""The operator console for alerts: usage alerts, quota alert rules, staff groups, webhook
endpoints and the delivery log (status, attempts, response code, resend)."""

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.shortcuts import redirect
from django.utils import timezone
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import action

from core.errors import DomainError

from .models import (
    EVENT_TYPES,
    MAX_ALERTS_PER_METER_AND_CUSTOMER,
    AccessBlock,
    AlertTrigger,
    EmailDelivery,
    QuotaAlertFiring,
    QuotaAlertRule,
    StaffGroup,
    UsageAlert,
    WebhookDelivery,
    WebhookEndpoint,
)
from .selectors import usage_alert_slots_left
from .services import (
    access_block_lift,
    email_delivery_resend,
    quota_alert_rules_ensure_defaults,
    usage_alert_activate,
    usage_alert_archive,
    usage_alert_create,
    usage_alert_deactivate,
    webhook_delivery_resend,
)

ALERT_FIELDS = (
    "title",
    "meter",
    "customer",
    "threshold",
    "recurrence",
    "send_webhook",
    "email_customer",
    "customer_emails",
    "staff_group",
    "remove_access",
)


class ReadOnlyAdmin(ModelAdmin):
    """A log: viewable, never edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(StaffGroup)
class StaffGroupAdmin(ModelAdmin):
    list_display = ["name", "member_count", "description"]
    search_fields = ["name", "members"]

    @admin.display(description="members")
    def member_count(self, obj):
        return len(obj.emails)


class TriggerInline(TabularInline):
    model = AlertTrigger
    extra = 0
    fields = ["customer", "window_start", "value", "triggered_at"]
    readonly_fields = fields
    can_delete = False
    max_num = 0
    ordering = ["-triggered_at"]


class UsageAlertForm(forms.ModelForm):
    class Meta:
        model = UsageAlert
        fields = ALERT_FIELDS

    def clean(self):
        data = super().clean()
        customer, meter = data.get("customer"), data.get("meter")
        full = (
            self.instance.pk is None
            and customer is not None
            and meter is not None
            and usage_alert_slots_left(meter=meter, customer=customer) <= 0
        )
        if full:
            raise forms.ValidationError(
                f"{customer} already has {MAX_ALERTS_PER_METER_AND_CUSTOMER} alerts on "
                f"{meter} (R-A4); archive one first."
            )
        return data


@admin.register(UsageAlert)
class UsageAlertAdmin(ModelAdmin):
    form = UsageAlertForm
    list_display = ["title", "meter", "customer", "threshold", "recurrence", "status", "created_at"]
    list_filter = ["status", "recurrence", "meter", "remove_access"]
    search_fields = ["title", "customer__external_id", "customer__name", "meter__name"]
    list_select_related = ["meter", "customer"]
    autocomplete_fields = ["customer"]
    fieldsets = [
        (None, {"fields": ["title", "meter", "customer", "threshold", "recurrence"]}),
        (
            "Actions (R-A2)",
            {
                "fields": [
                    "send_webhook",
                    "email_customer",
                    "customer_emails",
                    "staff_group",
                    "remove_access",
                ]
            },
        ),
        ("State", {"fields": ["status", "created_at"]}),
    ]
    inlines = [TriggerInline]
    actions = ["activate", "deactivate", "archive"]

    def get_readonly_fields(self, request, obj=None):
        # Moving an alert to another meter or customer would dodge R-A4: create a new one.
        return ["status", "created_at"] + (["meter", "customer"] if obj else [])

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        # Through the service: R-A4's race-safe limit, R-A3's creation instant per clock.
        fields = {f: form.cleaned_data[f] for f in ALERT_FIELDS}
        alert = usage_alert_create(**fields)
        obj.pk, obj.created_at, obj.status = alert.pk, alert.created_at, alert.status
        obj.clock_starts = alert.clock_starts

    def _transition(self, request, queryset, service):
        for alert in queryset:
            try:
                service(alert=alert)
            except DomainError as exc:
                self.message_user(request, f"{alert}: {exc.message}", level=messages.ERROR)

    @action(description="Activate selected alerts")
    def activate(self, request, queryset):
        self._transition(request, queryset, usage_alert_activate)

    @action(description="Deactivate selected alerts")
    def deactivate(self, request, queryset):
        self._transition(request, queryset, usage_alert_deactivate)

    @action(description="Archive selected alerts (final)")
    def archive(self, request, queryset):
        self._transition(request, queryset, usage_alert_archive)


@admin.register(AlertTrigger)
class AlertTriggerAdmin(ReadOnlyAdmin):
    list_display = ["alert", "customer", "value", "threshold", "window_start", "triggered_at"]
    list_filter = ["alert__meter", "triggered_at"]
    search_fields = ["alert__title", "customer__external_id", "customer__name"]
    list_select_related = ["alert", "customer"]
    date_hierarchy = "triggered_at"


@admin.register(QuotaAlertRule)
class QuotaAlertRuleAdmin(ModelAdmin):
    list_display = ["offer_service", "percent", "is_active"]
    list_editable = ["is_active"]
    list_filter = ["is_active", "percent", "offer_service__offer"]
    search_fields = ["offer_service__offer__code", "offer_service__service__code"]
    list_select_related = ["offer_service__offer", "offer_service__service"]
    actions_list = ["create_defaults"]
    actions = ["make_active", "make_inactive"]

    @action(description="Create 90 % / 100 % rules for quotas without rules")
    def create_defaults(self, request):
        created = quota_alert_rules_ensure_defaults()
        self.message_user(request, f"{created} rule(s) created.")
        return redirect("admin:alerts_quotaalertrule_changelist")

    @action(description="Activate selected rules")
    def make_active(self, request, queryset):
        queryset.update(is_active=True)

    @action(description="Deactivate selected rules")
    def make_inactive(self, request, queryset):
        queryset.update(is_active=False)


@admin.register(QuotaAlertFiring)
class QuotaAlertFiringAdmin(ReadOnlyAdmin):
    list_display = ["offer_service", "subscription", "percent", "used", "limit", "fired_at"]
    list_filter = ["percent", "fired_at"]
    search_fields = ["subscription__customer__external_id", "offer_service__service__code"]
    list_select_related = ["offer_service__offer", "offer_service__service", "subscription"]


@admin.register(AccessBlock)
class AccessBlockAdmin(ReadOnlyAdmin):
    list_display = ["offer_service", "subscription", "blocked_at", "until", "lifted_at"]
    list_filter = [("lifted_at", admin.EmptyFieldListFilter)]
    search_fields = ["subscription__customer__external_id", "offer_service__service__code"]
    list_select_related = ["offer_service__offer", "offer_service__service", "subscription"]
    actions = ["lift"]

    @action(description="Give access back now (lift selected blocks)")
    def lift(self, request, queryset):
        for block in queryset.filter(lifted_at__isnull=True).select_related("subscription"):
            access_block_lift(block=block, at=timezone.now())


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=1000, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        choices=[(t, t) for t in EVENT_TYPES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every type.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "description", "event_types", "is_active"]


class DeliveryInline(TabularInline):
    model = WebhookDelivery
    extra = 0
    fields = ["event_type", "status", "attempts", "last_response_code", "created_at"]
    readonly_fields = fields
    can_delete = False
    max_num = 0
    ordering = ["-created_at"]
    show_change_link = True


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "description", "types", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["url", "description"]
    readonly_fields = ["secret", "created_at"]
    inlines = [DeliveryInline]

    def get_fields(self, request, obj=None):
        fields = ["url", "description", "event_types", "is_active"]
        return fields + (["secret", "created_at"] if obj else [])

    @admin.display(description="event types")
    def types(self, obj):
        return ", ".join(obj.event_types) or "all"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            self.message_user(
                request,
                f"Signing secret (also shown on the endpoint's page): {obj.secret}",
                level=messages.WARNING,
            )


class ResendMixin:
    resend_service = None

    @action(description="Resend selected deliveries")
    def resend(self, request, queryset):
        with transaction.atomic():
            for delivery in queryset:
                type(self).resend_service(delivery=delivery)
        self.message_user(request, f"{queryset.count()} delivery(ies) queued again.")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ResendMixin, ReadOnlyAdmin):
    list_display = [
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "last_response_code",
        "next_attempt_at",
        "delivered_at",
        "created_at",
    ]
    list_filter = ["status", "event_type", "endpoint"]
    search_fields = ["endpoint__url", "event_type", "last_error"]
    list_select_related = ["endpoint"]
    actions = ["resend"]
    resend_service = staticmethod(webhook_delivery_resend)


@admin.register(EmailDelivery)
class EmailDeliveryAdmin(ResendMixin, ReadOnlyAdmin):
    list_display = ["subject", "kind", "recipients", "status", "attempts", "sent_at", "created_at"]
    list_filter = ["status", "kind"]
    search_fields = ["subject", "to", "key"]
    actions = ["resend"]
    resend_service = staticmethod(email_delivery_resend)

    @admin.display(description="to")
    def recipients(self, obj):
        return ", ".join(obj.to)
