from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from billing.models import Offer
from core.validators import code_validator
from metering.models import Meter


class ServiceKind(models.TextChoices):
    """R-Q1: exactly three kinds decide quota behaviour."""

    ON_OFF = "on_off", "On/off"
    SEAT_BASED = "seat_based", "Seat-based (level, carries over)"
    USAGE_BASED = "usage_based", "Usage-based (flow, resets)"


class ServiceGroup(models.Model):
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=12, choices=ServiceKind.choices)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class Service(models.Model):
    code = models.CharField(max_length=64, unique=True, validators=[code_validator])
    name = models.CharField(max_length=255)
    group = models.ForeignKey(ServiceGroup, on_delete=models.PROTECT, related_name="services")
    meter = models.ForeignKey(
        Meter,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="services",
        help_text="Measures usage; required for seat- and usage-based services.",
    )
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name

    @property
    def kind(self) -> str:
        return self.group.kind

    def clean(self):
        if self.group_id is None:
            return
        if self.group.kind == ServiceKind.ON_OFF and self.meter_id is not None:
            raise ValidationError({"meter": "An on/off service is not metered."})
        if self.group.kind != ServiceKind.ON_OFF and self.meter_id is None:
            raise ValidationError({"meter": "A seat- or usage-based service needs a meter."})


class ResetInterval(models.TextChoices):
    BILLING_PERIOD = "billing_period"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


class LimitBehaviour(models.TextChoices):
    OVERAGE = "overage", "Bill the overage"
    BLOCK = "block", "Block access past the quota"
    NOTIFY = "notify", "Notify only"


class OfferService(models.Model):
    """A service on an offer: quota (or on/off), reset interval, limit behaviour, pricing."""

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="offer_services")
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="offer_services")
    included = models.DecimalField(
        max_digits=20,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Quantity included each window. Empty means unlimited.",
    )
    enabled = models.BooleanField(default=True, help_text="For on/off services: included or not.")
    reset_interval = models.CharField(
        max_length=16, choices=ResetInterval.choices, default=ResetInterval.BILLING_PERIOD
    )
    limit_behaviour = models.CharField(
        max_length=8, choices=LimitBehaviour.choices, default=LimitBehaviour.OVERAGE
    )
    pricing = models.JSONField(null=True, blank=True, help_text="Overage pricing (API.md).")

    class Meta:
        ordering = ["offer", "service__code"]
        constraints = [
            models.UniqueConstraint(fields=["offer", "service"], name="offer_service_unique"),
            models.CheckConstraint(
                condition=Q(included__isnull=True) | Q(included__gte=0),
                name="offer_service_included_gte_0",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.offer.code} · {self.service.code}"

    @property
    def is_unlimited(self) -> bool:
        return self.included is None

    def clean(self):
        from billing.pricing import PricingError, parse_pricing

        if self.pricing:
            try:
                parse_pricing(self.pricing)
            except PricingError as exc:
                raise ValidationError({"pricing": str(exc)}) from exc
