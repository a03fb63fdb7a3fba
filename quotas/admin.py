from decimal import Decimal
from uuid import uuid4

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.safestring import mark_safe
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import action
from unfold.widgets import (
    UnfoldAdminIntegerFieldWidget,
    UnfoldAdminSelectWidget,
)

from billing.admin import SubscriptionAdmin as BillingSubscriptionAdmin
from billing.formatting import money_display
from billing.models import Offer, Subscription
from billing.pricing import PricingError, parse_pricing
from core.errors import DomainError

from . import selectors, services, thresholds
from .balances import balances_rebuild
from .forms import AddOnQuantityForm
from .models import (
    AddOn,
    AddOnPurchase,
    OfferService,
    QuotaReset,
    Service,
    ServiceGroup,
    ServiceKind,
    UsageBalance,
)

PRICING_MODELS = [
    ("", "No overage pricing"),
    ("per_unit", "Per unit above the included quantity"),
    ("package", "Per started package"),
    ("graduated", "Graduated tiers"),
    ("volume", "Volume tiers"),
]


class OfferServiceForm(forms.ModelForm):
    """Pricing as plain fields an operator can fill in, assembled into the pricing object."""

    pricing_model = forms.ChoiceField(choices=PRICING_MODELS, required=False)
    unit_price = forms.DecimalField(required=False, min_value=Decimal(0), decimal_places=6)
    package_size = forms.DecimalField(required=False, min_value=Decimal(0), decimal_places=6)
    package_price = forms.DecimalField(required=False, min_value=Decimal(0), decimal_places=6)
    tiers = forms.JSONField(
        required=False,
        help_text='Graduated/volume: [{"up_to": "100", "unit_price": "0.10"}, {"up_to": null, '
        '"unit_price": "0.05"}]',
    )

    class Meta:
        model = OfferService
        fields = ["service", "included", "enabled", "reset_interval", "limit_behaviour"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        pricing = (self.instance.pricing or {}) if self.instance.pk else {}
        self.initial.setdefault("pricing_model", pricing.get("model", ""))
        for key in ("unit_price", "package_size", "package_price", "tiers"):
            if key in pricing:
                self.initial.setdefault(key, pricing[key])

    def clean(self):
        data = super().clean()
        model = data.get("pricing_model")
        if not model:
            self.instance.pricing = None
            return data
        pricing = {"model": model}
        wanted = {
            "per_unit": ["unit_price"],
            "package": ["package_size", "package_price"],
            "graduated": ["tiers"],
            "volume": ["tiers"],
        }[model]
        for key in wanted:
            value = data.get(key)
            if value in (None, ""):
                self.add_error(key, f"Required for {model} pricing.")
                return data
            pricing[key] = str(value) if isinstance(value, Decimal) else value
        try:
            parse_pricing(pricing)
        except PricingError as exc:
            raise forms.ValidationError(str(exc)) from exc
        self.instance.pricing = pricing
        return data


class OfferServiceInline(TabularInline):
    model = OfferService
    form = OfferServiceForm
    extra = 0
    fields = [
        "service",
        "included",
        "enabled",
        "reset_interval",
        "limit_behaviour",
        "pricing_model",
        "unit_price",
        "package_size",
        "package_price",
        "tiers",
    ]


@admin.register(Offer)
class OfferAdmin(ModelAdmin):
    list_display = ["code", "name", "fee", "billing_interval", "level", "timezone"]
    list_filter = ["currency", "billing_interval", "is_active"]
    search_fields = ["code", "name"]
    inlines = [OfferServiceInline]

    @admin.display(description="Fixed fee", ordering="fixed_fee")
    def fee(self, offer):
        return money_display(offer.fixed_fee, offer.currency)

    fieldsets = [
        (None, {"fields": ["code", "name", "description", "is_active"]}),
        (
            "Billing",
            {
                "fields": [
                    "currency",
                    "fixed_fee",
                    "billing_interval",
                    "timezone",
                    "trial_days",
                    "tax_rate",
                    "level",
                ]
            },
        ),
    ]


@admin.register(ServiceGroup)
class ServiceGroupAdmin(ModelAdmin):
    list_display = ["name", "kind"]
    list_filter = ["kind"]
    search_fields = ["name"]


@admin.register(Service)
class ServiceAdmin(ModelAdmin):
    list_display = ["code", "name", "group", "meter"]
    list_filter = ["group__kind", "group"]
    search_fields = ["code", "name"]
    list_select_related = ["group", "meter"]
    autocomplete_fields = ["meter"]


@admin.register(AddOn)
class AddOnAdmin(ModelAdmin):
    list_display = ["code", "name", "service", "quantity", "price", "min_level", "is_active"]
    list_filter = ["is_active", "min_level", "service"]
    search_fields = ["code", "name"]
    list_select_related = ["service"]


@admin.register(AddOnPurchase)
class AddOnPurchaseAdmin(ModelAdmin):
    """Purchases are made through the API or the customer page (they record a charge);
    here an operator can look them up and end one by setting ``canceled_at``."""

    list_display = ["subscription", "addon", "quantity", "purchased_at", "canceled_at", "charge"]
    list_filter = ["addon", "canceled_at"]
    search_fields = ["subscription__customer__external_id", "addon__code"]
    list_select_related = ["subscription__customer", "subscription__offer", "addon", "charge"]
    readonly_fields = ["subscription", "addon", "quantity", "purchased_at", "charge"]
    fields = ["subscription", "addon", "quantity", "purchased_at", "canceled_at", "charge"]

    def has_add_permission(self, request):
        return False


@admin.register(UsageBalance)
class UsageBalanceAdmin(ModelAdmin):
    """Cached balances, read-only: they are written by ingestion and rebuilds only."""

    list_display = ["subscription", "offer_service", "window_start", "window_end", "count"]
    list_filter = ["offer_service__service"]
    search_fields = ["subscription__customer__external_id"]
    list_select_related = ["subscription__customer", "subscription__offer", "offer_service"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class AddOnPurchaseInline(TabularInline):
    model = AddOnPurchase
    extra = 0
    fields = ["addon", "quantity", "purchased_at", "canceled_at", "charge"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class AddOnChoiceForm(AddOnQuantityForm):
    """Step 1 in the console: one of the add-ons the offer may buy, and how many units."""

    addon = forms.ChoiceField(label="Add-on", widget=UnfoldAdminSelectWidget)
    field_order = ["addon", "quantity"]

    def __init__(self, *args, addons: list[AddOn], **kwargs):
        super().__init__(*args, **kwargs)
        quantity = self.fields["quantity"]
        quantity.widget = UnfoldAdminIntegerFieldWidget(attrs=quantity.widget.attrs)
        self.addons = {addon.code: addon for addon in addons}
        self.fields["addon"].choices = [
            (code, f"{addon.name} ({addon.code})") for code, addon in self.addons.items()
        ]


class AddOnConfirmForm(AddOnQuantityForm):
    """Step 2: the quoted purchase; the service decides whether it is allowed (R-L5)."""

    addon = forms.CharField(max_length=100)
    idempotency_key = forms.CharField(max_length=64, required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in ("addon", "quantity"):
            self.fields[field].widget = forms.HiddenInput()


admin.site.unregister(Subscription)


@admin.register(Subscription)
class SubscriptionAdmin(BillingSubscriptionAdmin):
    """billing's console page plus the quotas: a usage panel and the customer page link."""

    readonly_fields = [*BillingSubscriptionAdmin.readonly_fields, "usage_panel"]
    inlines = [*BillingSubscriptionAdmin.inlines, AddOnPurchaseInline]
    actions = ["rebuild_balances"]
    actions_detail = ["buy_addon", "billing_thresholds"]

    def get_fieldsets(self, request, obj=None):
        fields = [f for f in self.get_fields(request, obj) if f != "usage_panel"]
        if obj is None:
            return [(None, {"fields": fields})]
        return [("Usage", {"fields": ["usage_panel"]}), ("Subscription", {"fields": fields})]

    @admin.display(description="Usage")
    def usage_panel(self, obj: Subscription) -> str:
        if obj.pk is None:
            return "-"
        html = render_to_string(
            "quotas/admin_usage_panel.html",
            {
                "usage": selectors.subscription_usage(subscription=obj),
                "customer_page": reverse("my:subscription", args=[obj.pk]),
            },
        )
        # The admin turns newlines of read-only values into <br>: keep the table intact.
        return mark_safe(" ".join(html.split("\n")))  # noqa: S308 - a rendered template

    @admin.action(description="Recompute usage balances from the meters")
    def rebuild_balances(self, request, queryset):
        rows = sum(
            balances_rebuild(subscription_id=pk) for pk in queryset.values_list("pk", flat=True)
        )
        self.message_user(request, f"{rows} balance rows recomputed.", messages.SUCCESS)

    @action(description="Buy add-on", url_path="buy-addon", permissions=["change"])
    def buy_addon(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Buy add-on units for the customer (R-L5, R-L6): pick an add-on the offer may buy
        and a quantity, see the prorated price, confirm. The quotas services decide and
        charge, as for the customer page; a refusal comes back as a message."""
        subscription = self.get_object(request, unquote(object_id))
        if subscription is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        here = reverse("admin:billing_subscription_buy_addon", args=[subscription.pk])
        if request.method == "POST":
            return self._addon_purchase(request, subscription, back=here)
        offer = selectors.offer_get(code=subscription.offer.code)
        addons = selectors.addons_for_offer(offer)
        if not addons:
            messages.warning(
                request,
                f"{offer.name} (level {offer.level}) may not buy any add-on (R-L5).",
            )
        form = AddOnChoiceForm(request.GET or None, addons=addons)
        confirm = None
        if form.is_valid():
            addon, quantity = form.addons[form.cleaned_data["addon"]], form.cleaned_data["quantity"]
            confirm = {
                "addon": addon,
                "quantity": quantity,
                "added": addon.quantity * quantity,
                "full_price": addon.price * quantity,
                "quote": services.addon_quote(
                    subscription=subscription, addon=addon, quantity=quantity
                ),
                "form": AddOnConfirmForm(
                    auto_id=False,
                    initial={
                        "addon": addon.code,
                        "quantity": quantity,
                        "idempotency_key": f"console-{uuid4().hex}",
                    },
                ),
            }
        return TemplateResponse(
            request,
            "quotas/admin_addon_buy.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "original": subscription,
                "title": f"Buy an add-on for {subscription}",
                "offer": offer,
                "form": form if form.is_bound else AddOnChoiceForm(addons=addons),
                "confirm": confirm,
                "change_url": reverse("admin:billing_subscription_change", args=[subscription.pk]),
            },
        )

    def _addon_purchase(
        self, request: HttpRequest, subscription: Subscription, *, back: str
    ) -> HttpResponse:
        form = AddOnConfirmForm(request.POST)
        if not form.is_valid():
            messages.error(request, f"Not bought: {form.errors.as_text()}")
            return redirect(back)
        data = form.cleaned_data
        try:
            purchase = services.addon_purchase(
                subscription=subscription,
                addon_code=data["addon"],
                quantity=data["quantity"],
                idempotency_key=data["idempotency_key"] or None,
            )
        except DomainError as exc:
            messages.error(request, f"Not bought: {exc.message}")
            return redirect(back)
        charge = purchase.charge
        messages.success(
            request,
            f"{purchase.addon.name} × {purchase.quantity} bought: the quota is raised now; "
            f"{money_display(charge.amount, charge.currency)} is charged on the next invoice.",
        )
        return redirect("admin:billing_subscription_change", subscription.pk)

    @action(description="Billing thresholds", url_path="billing-thresholds", permissions=["change"])
    def billing_thresholds(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Set the subscription's billing thresholds (R-T1): the quotas service validates them
        (R-T4, R-T6) exactly as for the API; a refusal comes back as a message."""
        subscription = self.get_object(request, unquote(object_id))
        if subscription is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        current = thresholds.billing_thresholds_get(subscription=subscription)
        services_metered = [
            os.service
            for os in selectors.subscription_offer_services(subscription)
            if os.service.kind != ServiceKind.ON_OFF
        ]
        usage = {item.service_code: item.usage_gte for item in current.items}
        form = BillingThresholdsForm(
            request.POST or None,
            services=services_metered,
            initial={
                "amount_gte": current.amount_gte,
                "reset_billing_cycle_anchor": current.reset_billing_cycle_anchor,
                **{f"usage_{code}": value for code, value in usage.items()},
            },
        )
        if request.method == "POST" and form.is_valid():
            try:
                thresholds.billing_thresholds_set(
                    subscription=subscription,
                    amount_gte=form.cleaned_data["amount_gte"],
                    reset_billing_cycle_anchor=form.cleaned_data["reset_billing_cycle_anchor"],
                    items=form.items(),
                )
            except DomainError as exc:
                messages.error(request, f"Not saved: {exc.message}")
            else:
                messages.success(request, "Billing thresholds saved.")
                return redirect("admin:billing_subscription_change", subscription.pk)
        return TemplateResponse(
            request,
            "quotas/admin_billing_thresholds.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "original": subscription,
                "title": f"Billing thresholds of {subscription}",
                "form": form,
                "fixed_fees": money_display(
                    thresholds.subscription_fixed_fees(subscription), subscription.offer.currency
                ),
                "change_url": reverse("admin:billing_subscription_change", args=[subscription.pk]),
            },
        )


class BillingThresholdsForm(forms.Form):
    amount_gte = forms.DecimalField(
        label="Invoice when the amount due reaches",
        required=False,
        max_digits=20,
        decimal_places=6,
        help_text="Before tax, after discounts and credits (R-T5); above the fixed fees (R-T4).",
    )
    reset_billing_cycle_anchor = forms.BooleanField(
        label="A threshold invoice starts a new billing period", required=False
    )

    def __init__(self, *args, services, **kwargs):
        super().__init__(*args, **kwargs)
        self.service_codes = [service.code for service in services]
        for service in services:
            self.fields[f"usage_{service.code}"] = forms.DecimalField(
                label=f"Invoice when {service.name} used since the last invoice reaches",
                required=False,
                max_digits=38,
                decimal_places=12,
                min_value=Decimal("0.000000000001"),
            )

    def items(self) -> list[dict]:
        return [
            {"service": code, "usage_gte": self.cleaned_data[f"usage_{code}"]}
            for code in self.service_codes
            if self.cleaned_data.get(f"usage_{code}") is not None
        ]


@admin.register(QuotaReset)
class QuotaResetAdmin(ModelAdmin):
    """The log of usage-based quota resets, written by the period machinery (R-Q1, R-L3)."""

    list_display = ["subscription", "offer_service", "window_start", "recorded_at"]
    list_select_related = ["subscription__customer", "offer_service__service"]
    search_fields = ["subscription__customer__external_id"]
    date_hierarchy = "window_start"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
