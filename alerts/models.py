import secrets

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from billing.models import Customer, Subscription
from core.models import OutboxEvent
from metering.models import Meter
from quotas.models import OfferService

QUANTITY = {"max_digits": 38, "decimal_places": 12}
MAX_ALERTS_PER_METER_AND_CUSTOMER = 25  # R-A4

# Webhook event types (API.md); endpoints subscribe to a subset.
EVENT_TYPES = (
    "alert.triggered",
    "quota.threshold_reached",
    "quota.exhausted",
    "invoice.created",
    "billing_threshold.reached",
)


def email_list(text: str) -> list[str]:
    """Addresses written one per line (commas and semicolons also separate)."""
    for sep in ",;":
        text = text.replace(sep, "\n")
    seen: dict[str, None] = {}
    for line in text.splitlines():
        address = line.strip()
        if address:
            seen.setdefault(address, None)
    return list(seen)


def _validate_email_list(text: str) -> None:
    for address in email_list(text):
        try:
            validate_email(address)
        except ValidationError as exc:
            raise ValidationError(f"{address!r} is not an email address.") from exc


class StaffGroup(models.Model):
    """People on the operator's side told about alerts (R-A2: the sales team, for upsells).

    Plain addresses rather than Django users: a sales rep need not have a console login.
    """

    name = models.CharField(max_length=100, unique=True)
    members = models.TextField(
        validators=[_validate_email_list], help_text="Email addresses, one per line."
    )
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def emails(self) -> list[str]:
        return email_list(self.members)


class AlertStatus(models.TextChoices):
    ACTIVE = "active"
    INACTIVE = "inactive"
    ARCHIVED = "archived"


class Recurrence(models.TextChoices):
    ONE_TIME = "one_time", "Once per customer, ever"
    EVERY_PERIOD = "every_period", "Once per billing period"


class UsageAlert(models.Model):
    """Fires when a customer's usage of a meter reaches ``threshold`` (R-A1..R-A4).

    Only usage after ``created_at`` counts (R-A3). For customers on a simulation clock the
    creation instant is that clock's time then (``clock_starts``); a clock created after the
    alert has all its usage after it (R-A5).
    """

    title = models.CharField(max_length=255)
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="usage_alerts")
    customer = models.ForeignKey(
        Customer,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="usage_alerts",
        help_text="Empty: every customer (R-A1).",
    )
    threshold = models.DecimalField(**QUANTITY, help_text="Fires when usage is >= this.")
    recurrence = models.CharField(
        max_length=12, choices=Recurrence.choices, default=Recurrence.ONE_TIME
    )
    status = models.CharField(max_length=8, choices=AlertStatus.choices, default="active")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    clock_starts = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="Simulation clock id -> its time when the alert was created (R-A3, R-A5).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    # Actions (R-A2).
    send_webhook = models.BooleanField(
        default=True, help_text="Send `alert.triggered` to the webhook endpoints subscribed to it."
    )
    email_customer = models.BooleanField(default=False, help_text="Email the customer.")
    customer_emails = models.TextField(
        blank=True,
        validators=[_validate_email_list],
        help_text="Addresses the user set, one per line. Empty: the customer's owners and admins.",
    )
    staff_group = models.ForeignKey(
        StaffGroup,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="usage_alerts",
        help_text="Email this staff group, e.g. sales for an upsell.",
    )
    remove_access = models.BooleanField(
        default=False,
        help_text="Block the customer's services measured by this meter until their quota "
        "resets or more quota is bought.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["meter", "status"], name="usage_alert_meter_status"),
            models.Index(fields=["customer", "meter"], name="usage_alert_customer_meter"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(threshold__gt=0), name="usage_alert_threshold_gt_0"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def customer_email_list(self) -> list[str]:
        return email_list(self.customer_emails)


class AlertTrigger(models.Model):
    """One firing of an alert for one customer in one window: exactly once (the constraint).

    ``window_start`` is the billing period's start for ``every_period`` alerts and the alert's
    creation instant for ``one_time`` ones (a single window, ever).
    """

    alert = models.ForeignKey(UsageAlert, on_delete=models.CASCADE, related_name="triggers")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField(null=True, blank=True)
    threshold = models.DecimalField(**QUANTITY)
    value = models.DecimalField(**QUANTITY)
    triggered_at = models.DateTimeField(help_text="Evaluation time (the simulation clock's).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-triggered_at", "-id"]
        indexes = [models.Index(fields=["customer", "triggered_at"], name="alert_trigger_cust")]
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "customer", "window_start"], name="alert_trigger_once_per_window"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.alert} · {self.customer_id} @ {self.triggered_at:%Y-%m-%d %H:%M}"


