from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q

from core.validators import code_validator, currency_validator, validate_timezone

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

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["subscription", "invoiced_at"])]

    def __str__(self) -> str:
        return f"{self.description}: {self.amount} {self.currency}"
