"""Reads for the API, the console and the apps that consult alerts."""

from django.db.models import QuerySet

from billing.models import Customer
from core.errors import NotFound
from metering.models import Meter

from .models import (
    MAX_ALERTS_PER_METER_AND_CUSTOMER,
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
