"""Billing thresholds (R-T1 … R-T8): invoice early when the amount due or an item's usage
reaches a threshold.

* ``billing_thresholds_set`` validates and stores them: a monetary threshold above the
  subscription's fixed fees (R-T4), at most one of it and one usage threshold per item (R-T6).
* ``billing_thresholds_evaluate`` compares, under the subscription's row lock, what an invoice
  issued now would bill (``closing.unbilled_lines``: usage not yet invoiced, the period's fees
  if not yet billed, pending charges; before tax, after discounts and credits, R-T5) with the
  thresholds, and issues that invoice when one is reached. Trials (R-T2) and the 24 hours
  before the period or the subscription ends (R-T3) are skipped. The period-end invoice then
  bills only the rest (R-T7), with any pricing model (R-T8).

Evaluation runs after each ingested batch that touches a subscription with thresholds (a
task queued on commit), on every beat sweep, and at each step of a simulation clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from billing import periods
from billing.invoice_math import money_str
from billing.invoicing import invoice_amount_before_tax
from billing.models import (
    BillingThreshold,
    Clock,
    Invoice,
    InvoiceReason,
    PeriodClose,
    PeriodCloseReason,
    Subscription,
    SubscriptionStatus,
    UsageThreshold,
)
from billing.selectors import usage_billed
from billing.subscriptions import clock_now
from core.errors import DomainError, InvalidInput
from core.numbers import decimal_str
from core.outbox import outbox_publish

from .balances import balances_rebuild
from .closing import (
    effective_period_end,
    invoice_unbilled,
    lines_total,
    subscription_locked,
    unbilled_lines,
)
from .models import ResetInterval, ServiceKind
from .selectors import LIVE_STATUSES, subscription_offer_services

QUIET_BEFORE_END = timedelta(hours=24)  # R-T3


def _future_tolerance() -> timedelta:
    return timedelta(seconds=settings.KOTA_EVENT_FUTURE_TOLERANCE_SECONDS)


_AMOUNT_LIMIT = Decimal(10) ** 14


@dataclass(frozen=True)
class Thresholds:
    amount_gte: Decimal | None
    reset_billing_cycle_anchor: bool
    items: list[UsageThreshold]


def billing_thresholds_get(*, subscription: Subscription) -> Thresholds:
    threshold = BillingThreshold.objects.filter(subscription=subscription).first()
    return Thresholds(
        amount_gte=threshold.amount_gte if threshold else None,
        reset_billing_cycle_anchor=bool(threshold and threshold.reset_billing_cycle_anchor),
        items=list(subscription.usage_thresholds.order_by("service_code")),
    )


def subscription_fixed_fees(subscription: Subscription) -> Decimal:
    """What the subscription bills each period whatever its usage: the offer's fee and the
    add-ons bought (R-T4)."""
    addons = sum(
        (
            p.addon.price * p.quantity
            for p in subscription.addon_purchases.filter(canceled_at__isnull=True).select_related(
                "addon"
            )
        ),
        Decimal(0),
    )
    return subscription.offer.fixed_fee + addons


def _decimal(value: Any, field: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        number = None
    if number is None or not number.is_finite() or number <= 0 or number >= _AMOUNT_LIMIT:
        raise InvalidInput(
            f"`{field}` is a positive decimal string.",
            code="invalid_threshold",
            details={"field": field},
        )
    return number


@transaction.atomic
def billing_thresholds_set(
    *,
    subscription: Subscription,
    amount_gte: Any = None,
    reset_billing_cycle_anchor: bool = False,
    items: list[dict[str, Any]] | None = None,
) -> Thresholds:
    """Replace the subscription's billing thresholds (PUT semantics); None/[] removes them."""
    subscription = subscription_locked(subscription.pk)
    if subscription.status not in LIVE_STATUSES:
        raise DomainError("The subscription has ended.", code="subscription_ended")
    amount = None if amount_gte is None else _decimal(amount_gte, "amount_gte")
    fees = subscription_fixed_fees(subscription)
    if amount is not None and amount <= fees:
        raise DomainError(
            "A monetary threshold must be greater than the subscription's fixed fees (R-T4).",
            code="threshold_below_fixed_fees",
            details={
                "fixed_fees": money_str(fees, subscription.offer.currency),
                "amount_gte": decimal_str(amount),
            },
        )
    metered = {
        os.service.code
        for os in subscription_offer_services(subscription)
        if os.service.kind != ServiceKind.ON_OFF
    }
    wanted: dict[str, Decimal] = {}
    for index, item in enumerate(items or []):
        code = item.get("service")
        if code not in metered:
            raise InvalidInput(
                f"{code!r} is not a metered service of this subscription's offer.",
                code="unknown_service",
                details={"index": index, "services": sorted(metered)},
            )
        if code in wanted:
            raise DomainError(
                f"One usage threshold per subscription item: {code!r} is given twice (R-T6).",
                code="duplicate_usage_threshold",
                details={"index": index, "service": code},
            )
        wanted[code] = _decimal(item.get("usage_gte"), f"items[{index}].usage_gte")
    if amount is None and not reset_billing_cycle_anchor:
        BillingThreshold.objects.filter(subscription=subscription).delete()
    else:
        BillingThreshold.objects.update_or_create(
            subscription=subscription,
            defaults={
                "amount_gte": amount,
                "reset_billing_cycle_anchor": reset_billing_cycle_anchor,
            },
        )
    subscription.usage_thresholds.exclude(service_code__in=wanted).delete()
    for code, usage_gte in wanted.items():
        UsageThreshold.objects.update_or_create(
            subscription=subscription, service_code=code, defaults={"usage_gte": usage_gte}
        )
    return billing_thresholds_get(subscription=subscription)


