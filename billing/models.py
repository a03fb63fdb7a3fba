from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q, Value

from core.validators import code_validator, currency_validator, validate_timezone

from .invoice_math import DiscountTerm

MONEY = {"max_digits": 20, "decimal_places": 6}


class Interval(models.TextChoices):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


class Customer(models.Model):
    external_id = models.CharField(max_length=255, unique=True)
    name = models.CharField(max_length=255)
    email = models.EmailField(blank=True)
    tax_rate = models.DecimalField(
        max_digits=7,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text="Percent, e.g. 20 for 20 %. Empty: the offer's rate applies.",
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(tax_rate__isnull=True) | Q(tax_rate__gte=0),
                name="customer_tax_rate_gte_0",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.external_id})"


class ContactRole(models.TextChoices):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


class CustomerContact(models.Model):
    """A person at a customer: receives quota emails by role and may log into the customer pages."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="contacts")
    email = models.EmailField()
    name = models.CharField(max_length=255, blank=True)
    role = models.CharField(max_length=10, choices=ContactRole.choices, default=ContactRole.MEMBER)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="customer_contacts",
        help_text="Lets this person log into the customer pages.",
    )

    class Meta:
        ordering = ["customer", "role", "email"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "email"], name="contact_unique_email"),
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(user__isnull=False),
                name="contact_one_customer_per_user",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.role})"


class Offer(models.Model):
    code = models.CharField(max_length=64, unique=True, validators=[code_validator])
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    currency = models.CharField(max_length=3, validators=[currency_validator])
    fixed_fee = models.DecimalField(**MONEY, default=Decimal(0))
    billing_interval = models.CharField(
        max_length=8, choices=Interval.choices, default=Interval.MONTH
    )
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_timezone],
        help_text="IANA zone in which periods and resets are computed.",
    )
    trial_days = models.PositiveIntegerField(default=0)
    level = models.PositiveIntegerField(
        default=0, help_text="Plan rank; add-ons name the lowest level allowed to buy them."
    )
    tax_rate = models.DecimalField(
        max_digits=7, decimal_places=4, default=Decimal(0), help_text="Percent."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["level", "code"]
        constraints = [
            models.CheckConstraint(condition=Q(fixed_fee__gte=0), name="offer_fixed_fee_gte_0"),
            models.CheckConstraint(condition=Q(tax_rate__gte=0), name="offer_tax_rate_gte_0"),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"), name="offer_currency_iso"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Clock(models.Model):
    """A simulation clock: subscriptions attached to it live on its time (R-A5)."""

    name = models.CharField(max_length=100)
    now = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} @ {self.now:%Y-%m-%d %H:%M}"


class SubscriptionStatus(models.TextChoices):
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELED = "canceled"
    ENDED = "ended"


class Subscription(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="subscriptions")
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="subscriptions")
    clock = models.ForeignKey(
        Clock, null=True, blank=True, on_delete=models.PROTECT, related_name="subscriptions"
    )
    status = models.CharField(
        max_length=10, choices=SubscriptionStatus.choices, default=SubscriptionStatus.ACTIVE
    )
    billing_anchor = models.DateTimeField(help_text="Periods are counted from this instant.")
    started_at = models.DateTimeField()
    trial_end = models.DateTimeField(null=True, blank=True)
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField()
    cancel_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["customer", "status"]),
            models.Index(fields=["status", "current_period_end"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(current_period_end__gt=F("current_period_start")),
                name="subscription_period_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer.external_id} · {self.offer.code}"


class PendingCharge(models.Model):
    """A one-off amount waiting for the subscription's next invoice (e.g. a prorated add-on)."""

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="pending_charges"
    )
    description = models.CharField(max_length=255)
    service_code = models.CharField(max_length=64, blank=True)
    quantity = models.DecimalField(**MONEY, default=Decimal(1))
    unit_price = models.DecimalField(**MONEY)
    amount = models.DecimalField(**MONEY, help_text="Rounded to the currency's minor unit.")
    currency = models.CharField(max_length=3, validators=[currency_validator])
    kind = models.CharField(max_length=16, default="addon")
    created_at = models.DateTimeField()
    invoiced_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=255, unique=True)
    invoice = models.ForeignKey(
        "Invoice",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="pending_charges",
        help_text="The invoice that billed it.",
    )

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["subscription", "invoiced_at"])]

    def __str__(self) -> str:
        return f"{self.description}: {self.amount} {self.currency}"


