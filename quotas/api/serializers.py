from datetime import datetime
from decimal import Decimal
from typing import Any

from rest_framework import serializers

from billing.models import Interval, Offer, Subscription
from billing.pricing import round_money
from core.numbers import decimal_str
from metering.models import Meter
from quotas.models import (
    AddOn,
    AddOnPurchase,
    LimitBehaviour,
    OfferService,
    ResetInterval,
    Service,
    ServiceGroup,
    ServiceKind,
)
from quotas.selectors import Entitlement, SubscriptionUsage, addons_for_offer


class ServiceGroupSerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=ServiceKind.choices)

    class Meta:
        model = ServiceGroup
        fields = ["id", "name", "kind"]
        extra_kwargs = {"name": {"validators": []}}


class ServiceSerializer(serializers.ModelSerializer):
    group = serializers.PrimaryKeyRelatedField(queryset=ServiceGroup.objects.all())
    meter = serializers.PrimaryKeyRelatedField(
        queryset=Meter.objects.all(), required=False, allow_null=True
    )
    kind = serializers.CharField(source="group.kind", read_only=True)

    class Meta:
        model = Service
        fields = ["code", "name", "group", "kind", "meter", "description"]
        extra_kwargs = {"code": {"validators": []}}


def included_representation(offer_service: OfferService):
    """`included`: "10" (quota), null (unlimited) or true/false (on/off)."""
    if offer_service.service.kind == ServiceKind.ON_OFF:
        return offer_service.enabled
    return None if offer_service.included is None else decimal_str(offer_service.included)


class OfferServiceSerializer(serializers.Serializer):
    service = serializers.CharField()
    # Its meaning depends on the service's kind, so the service checks it (quotas.services).
    included = serializers.JSONField(required=False, allow_null=True)
    reset_interval = serializers.ChoiceField(
        choices=ResetInterval.choices, default=ResetInterval.BILLING_PERIOD
    )
    limit_behaviour = serializers.ChoiceField(
        choices=LimitBehaviour.choices, default=LimitBehaviour.OVERAGE
    )
    pricing = serializers.JSONField(required=False, allow_null=True)

    def to_representation(self, instance: OfferService):
        return {
            "service": instance.service.code,
            "name": instance.service.name,
            "kind": instance.service.kind,
            "included": included_representation(instance),
            "reset_interval": instance.reset_interval,
            "limit_behaviour": instance.limit_behaviour,
            "pricing": instance.pricing,
        }

    def validate_pricing(self, value):
        if value is not None and not isinstance(value, dict):
            raise serializers.ValidationError("Pricing is an object with a `model`.")
        return value


class OfferSerializer(serializers.ModelSerializer):
    services = OfferServiceSerializer(many=True, required=False, source="offer_services")
    billing_interval = serializers.ChoiceField(choices=Interval.choices, default=Interval.MONTH)
    addons = serializers.SerializerMethodField(
        help_text="Add-ons this offer's subscribers may buy."
    )

    class Meta:
        model = Offer
        fields = [
            "code",
            "name",
            "description",
            "currency",
            "fixed_fee",
            "billing_interval",
            "timezone",
            "trial_days",
            "level",
            "tax_rate",
            "is_active",
            "services",
            "addons",
            "created_at",
        ]
        read_only_fields = ["created_at"]
        # Uniqueness answers 409 from the service; currency is upper-cased before it is checked.
        extra_kwargs = {"code": {"validators": []}, "currency": {"validators": []}}

    def validate_currency(self, value: str) -> str:
        value = value.upper()
        if len(value) != 3 or not value.isalpha():
            raise serializers.ValidationError("An ISO 4217 code, e.g. USD.")
        return value

    def get_addons(self, offer: Offer) -> list[dict[str, Any]]:
        # A list of offers loads the add-ons once, not once per offer.
        addons = self.context.get("addons") if isinstance(self.context, dict) else None
        return AddOnSerializer(addons_for_offer(offer, addons=addons), many=True).data

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if "offer_services" in value:
            value["services"] = value.pop("offer_services")
        return value


class OfferUpdateSerializer(OfferSerializer):
    class Meta(OfferSerializer.Meta):
        read_only_fields = ["code", "created_at"]


# --------------------------------------------------------------------------- add-ons


class AddOnSerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="service.code", read_only=True)
    quantity = serializers.SerializerMethodField()

    class Meta:
        model = AddOn
        fields = ["code", "name", "description", "service", "quantity", "price", "min_level"]
        read_only_fields = fields

    def get_quantity(self, addon: AddOn) -> str:
        return decimal_str(addon.quantity)


# --------------------------------------------------------------------------- subscriptions


class SubscriptionSerializer(serializers.ModelSerializer):
    customer = serializers.CharField(source="customer.external_id", read_only=True)
    offer = serializers.CharField(source="offer.code", read_only=True)
    clock = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Subscription
        fields = [
            "id",
            "customer",
            "offer",
            "status",
            "clock",
            "billing_anchor",
            "started_at",
            "trial_end",
            "current_period_start",
            "current_period_end",
            "cancel_at",
            "canceled_at",
            "ended_at",
            "created_at",
        ]
        read_only_fields = fields