# --------------------------------------------------------------------------- evaluation


def _quiet(subscription: Subscription, at: datetime) -> bool:
    """R-T2 (trial) and R-T3 (the last 24 hours before the period or the subscription ends,
    so a customer never gets two invoices on one date)."""
    if subscription.status == SubscriptionStatus.TRIALING:
        return True
    if subscription.trial_end is not None and at < subscription.trial_end:
        return True
    return effective_period_end(subscription) - at <= QUIET_BEFORE_END


def _crossed(
    subscription: Subscription, lines, threshold: BillingThreshold | None, at: datetime
) -> list[dict[str, str]]:
    crossed = []
    if threshold is not None and threshold.amount_gte is not None:
        amount = invoice_amount_before_tax(subscription=subscription, lines=lines, at=at)
        if amount >= threshold.amount_gte:
            crossed.append({"amount_gte": str(threshold.amount_gte), "amount": str(amount)})
    measured = {
        line.service: Decimal(line.metadata["measured_quantity"])
        for line in lines
        if "measured_quantity" in line.metadata
    }
    for item in subscription.usage_thresholds.all():
        if item.service_code not in measured:
            continue  # nothing of it left to bill
        since = (
            measured[item.service_code]
            - usage_billed(
                subscription=subscription,
                service_code=item.service_code,
                period_start=subscription.current_period_start,
                period_end=subscription.current_period_end,
            ).measured
        )
        if since >= item.usage_gte:
            crossed.append(
                {
                    "service": item.service_code,
                    "usage_gte": str(item.usage_gte),
                    "usage": str(since),
                }
            )
    return crossed


def _reset_anchor(subscription: Subscription, invoice: Invoice, at: datetime) -> None:
    """The threshold invoice closed the period at ``at``; a new one starts there."""
    PeriodClose.objects.create(
        subscription=subscription,
        period_start=subscription.current_period_start,
        period_end=at,
        reason=PeriodCloseReason.THRESHOLD_RESET,
        invoice=invoice,
        closed_at=at,
    )
    offer = subscription.offer
    subscription.billing_anchor = at
    subscription.current_period_start, subscription.current_period_end = periods.period_at(
        at, offer.billing_interval, at, offer.timezone
    )
    subscription.save(
        update_fields=["billing_anchor", "current_period_start", "current_period_end"]
    )
    if subscription.offer.offer_services.filter(
        reset_interval=ResetInterval.BILLING_PERIOD
    ).exists():
        balances_rebuild(subscription_id=subscription.pk, now=at)  # its windows moved


