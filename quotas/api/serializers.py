from rest_framework import serializers

from billing.models import Interval, Offer
from core.numbers import decimal_str
from metering.models import Meter
from quotas.models import (
    LimitBehaviour,
    OfferService,
    ResetInterval,
    Service,
    ServiceGroup,
    ServiceKind,
)


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

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if "offer_services" in value:
            value["services"] = value.pop("offer_services")
        return value


class OfferUpdateSerializer(OfferSerializer):
    class Meta(OfferSerializer.Meta):
        read_only_fields = ["code", "created_at"]