class SubscriptionCreateSerializer(serializers.Serializer):
    customer = serializers.CharField(max_length=255, help_text="The customer's external_id.")
    offer = serializers.CharField(max_length=64, help_text="The offer's code.")
    start = serializers.DateTimeField(required=False, help_text="Default: now (the clock's).")
    clock = serializers.IntegerField(required=False, allow_null=True, min_value=1)


class SubscriptionCancelSerializer(serializers.Serializer):
    at = serializers.CharField(help_text='"period_end", "now" or an ISO 8601 timestamp.')

    def validate_at(self, value: str):
        if value in ("period_end", "now"):
            return value
        return serializers.DateTimeField().to_internal_value(value)


class AddOnPurchaseSerializer(serializers.Serializer):
    addon = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=10_000, default=1)
    idempotency_key = serializers.CharField(max_length=200, required=False)


def _money(value: Decimal, currency: str) -> str:
    return format(round_money(value, currency), "f")


def _when(value: datetime | None) -> str | None:
    return None if value is None else serializers.DateTimeField().to_representation(value)


def _qty(value: Decimal | None) -> str | None:
    return None if value is None else decimal_str(value)


def charge_representation(purchase: AddOnPurchase) -> dict[str, Any]:
    charge = purchase.charge
    return {
        "id": charge.id,
        "subscription": purchase.subscription_id,
        "addon": purchase.addon.code,
        "service": charge.service_code,
        "description": charge.description,
        "quantity": decimal_str(charge.quantity),
        "unit_price": decimal_str(charge.unit_price),
        "amount": _money(charge.amount, charge.currency),
        "currency": charge.currency,
        "created_at": _when(charge.created_at),
        "purchase": {
            "id": purchase.id,
            "addon": purchase.addon.code,
            "quantity": purchase.quantity,
            "purchased_at": _when(purchase.purchased_at),
        },
    }


def usage_representation(usage: SubscriptionUsage) -> dict[str, Any]:
    """API.md "GET /subscriptions/{id}/usage": decimals as strings, amounts rounded."""
    services = []
    for s in usage.services:
        services.append(
            {
                "service": s.service_code,
                "name": s.service_name,
                "kind": s.kind,
                "included": s.enabled if not s.is_quota else _qty(s.included),
                "used": _qty(s.used),
                "remaining": _qty(s.remaining),
                "overage_quantity": decimal_str(s.overage_quantity),
                "overage_amount": _money(s.overage_amount, usage.currency),
                "resets_at": _when(s.resets_at),
                "has_access": s.has_access,
                "unit": s.unit,
                "reset_interval": s.reset_interval if s.kind == "usage_based" else None,
                "limit_behaviour": s.limit_behaviour if s.is_quota else None,
                "addon_quantity": decimal_str(s.addon_quantity),
            }
        )
    return {
        "subscription": usage.subscription_id,
        "at": _when(usage.at),
        "period": {"start": _when(usage.period_start), "end": _when(usage.period_end)},
        "services": services,
        "fixed_fee": _money(usage.fixed_fee, usage.currency),
        "pending_charges": _money(usage.pending_charges, usage.currency),
        "amount_due_so_far": format(usage.amount_due_so_far, "f"),
        "currency": usage.currency,
    }


def entitlement_representation(entitlement: Entitlement) -> dict[str, Any]:
    return {
        "has_access": entitlement.has_access,
        "used": _qty(entitlement.used),
        "limit": _qty(entitlement.limit),
        "remaining": _qty(entitlement.remaining),
        "resets_at": _when(entitlement.resets_at),
        "service": entitlement.service_code,
        "kind": entitlement.kind,
        "subscription": entitlement.subscription_id,
    }


class UsageThresholdSerializer(serializers.Serializer):
    service = serializers.CharField(max_length=64)
    usage_gte = serializers.DecimalField(max_digits=38, decimal_places=12, coerce_to_string=True)


class BillingThresholdsSerializer(serializers.Serializer):
    """PUT replaces all; GET reads them (API.md "billing-thresholds", R-T1 … R-T8)."""

    amount_gte = serializers.DecimalField(
        max_digits=20, decimal_places=6, required=False, allow_null=True, default=None
    )
    reset_billing_cycle_anchor = serializers.BooleanField(required=False, default=False)
    items = UsageThresholdSerializer(many=True, required=False, default=list)


def thresholds_representation(thresholds) -> dict[str, Any]:
    return {
        "amount_gte": None if thresholds.amount_gte is None else decimal_str(thresholds.amount_gte),
        "reset_billing_cycle_anchor": thresholds.reset_billing_cycle_anchor,
        "items": [
            {"service": item.service_code, "usage_gte": decimal_str(item.usage_gte)}
            for item in thresholds.items
        ],
    }
