from decimal import Decimal

from django import forms
from django.contrib import admin
from unfold.admin import ModelAdmin, TabularInline

from billing.formatting import money_display
from billing.models import Offer
from billing.pricing import PricingError, parse_pricing

from .models import OfferService, Service, ServiceGroup

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
    list_display = [
        "code",
        "name",
        "currency",
        "fixed_fee",
        "billing_interval",
        "level",
        "timezone",
    ]
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
