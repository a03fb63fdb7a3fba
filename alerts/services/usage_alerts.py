"""Usage alerts: create (at most 25 per meter and customer, R-A4), activate, deactivate, archive."""

from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from billing.models import Clock, Customer
from core.errors import Conflict, InvalidInput
from metering.models import Meter, MeterStatus

from ..models import (
    MAX_ALERTS_PER_METER_AND_CUSTOMER,
    AlertStatus,
    Recurrence,
    StaffGroup,
    UsageAlert,
)
from ..selectors import usage_alert_slots_left


def full_clean(obj, *, exclude=None) -> None:
    try:
        obj.full_clean(exclude=exclude)
    except ValidationError as exc:
        raise InvalidInput(
            next(iter(exc.messages), "Invalid."), code="validation_error", details=exc.message_dict
        ) from exc


def _clock_starts(now: datetime) -> dict[str, str]:
    """Each simulation clock's time now: R-A3's "after creation" for its customers (R-A5)."""
    return {str(pk): at.isoformat() for pk, at in Clock.objects.values_list("pk", "now")}


@transaction.atomic
def usage_alert_create(
    *,
    title: str,
    meter: Meter,
    threshold: Decimal,
    customer: Customer | None = None,
    recurrence: str = Recurrence.ONE_TIME,
    send_webhook: bool = True,
    email_customer: bool = False,
    customer_emails: str = "",
    staff_group: StaffGroup | None = None,
    remove_access: bool = False,
    now: datetime | None = None,
) -> UsageAlert:
    """Create an active alert; only usage after now counts towards it (R-A3).

    R-A4: a specific customer has at most 25 non-archived alerts per meter (all-customers
    alerts don't count). The customer row is locked, so concurrent creations can't both pass.
    """
    if meter.status == MeterStatus.ARCHIVED:
        raise InvalidInput("The meter is archived.", code="meter_archived")
    if customer is not None:
        Customer.objects.select_for_update().filter(pk=customer.pk).first()
        if usage_alert_slots_left(meter=meter, customer=customer) <= 0:
            raise Conflict(
                f"A customer may have at most {MAX_ALERTS_PER_METER_AND_CUSTOMER} alerts per "
                "meter (R-A4); archive one first.",
                code="alert_limit_reached",
                details={
                    "limit": MAX_ALERTS_PER_METER_AND_CUSTOMER,
                    "meter": meter.pk,
                    "customer": customer.external_id,
                },
            )
    now = now or timezone.now()
    alert = UsageAlert(
        title=title,
        meter=meter,
        customer=customer,
        threshold=threshold,
        recurrence=recurrence,
        status=AlertStatus.ACTIVE,
        created_at=now,
        clock_starts=_clock_starts(now),
        send_webhook=send_webhook,
        email_customer=email_customer,
        customer_emails=customer_emails,
        staff_group=staff_group,
        remove_access=remove_access,
    )
    full_clean(alert)
    alert.save()
    return alert


def _set_status(alert: UsageAlert, status: str) -> UsageAlert:
    with transaction.atomic():
        alert = UsageAlert.objects.select_for_update().get(pk=alert.pk)
        if alert.status == status:
            return alert
        if alert.status == AlertStatus.ARCHIVED:
            raise Conflict(
                "An archived alert is final; create a new one.",
                code="alert_archived",
                details={"alert": alert.pk},
            )
        alert.status = status
        alert.save(update_fields=["status", "updated_at"])
        return alert


def usage_alert_activate(*, alert: UsageAlert) -> UsageAlert:
    """Evaluate it again; usage during the pause counts (only creation bounds it, R-A3)."""
    return _set_status(alert, AlertStatus.ACTIVE)


def usage_alert_deactivate(*, alert: UsageAlert) -> UsageAlert:
    return _set_status(alert, AlertStatus.INACTIVE)


def usage_alert_archive(*, alert: UsageAlert) -> UsageAlert:
    """Final: an archived alert no longer counts towards R-A4's 25 and can't be reactivated."""
    return _set_status(alert, AlertStatus.ARCHIVED)