@transaction.atomic
def billing_thresholds_evaluate(
    *, subscription_id: int, at: datetime | None = None
) -> dict[str, Any] | None:
    """Issue a threshold invoice if one is reached now; returns what it did, else None.

    Idempotent: under the row lock, a second evaluation sees the first invoice's lines as
    billed, so nothing is left over the threshold.
    """
    subscription = subscription_locked(subscription_id)
    at = at or clock_now(subscription.clock)
    if subscription.status not in LIVE_STATUSES or _quiet(subscription, at):
        return None
    threshold = BillingThreshold.objects.filter(subscription=subscription).first()
    if threshold is None and not subscription.usage_thresholds.exists():
        return None
    start, end = subscription.current_period_start, subscription.current_period_end
    if at < start:
        return None
    reset = threshold is not None and threshold.reset_billing_cycle_anchor
    # Without a reset, bill every event accepted so far (stamped up to the future tolerance);
    # with one, the new period owns what is stamped from ``at`` on.
    usage_until = at if reset else min(end, at + _future_tolerance())
    lines = unbilled_lines(
        subscription=subscription, usage_until=usage_until, fee_until=at if reset else end
    )
    if lines_total(lines, subscription.offer.currency) <= 0:
        return None  # nothing to bill (a non-monotone price can even owe the customer)
    crossed = _crossed(subscription, lines, threshold, at)
    if not crossed:
        return None
    earlier = subscription.invoices.filter(
        reason=InvoiceReason.THRESHOLD, period_start=start
    ).count()
    invoice = invoice_unbilled(
        subscription=subscription,
        reason=InvoiceReason.THRESHOLD,
        period_start=start,
        period_end=at,
        lines=lines,
        at=at,
        idempotency_key=f"threshold:{subscription.pk}:{start.isoformat()}:{earlier + 1}",
    )
    if invoice is None:
        return None
    outbox_publish(
        type="billing_threshold.reached",
        payload={
            "subscription": subscription.pk,
            "customer": subscription.customer.external_id,
            "invoice": invoice.pk,
            "number": invoice.number,
            "total": money_str(invoice.total, invoice.currency),
            "currency": invoice.currency,
            "crossed": crossed,
            "reset_billing_cycle_anchor": reset,
        },
        customer_external_id=subscription.customer.external_id,
        occurred_at=at,
    )
    if reset:
        _reset_anchor(subscription, invoice, at)
    return {
        "subscription": subscription.pk,
        "invoice": invoice.pk,
        "number": invoice.number,
        "total": money_str(invoice.total, invoice.currency),
        "crossed": crossed,
    }


def subscriptions_with_thresholds(
    *, clock: Clock | None = None, customer_ids=None, any_clock: bool = False
) -> list[int]:
    subs = Subscription.objects.filter(status__in=LIVE_STATUSES)
    if not any_clock:
        subs = subs.filter(clock=clock)
    if customer_ids is not None:
        subs = subs.filter(customer_id__in=list(customer_ids))
    subs = subs.filter(
        Q(billing_threshold__amount_gte__isnull=False) | Q(usage_thresholds__isnull=False)
    )
    return sorted(set(subs.values_list("pk", flat=True)))


def billing_thresholds_evaluate_all(*, clock: Clock | None, at: datetime) -> list[dict]:
    """Evaluate every subscription with thresholds (on ``clock``, or on real time)."""
    results = []
    for pk in subscriptions_with_thresholds(clock=clock):
        result = billing_thresholds_evaluate(subscription_id=pk, at=at)
        if result is not None:
            results.append(result)
    return results


def clock_job_run(clock: Clock, at: datetime) -> list[dict[str, Any]]:
    """Billing thresholds as a simulation clock's job (billing.clocks)."""
    return [
        {"type": "threshold_invoice", **r}
        for r in billing_thresholds_evaluate_all(clock=clock, at=at)
    ]


def usage_listener(deltas) -> None:
    """After an ingested batch (metering.hooks), evaluate the thresholds of the subscriptions
    it touched once it commits: the invoice is issued at once, outside the ingest path."""
    pks = subscriptions_with_thresholds(
        customer_ids={delta.customer_id for delta in deltas}, any_clock=True
    )
    if pks:
        from .tasks import evaluate_billing_thresholds

        transaction.on_commit(lambda: evaluate_billing_thresholds.delay(pks))
