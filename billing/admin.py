from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import action

from core.errors import DomainError

from . import clocks, invoicing
from .formatting import money_display
from .models import (
    Clock,
    Customer,
    CustomerContact,
    CustomerCredit,
    Discount,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    PeriodClose,
    Subscription,
)
from .pricing import minor_units, round_money


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


class ClockAdvanceForm(forms.Form):
    to = forms.DateTimeField(
        label="Advance to",
        help_text="An instant after the clock's, with its offset (e.g. 2027-01-01T00:00:00+00:00).",
    )


# Quick steps for the console: watch a day, a week or a month pass in seconds.
CLOCK_STEPS = {
    "1 day": timedelta(days=1),
    "1 week": timedelta(weeks=1),
    "31 days": timedelta(days=31),
}


@admin.register(Clock)
class ClockAdmin(ModelAdmin):
    """Simulation clocks (R-A5): the "Advance" page runs, in time order, every period close,
    quota reset, billing threshold and alert evaluation due, and shows what ran."""

    list_display = ["name", "now", "subscription_count", "updated_at"]
    search_fields = ["name"]
    actions_detail = ["advance"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(subscription_total=Count("subscriptions"))

    @admin.display(description="Subscriptions", ordering="subscription_total")
    def subscription_count(self, obj: Clock) -> int:
        return obj.subscription_total

    @action(description="Advance", url_path="advance", permissions=["change"])
    def advance(self, request: HttpRequest, object_id: str) -> HttpResponse:
        clock = self.get_object(request, unquote(object_id))
        if clock is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        result = None
        form = ClockAdvanceForm(request.POST or None, initial={"to": clock.now})
        if request.method == "POST":
            step = CLOCK_STEPS.get(request.POST.get("step", ""))
            to = (
                clock.now + step if step else (form.cleaned_data["to"] if form.is_valid() else None)
            )
            if to is not None:
                try:
                    result = clocks.clock_advance(clock=clock, to=to)
                except DomainError as exc:
                    messages.error(request, f"Not advanced: {exc.message}")
                else:
                    ran = sum(len(step["ran"]) for step in result.steps)
                    messages.success(
                        request,
                        f"{clock.name} is now at {clock.now:%Y-%m-%d %H:%M %Z}; {ran} thing(s) ran.",
                    )
                    form = ClockAdvanceForm(initial={"to": clock.now})
        return TemplateResponse(
            request,
            "billing/admin_clock_advance.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "original": clock,
                "title": f"Advance {clock.name}",
                "form": form,
                "steps": list(CLOCK_STEPS),
                "result": result,
                "change_url": reverse("admin:billing_clock_change", args=[clock.pk]),
            },
        )


@admin.register(PeriodClose)
class PeriodCloseAdmin(ModelAdmin):
    """The log of closed billing periods: written by the period machinery, read here."""

    list_display = ["subscription", "period_start", "period_end", "reason", "invoice", "closed_at"]
    list_filter = ["reason"]
    list_select_related = ["subscription__customer", "subscription__offer", "invoice"]
    search_fields = ["subscription__customer__external_id", "invoice__number"]
    date_hierarchy = "period_start"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# --------------------------------------------------------------------------- invoices


class InvoiceLineInline(TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = ["description", "service_code", "kind", "quantity", "unit_price", "amount"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(ModelAdmin):
    """Invoices are written by the billing services; the console reads them and moves them
    through the state machine (mark paid, void) with the same services."""

    list_display = ["__str__", "customer", "reason", "status", "amount_due", "issued_at"]
    list_filter = ["status", "reason", "currency", "issued_at"]
    search_fields = ["number", "customer__external_id", "customer__name", "idempotency_key"]
    list_select_related = ["customer"]
    date_hierarchy = "created_at"
    inlines = [InvoiceLineInline]
    actions = ["mark_paid", "void"]
    readonly_fields = [
        "number",
        "customer",
        "subscription",
        "status",
        "reason",
        "period_start",
        "period_end",
        "currency",
        "subtotal",
        "discount",
        "tax_rate",
        "tax",
        "credit",
        "total",
        "issued_at",
        "paid_at",
        "voided_at",
        "idempotency_key",
        "metadata",
        "created_at",
    ]
    fields = readonly_fields

    @admin.display(description="Total", ordering="total")
    def amount_due(self, invoice: Invoice) -> str:
        return money_display(invoice.total, invoice.currency)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def _transition(self, request, queryset, service, done: str) -> None:
        moved, refused = 0, []
        for invoice in queryset.select_related("subscription__clock"):
            try:
                service(invoice=invoice, at=invoicing.invoice_now(invoice))
                moved += 1
            except DomainError as exc:
                refused.append(f"{invoice}: {exc.message}")
        if moved:
            self.message_user(request, f"{moved} invoice(s) {done}.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Refused: " + "; ".join(refused), messages.ERROR)

    @admin.action(description="Mark selected invoices paid")
    def mark_paid(self, request, queryset) -> None:
        self._transition(request, queryset, invoicing.invoice_mark_paid, "marked paid")

    @admin.action(description="Void selected invoices (credit goes back)")
    def void(self, request, queryset) -> None:
        self._transition(request, queryset, invoicing.invoice_void, "voided")


class CreditGrantForm(forms.ModelForm):
    class Meta:
        model = CustomerCredit
        fields = ["customer", "amount", "currency", "description"]

    def clean(self):
        data = super().clean()
        amount, currency = data.get("amount"), data.get("currency")
        if amount is not None and currency and round_money(amount, currency) <= 0:
            self.add_error("amount", "A grant is at least one minor unit of the currency.")
        return data


@admin.register(CustomerCredit)
class CustomerCreditAdmin(ModelAdmin):
    """The credit ledger: grants are added here (through the service); rows never change."""

    form = CreditGrantForm
    list_display = ["customer", "signed_amount", "currency", "description", "invoice", "created_at"]
    list_filter = ["currency", "created_at"]
    search_fields = ["customer__external_id", "customer__name", "description", "invoice__number"]
    list_select_related = ["customer", "invoice"]
    autocomplete_fields = ["customer"]

    @admin.display(description="Amount", ordering="amount")
    def signed_amount(self, entry: CustomerCredit) -> str:
        return f"{entry.amount:+.{minor_units(entry.currency)}f}"

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        entry = invoicing.customer_credit_grant(
            customer=obj.customer,
            amount=obj.amount,
            currency=obj.currency,
            description=obj.description,
        )
        obj.pk, obj.amount, obj.created_at = entry.pk, entry.amount, entry.created_at


@admin.register(Discount)
class DiscountAdmin(ModelAdmin):
    list_display = [
        "name",
        "customer",
        "subscription",
        "percent",
        "amount_off",
        "currency",
        "valid_from",
        "valid_until",
        "redemption_count",
    ]
    list_filter = ["valid_from", "valid_until"]
    search_fields = ["name", "customer__external_id", "subscription__customer__external_id"]
    list_select_related = ["customer", "subscription__customer", "subscription__offer"]
    autocomplete_fields = ["customer", "subscription"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                redeemed=Count(
                    "redemptions", filter=~Q(redemptions__invoice__status=InvoiceStatus.VOID)
                )
            )
        )

    @admin.display(description="Redeemed")
    def redemption_count(self, discount: Discount) -> str:
        limit = discount.max_redemptions
        return f"{discount.redeemed} / {limit}" if limit else str(discount.redeemed)
