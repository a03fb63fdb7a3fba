"""Reads for the API, the console and the apps that consult alerts."""

from datetime import datetime

from django.db.models import Exists, OuterRef, Q, QuerySet

from billing.models import Customer
from core.errors import NotFound
from metering.models import Meter
from quotas.models import AddOnPurchase

from .models import (
    MAX_ALERTS_PER_METER_AND_CUSTOMER,
    AccessBlock,
    AlertStatus,
    AlertTrigger,
    UsageAlert,
)


def usage_alert_list(*, include_archived: bool = False) -> QuerySet[UsageAlert]:
    """Alerts newest first; archived ones are hidden unless asked for."""
    alerts = UsageAlert.objects.select_related("meter", "customer", "staff_group")
    if not include_archived:
        alerts = alerts.exclude(status=AlertStatus.ARCHIVED)
    return alerts.order_by("-created_at", "-id")


def usage_alert_get(*, alert_id: int) -> UsageAlert:
    alert = usage_alert_list(include_archived=True).filter(pk=alert_id).first()
    if alert is None:
        raise NotFound(f"No alert {alert_id}.", code="unknown_alert")
    return alert


def usage_alert_slots_left(*, meter: Meter, customer: Customer) -> int:
    """How many more alerts this customer may have on this meter (R-A4: 25, archived excluded)."""
    used = (
        UsageAlert.objects.filter(meter=meter, customer=customer)
        .exclude(status=AlertStatus.ARCHIVED)
        .count()
    )
    return MAX_ALERTS_PER_METER_AND_CUSTOMER - used


def alert_trigger_list() -> QuerySet[AlertTrigger]:
    return AlertTrigger.objects.select_related("customer").order_by("-triggered_at", "-id")


def access_blocks_in_force(*, at: datetime) -> QuerySet[AccessBlock]:
    """Blocks denying access at ``at``: not lifted, before the quota's reset, and no add-on for
    the service bought since the block (R-A2 "remove access", R-L2 "until the reset or until
    more quota is bought")."""
    bought_since = AddOnPurchase.objects.filter(
        subscription_id=OuterRef("subscription_id"),
        addon__service_id=OuterRef("offer_service__service_id"),
        purchased_at__gte=OuterRef("blocked_at"),
        purchased_at__lte=at,
    ).filter(Q(canceled_at__isnull=True) | Q(canceled_at__gt=at))
    return AccessBlock.objects.filter(
        Q(until__isnull=True) | Q(until__gt=at),
        lifted_at__isnull=True,
        blocked_at__lte=at,
    ).exclude(Exists(bought_since))


def access_blocked(*, subscription_id: int, offer_service_id: int, at: datetime) -> bool:
    """Whether a usage alert's "remove access" action denies this service now."""
    return (
        access_blocks_in_force(at=at)
        .filter(subscription_id=subscription_id, offer_service_id=offer_service_id)
        .exists()
    )