# --------------------------------------------------------------------------- invoices

UNIT = {"max_digits": 38, "decimal_places": 18}  # quantities and unit prices: full precision


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"


class InvoiceReason(models.TextChoices):
    PERIOD_END = "period_end"
    THRESHOLD = "threshold"
    ADDON = "addon"
    MANUAL = "manual"


_TOTAL_EXPR = F("subtotal") - F("discount") + F("tax") - F("credit")
_SLACK = Value(Decimal("0.0000005"))


class InvoiceNumberSequence(models.Model):
    """The counter finalized invoices take their number from, one row per prefix.

    Read and incremented under a row lock in the finalizing transaction, so numbers are
    sequential and gap-free: a rolled-back finalization gives its number back.
    """

    prefix = models.CharField(max_length=16, unique=True)
    last_value = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.prefix}: {self.last_value}"


class Invoice(models.Model):
    number = models.CharField(
        max_length=32,
        unique=True,
        null=True,
        blank=True,
        help_text="Given at finalization: sequential and gap-free among finalized invoices.",
    )
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.PROTECT, related_name="invoices"
    )
    status = models.CharField(
        max_length=8, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT
    )
    reason = models.CharField(max_length=12, choices=InvoiceReason.choices)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    currency = models.CharField(max_length=3, validators=[currency_validator])
    subtotal = models.DecimalField(**MONEY, default=Decimal(0))
    discount = models.DecimalField(**MONEY, default=Decimal(0))
    tax_rate = models.DecimalField(
        max_digits=7, decimal_places=4, default=Decimal(0), help_text="Percent applied."
    )
    tax = models.DecimalField(**MONEY, default=Decimal(0))
    credit = models.DecimalField(**MONEY, default=Decimal(0), help_text="Customer credit used.")
    total = models.DecimalField(**MONEY, default=Decimal(0))
    issued_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(
        max_length=255, unique=True, help_text="A retried issue returns the same invoice."
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["customer", "status"]),
            models.Index(fields=["subscription", "period_start"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(period_end__gte=F("period_start")), name="invoice_period_ordered"
            ),
            models.CheckConstraint(
                condition=Q(subtotal__gte=0)
                & Q(discount__gte=0)
                & Q(discount__lte=F("subtotal"))
                & Q(tax__gte=0)
                & Q(credit__gte=0)
                & Q(total__gte=0),
                name="invoice_amounts_in_range",
            ),
            # Exact on PostgreSQL (amounts have 6 places); the half-micro slack only absorbs
            # SQLite evaluating decimals as floats.
            models.CheckConstraint(
                condition=Q(total__gte=_TOTAL_EXPR - _SLACK) & Q(total__lte=_TOTAL_EXPR + _SLACK),
                name="invoice_total_adds_up",
            ),
            # Drafts have no number; open and paid invoices do; a void draft never got one.
            models.CheckConstraint(
                condition=Q(status="draft", number__isnull=True, issued_at__isnull=True)
                | Q(status__in=["open", "paid"], number__isnull=False, issued_at__isnull=False)
                | Q(status="void"),
                name="invoice_number_iff_finalized",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"), name="invoice_currency_iso"
            ),
        ]

    def __str__(self) -> str:
        return self.number or f"Draft #{self.pk}"