class QuotaAlertRule(models.Model):
    """Email owners and admins when usage passes ``percent`` of a quota (R-L4)."""

    offer_service = models.ForeignKey(
        OfferService, on_delete=models.CASCADE, related_name="quota_alert_rules"
    )
    percent = models.PositiveSmallIntegerField(help_text="Of the quota (included + add-ons).")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["offer_service", "percent"]
        constraints = [
            models.UniqueConstraint(
                fields=["offer_service", "percent"], name="quota_alert_rule_unique"
            ),
            models.CheckConstraint(
                condition=Q(percent__gte=1) & Q(percent__lte=1000),
                name="quota_alert_rule_percent_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.offer_service} at {self.percent} %"

    @property
    def event_type(self) -> str:
        return "quota.exhausted" if self.percent >= 100 else "quota.threshold_reached"


class QuotaAlertFiring(models.Model):
    """A quota alert sent once per subscription, service, percent and reset window (R-L4)."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="+")
    offer_service = models.ForeignKey(OfferService, on_delete=models.CASCADE, related_name="+")
    percent = models.PositiveSmallIntegerField()
    window_start = models.DateTimeField()
    window_end = models.DateTimeField(null=True, blank=True)
    used = models.DecimalField(**QUANTITY)
    limit = models.DecimalField(**QUANTITY)
    fired_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-fired_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "offer_service", "percent", "window_start"],
                name="quota_alert_firing_once_per_window",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.offer_service} {self.percent} % · sub {self.subscription_id}"


class AccessBlock(models.Model):
    """R-A2 "remove access": a usage alert's action denying a subscription's service.

    In force while ``lifted_at`` is empty, before ``until`` (the quota's next reset; empty for
    a seat-based quota, which never resets) and until an add-on for the service is bought
    after ``blocked_at``. Read it with ``alerts.selectors.access_blocked``.
    """

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="access_blocks"
    )
    offer_service = models.ForeignKey(OfferService, on_delete=models.CASCADE, related_name="+")
    trigger = models.ForeignKey(AlertTrigger, on_delete=models.CASCADE, related_name="blocks")
    blocked_at = models.DateTimeField()
    until = models.DateTimeField(null=True, blank=True)
    lifted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-blocked_at", "-id"]
        indexes = [models.Index(fields=["subscription", "offer_service"], name="access_block_sub")]
        constraints = [
            models.UniqueConstraint(
                fields=["trigger", "subscription", "offer_service"], name="access_block_unique"
            ),
            models.CheckConstraint(
                condition=Q(until__isnull=True) | Q(until__gt=F("blocked_at")),
                name="access_block_until_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.offer_service} blocked for sub {self.subscription_id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def generate_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class WebhookEndpoint(models.Model):
    url = models.URLField(max_length=1000)
    description = models.CharField(max_length=255, blank=True)
    secret = models.CharField(
        max_length=100,
        default=generate_webhook_secret,
        help_text="Signs every delivery (Kota-Signature); give it to the receiver.",
    )
    event_types = models.JSONField(
        default=list, blank=True, help_text="Types wanted; empty means every type."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["url"]

    def __str__(self) -> str:
        return self.description or self.url

    def clean(self):
        types = self.event_types
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise ValidationError({"event_types": "A list of event types."})
        unknown = sorted(set(types) - set(EVENT_TYPES))
        if unknown:
            raise ValidationError({"event_types": f"Unknown event types: {', '.join(unknown)}."})

    def wants(self, event_type: str) -> bool:
        return self.is_active and (not self.event_types or event_type in self.event_types)


class WebhookDelivery(models.Model):
    """One outbox event sent to one endpoint, with its retries (at most once per pair)."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(OutboxEvent, on_delete=models.CASCADE, related_name="+")
    event_type = models.CharField(max_length=64)
    payload = models.JSONField(help_text="The JSON body sent.")
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_response_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due")]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="webhook_delivery_once"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.endpoint}"


class EmailKind(models.TextChoices):
    QUOTA_ALERT = "quota_alert"
    USAGE_ALERT = "usage_alert"
    STAFF_ALERT = "staff_alert"


class EmailDelivery(models.Model):
    """An email rendered when its cause happened, sent by a task with retries (the log)."""

    kind = models.CharField(max_length=16, choices=EmailKind.choices)
    key = models.CharField(max_length=255, unique=True, help_text="Idempotency key.")
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    to = models.JSONField(default=list)
    subject = models.CharField(max_length=255)
    body_text = models.TextField()
    body_html = models.TextField(blank=True)
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "email deliveries"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="email_delivery_due")]

    def __str__(self) -> str:
        return self.subject
