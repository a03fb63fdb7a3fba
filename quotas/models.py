from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from billing.models import Offer, PendingCharge, Subscription
from core.validators import code_validator
from metering.fields import ExactDecimalField
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


QUANTITY = {"max_digits": 38, "decimal_places": 12}


class UsageBalance(models.Model):
    """Pre-aggregated usage of one offer service for one subscription in one quota window.

    The fast path of usage and entitlement reads (DESIGN.md §1): written by the usage listener
    inside the ingest transaction, merging each batch's ``metering.aggregation.Partial`` into
    the row, so a read is one indexed row, never an aggregation over events or rollups.

    * usage-based: one row per reset window (``window_start`` .. ``window_end``);
    * seat-based (R-Q4): one row for the whole subscription (``window_start`` = its start,
      ``window_end`` empty): a level that carries over from period to period.

    Only events inside the subscription's life count (``started_at`` .. ``ended_at``).
    """

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="usage_balances"
    )
    offer_service = models.ForeignKey(
        OfferService, on_delete=models.CASCADE, related_name="usage_balances"
    )
    window_start = models.DateTimeField()
    window_end = models.DateTimeField(null=True, blank=True, help_text="Empty: seat-based.")
    # The six fields of metering.aggregation.Partial, exact like the meters' rollups.
    count = models.BigIntegerField(default=0)
    total = ExactDecimalField(default=Decimal(0))
    maximum = ExactDecimalField(null=True, blank=True)
    last_at = models.DateTimeField(null=True, blank=True)
    last_key = models.CharField(max_length=255, blank=True, default="")
    last_value = ExactDecimalField(null=True, blank=True)
    access_removed_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="An alert removed access for the rest of this window (R-A2); "
        "buying more quota gives it back.",
    )
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["subscription", "offer_service", "window_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "offer_service", "window_start"],
                name="usage_balance_unique_window",
            ),
            models.CheckConstraint(
                condition=Q(window_end__isnull=True) | Q(window_end__gt=F("window_start")),
                name="usage_balance_window_ordered",
            ),
            models.CheckConstraint(condition=Q(count__gte=0), name="usage_balance_count_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.subscription_id} · {self.offer_service_id} @ {self.window_start:%Y-%m-%d}"


class AddOn(models.Model):
    """Extra quota a plan of ``min_level`` or above may buy (R-L5), billed per interval (R-L6)."""

    code = models.CharField(max_length=64, unique=True, validators=[code_validator])
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="addons")
    quantity = models.DecimalField(
        **QUANTITY, help_text="Quota added by one unit, in the service's unit."
    )
    price = models.DecimalField(
        max_digits=20,
        decimal_places=6,
        help_text="Price of one unit per billing interval, in the subscribing offer's currency.",
    )
    min_level = models.PositiveIntegerField(
        default=0, help_text="Offers with this level or above may buy it (R-L5)."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "add-on"
        ordering = ["min_level", "code"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="addon_quantity_gt_0"),
            models.CheckConstraint(condition=Q(price__gte=0), name="addon_price_gte_0"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        if self.service_id is not None and self.service.kind == ServiceKind.ON_OFF:
            raise ValidationError({"service": "An add-on adds quota: pick a metered service."})


class AddOnPurchase(models.Model):
    """Units of an add-on bought for a subscription; active until ``canceled_at``."""

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="addon_purchases"
    )
    addon = models.ForeignKey(AddOn, on_delete=models.PROTECT, related_name="purchases")
    quantity = models.PositiveIntegerField()
    purchased_at = models.DateTimeField()
    canceled_at = models.DateTimeField(null=True, blank=True)
    charge = models.ForeignKey(
        PendingCharge,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The prorated charge recorded at purchase.",
    )
    idempotency_key = models.CharField(max_length=255, null=True, blank=True, unique=True)

    class Meta:
        verbose_name = "add-on purchase"
        ordering = ["-purchased_at", "-id"]
        indexes = [models.Index(fields=["subscription", "addon"], name="addon_purchase_sub")]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="addon_purchase_qty_gt_0"),
            models.CheckConstraint(
                condition=Q(canceled_at__isnull=True) | Q(canceled_at__gte=F("purchased_at")),
                name="addon_purchase_cancel_after_purchase",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.addon.code} × {self.quantity}"


class QuotaReset(models.Model):
    """A usage-based quota window that began: the log of resets (R-Q1, R-L3).

    Usage lives in one balance row per window, so a new window starts from zero by itself
    and a seat-based level (one open window) carries over (R-Q4); this row records that the
    period machinery passed the reset, once (unique), for the console and the clock report.
    """

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="quota_resets"
    )
    offer_service = models.ForeignKey(
        OfferService, on_delete=models.CASCADE, related_name="quota_resets"
    )
    window_start = models.DateTimeField(help_text="The reset instant: the new window's start.")
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["-window_start", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "offer_service", "window_start"],
                name="quota_reset_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subscription_id} · {self.offer_service_id} @ {self.window_start:%Y-%m-%d}"