class InvoiceLineKind(models.TextChoices):
    FIXED_FEE = "fixed_fee"
    USAGE = "usage"
    ADDON = "addon"
    CHARGE = "charge"
    ADJUSTMENT = "adjustment"


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField(default=0)
    description = models.CharField(max_length=255)
    service_code = models.CharField(max_length=64, blank=True, help_text="Blank for a fixed fee.")
    kind = models.CharField(max_length=12, choices=InvoiceLineKind.choices)
    quantity = models.DecimalField(**UNIT, default=Decimal(1))
    unit_price = models.DecimalField(**UNIT)
    amount = models.DecimalField(**MONEY, help_text="Rounded once to the currency's minor unit.")
    pricing_model = models.CharField(max_length=16, blank=True)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(
        default=dict, blank=True, help_text='Usage lines: {"usage_quantity": "..."} (R-T7).'
    )

    class Meta:
        ordering = ["position", "id"]
        indexes = [models.Index(fields=["service_code", "kind"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gte=0) | Q(kind="adjustment"),
                name="invoice_line_negative_only_adjustment",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.description}: {self.amount}"


class CustomerCredit(models.Model):
    """The credit ledger: + a grant or a give-back, - what an invoice consumed."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="credits")
    currency = models.CharField(max_length=3, validators=[currency_validator])
    amount = models.DecimalField(**MONEY)
    invoice = models.ForeignKey(
        Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="credit_entries"
    )
    description = models.CharField(max_length=255)
    idempotency_key = models.CharField(max_length=255, unique=True, null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "customer credit entry"
        verbose_name_plural = "customer credit"
        indexes = [models.Index(fields=["customer", "currency"])]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="credit_amount_not_zero"),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"), name="credit_currency_iso"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount:+} {self.currency}: {self.description}"


class Discount(models.Model):
    """A percent XOR an amount off, for a customer's invoices or one subscription's."""

    name = models.CharField(max_length=255)
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="discounts"
    )
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.CASCADE, related_name="discounts"
    )
    percent = models.DecimalField(
        max_digits=7, decimal_places=4, null=True, blank=True, help_text="E.g. 10 for 10 %."
    )
    amount_off = models.DecimalField(**MONEY, null=True, blank=True)
    currency = models.CharField(
        max_length=3, blank=True, validators=[currency_validator], help_text="For amount off."
    )
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True, help_text="Exclusive.")
    max_redemptions = models.PositiveIntegerField(
        null=True, blank=True, help_text="Invoices it may reduce; empty = no limit."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(customer__isnull=False, subscription__isnull=True)
                | Q(customer__isnull=True, subscription__isnull=False),
                name="discount_customer_xor_subscription",
            ),
            models.CheckConstraint(
                condition=Q(percent__isnull=False, amount_off__isnull=True, currency="")
                | Q(percent__isnull=True, amount_off__isnull=False, currency__regex=r"^[A-Z]{3}$"),
                name="discount_percent_xor_amount_off",
            ),
            models.CheckConstraint(
                condition=Q(percent__isnull=True) | Q(percent__gt=0, percent__lte=100),
                name="discount_percent_range",
            ),
            models.CheckConstraint(
                condition=Q(amount_off__isnull=True) | Q(amount_off__gt=0),
                name="discount_amount_off_positive",
            ),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True)
                | Q(valid_until__isnull=True)
                | Q(valid_until__gt=F("valid_from")),
                name="discount_validity_ordered",
            ),
            models.CheckConstraint(
                condition=Q(max_redemptions__isnull=True) | Q(max_redemptions__gte=1),
                name="discount_max_redemptions_gte_1",
            ),
        ]

    def __str__(self) -> str:
        off = (
            f"{self.percent.normalize()} %"
            if self.percent is not None
            else (f"{self.amount_off} {self.currency}")
        )
        return f"{self.name} ({off})"

    def clean(self) -> None:
        errors = {}
        if (self.customer_id is None) == (self.subscription_id is None):
            errors["customer"] = "Choose a customer or a subscription (one of them)."
        if (self.percent is None) == (self.amount_off is None):
            errors["percent"] = "Give a percent or an amount off (one of them)."
        if self.percent is not None and not (0 < self.percent <= 100):
            errors["percent"] = "A percent is greater than 0 and at most 100."
        if self.amount_off is not None:
            if self.amount_off <= 0:
                errors["amount_off"] = "An amount off is greater than 0."
            if not self.currency:
                errors["currency"] = "An amount off needs its currency."
        elif self.currency:
            errors["currency"] = "Only an amount off has a currency."
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            errors["valid_until"] = "Ends after it starts."
        if errors:
            raise ValidationError(errors)

    def as_term(self) -> DiscountTerm:
        return DiscountTerm(percent=self.percent, amount_off=self.amount_off)


class DiscountRedemption(models.Model):
    """A discount applied to an invoice; counts against max_redemptions unless voided."""

    discount = models.ForeignKey(Discount, on_delete=models.CASCADE, related_name="redemptions")
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="redemptions")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["discount", "invoice"], name="discount_redeemed_once_per_invoice"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.discount} on {self.invoice}"


# --------------------------------------------------------------------------- period closes


class PeriodCloseReason(models.TextChoices):
    PERIOD_END = "period_end"
    CANCELED = "canceled"
    THRESHOLD_RESET = "threshold_reset", "Threshold reset the billing cycle anchor"


class PeriodClose(models.Model):
    """One billing period of a subscription, closed: invoiced (if anything was due) and rolled.

    The unique (subscription, period_start) makes closing idempotent: a retried or concurrent
    close finds the row and does nothing (DESIGN.md §4).
    """

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="period_closes"
    )
    period_start = models.DateTimeField()
    period_end = models.DateTimeField(help_text="Where the period really ended (a cancel cuts it).")
    reason = models.CharField(max_length=16, choices=PeriodCloseReason.choices)
    invoice = models.ForeignKey(
        Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    closed_at = models.DateTimeField(help_text="On the subscription's clock.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-period_start", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "period_start"], name="period_close_once"
            ),
            models.CheckConstraint(
                condition=Q(period_end__gt=F("period_start")), name="period_close_ordered"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subscription_id} · {self.period_start:%Y-%m-%d}–{self.period_end:%Y-%m-%d}"


# --------------------------------------------------------------------------- billing thresholds


class BillingThreshold(models.Model):
    """A subscription's monetary billing threshold (R-T1); one row per subscription (R-T6)."""

    subscription = models.OneToOneField(
        Subscription, on_delete=models.CASCADE, related_name="billing_threshold"
    )
    amount_gte = models.DecimalField(
        **MONEY,
        null=True,
        blank=True,
        help_text="Invoice early once the amount due (before tax, R-T5) reaches this.",
    )
    reset_billing_cycle_anchor = models.BooleanField(
        default=False, help_text="A threshold invoice starts a new billing period."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_gte__isnull=True) | Q(amount_gte__gt=0),
                name="billing_threshold_amount_gt_0",
            ),
        ]

    def __str__(self) -> str:
        return f"≥ {self.amount_gte}" if self.amount_gte is not None else "no amount threshold"


class UsageThreshold(models.Model):
    """Invoice early once a subscription item's unbilled usage reaches ``usage_gte`` (R-T1)."""

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="usage_thresholds"
    )
    service_code = models.CharField(max_length=64)
    usage_gte = models.DecimalField(**UNIT)

    class Meta:
        ordering = ["subscription", "service_code"]
        constraints = [
            # R-T6: at most one usage threshold per subscription item.
            models.UniqueConstraint(
                fields=["subscription", "service_code"], name="usage_threshold_one_per_item"
            ),
            models.CheckConstraint(condition=Q(usage_gte__gt=0), name="usage_threshold_gt_0"),
        ]

    def __str__(self) -> str:
        return f"{self.service_code} ≥ {self.usage_gte}"
