"""Period closing (issue 5): invoice each ended billing period, record quota resets, roll on.

It lives in quotas because a period's invoice needs its usage (``subscription_billable_usage``);
``billing.invoicing.invoice_issue`` writes the invoice. Both the beat (real time) and
simulation clocks (R-A5) call ``subscription_roll``, which catches up in order: three missed
month ends close three periods, oldest first, each in its own transaction.

Every step is idempotent by a unique constraint, not by hope: the invoice by its idempotency
key, the close by ``PeriodClose(subscription, period_start)``, the reset by
``QuotaReset(subscription, offer_service, window_start)``, and the subscription row is locked
while one period closes, so a concurrent worker waits and then finds the period rolled.

Usage-based quotas reset by construction (one balance row per reset window); a seat-based
level is one open window and carries over (R-Q4). What the period-end invoice bills is what
earlier invoices of the period (billing thresholds) did not (R-T7): ``unbilled_lines``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Context, Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max, Min, Q

from billing import periods
from billing.invoice_math import money_str
from billing.invoicing import InvoiceLineDraft, customer_credit_grant, invoice_issue
from billing.models import (
    Clock,
    InvoiceLineKind,
    InvoiceReason,
    PendingCharge,
    PeriodClose,
    PeriodCloseReason,
    Subscription,
    SubscriptionStatus,
)
from billing.pricing import prorate, round_money
from billing.selectors import BilledLine, period_lines_billed, usage_billed

from .balances import quota_targets
from .models import AddOnPurchase, OfferService, QuotaReset, ServiceKind
from .selectors import (
    LIVE_STATUSES,
    quota_target,
    subscription_billable_usage,
    subscription_offer_services,
)
from .windows import USAGE_BASED, QuotaTarget

ZERO = Decimal(0)
_DIVISION = Context(prec=40)


# --------------------------------------------------------------------------- offer data


class OfferData:
    """What a close reads per offer, read once per offer for a whole run of closes
    (``periods_close_due``): the offer services with their service, group and meter."""

    def __init__(self) -> None:
        self._services: dict[int, list[OfferService]] = {}

    def offer_services(self, subscription: Subscription) -> list[OfferService]:
        services = self._services.get(subscription.offer_id)
        if services is None:
            services = self._services[subscription.offer_id] = subscription_offer_services(
                subscription
            )
        return services

    def targets(self, subscription: Subscription) -> list[QuotaTarget]:
        """``quota_targets(subscription_ids=[subscription.pk])`` from the offer services at
        hand and the subscription as it is now."""
        return [
            quota_target(subscription, offer_service)
            for offer_service in sorted(self.offer_services(subscription), key=lambda o: o.pk)
            if offer_service.service.meter_id is not None
            and offer_service.service.group.kind != ServiceKind.ON_OFF
        ]


# --------------------------------------------------------------------------- invoice lines


def _recurring_billed(lines: list[BilledLine], period_start: datetime) -> set[str]:
    """Keys of the recurring fees already billed for the period: "fee", "addon:<purchase>"."""
    return {
        "fee"
        if line.kind == InvoiceLineKind.FIXED_FEE
        else f"addon:{(line.metadata or {}).get('purchase')}"
        for line in lines
        if line.kind in (InvoiceLineKind.FIXED_FEE, InvoiceLineKind.ADDON)
        and line.period_start == period_start
    }


def _recurring_lines(
    subscription: Subscription,
    period_start: datetime,
    period_end: datetime,
    upto: datetime,
    billed_lines: list[BilledLine],
    purchases: list[AddOnPurchase],
) -> list[InvoiceLineDraft]:
    """The offer's fixed fee and the add-ons' price per interval, once per period, for the
    part of it served (trial excluded). An add-on's first period is its prorated purchase
    charge (R-L6), so only periods after the purchase renew it here."""
    offer = subscription.offer
    billed = _recurring_billed(billed_lines, period_start)
    lines = []
    if offer.fixed_fee > 0 and "fee" not in billed:
        fee = _served_share(offer.fixed_fee, subscription, period_start, period_end, upto)
        if round_money(fee, offer.currency) > 0:
            lines.append(
                InvoiceLineDraft(
                    description=f"{offer.name} ({offer.billing_interval}ly fee)",
                    kind="fixed_fee",
                    unit_price=fee,
                    amount=fee,
                    period_start=period_start,
                    period_end=period_end,
                )
            )
    renewed = [
        p
        for p in purchases
        if p.purchased_at < period_start and (p.canceled_at is None or p.canceled_at > period_start)
    ]
    for purchase in sorted(renewed, key=lambda p: p.pk):
        if f"addon:{purchase.pk}" in billed:
            continue
        end = upto if purchase.canceled_at is None else min(upto, purchase.canceled_at)
        full = purchase.addon.price * purchase.quantity
        amount = _served_share(full, subscription, period_start, period_end, end)
        if round_money(amount, offer.currency) > 0:
            lines.append(
                InvoiceLineDraft(
                    description=f"{purchase.addon.name} × {purchase.quantity}",
                    kind="addon",
                    service=purchase.addon.service.code,
                    quantity=Decimal(purchase.quantity),
                    unit_price=purchase.addon.price,
                    amount=amount,
                    period_start=period_start,
                    period_end=period_end,
                    metadata={"purchase": purchase.pk},
                )
            )
    return lines


def _served_share(
    amount: Decimal, subscription: Subscription, start: datetime, end: datetime, upto: datetime
) -> Decimal:
    """``amount`` x the share of the period ``[start, end)`` served from ``billable_from`` to
    ``upto`` (a trial at the start, a cancel before the end: exact proration, R-L6's rule)."""
    offer = subscription.offer
    billable_from = max(start, subscription.trial_end or start)
    if upto <= billable_from:
        return ZERO
    if billable_from == start and upto >= end:
        return amount

    def left_after(at: datetime) -> Decimal:
        return prorate(
            amount,
            period_start=start,
            period_end=end,
            at=at,
            interval=offer.billing_interval,
            tz=offer.timezone,
        )

    return left_after(billable_from) - left_after(min(upto, end))


def unbilled_lines(
    *,
    subscription: Subscription,
    usage_until: datetime,
    fee_until: datetime,
    offers: OfferData | None = None,
) -> list[InvoiceLineDraft]:
    """What an invoice of the current period would bill now that earlier ones of it did not
    (R-T7).

    * the offer's fixed fee and the add-ons' renewals for ``[period_start, fee_until)``, once
      per period, nothing for the part in a trial;
    * per metered service, the price of the period's usage up to ``usage_until``, rounded
      once, minus what earlier invoices of the period billed, so round(total) is what the
      period bills in all, whatever the pricing model (graduated, volume, package: R-T8) -
      nothing twice,
      nothing lost. A level that went down since (seat-based, max, last) or a price that fell
      (volume tiers) gives a negative ``adjustment`` line.
    """
    currency = subscription.offer.currency
    period_start, period_end = subscription.current_period_start, subscription.current_period_end
    billed_lines = period_lines_billed(subscription=subscription, period_start=period_start)
    # All the add-on purchases, read once: renewals here, quota add-ons in the usage.
    purchases = list(subscription.addon_purchases.select_related("addon__service"))
    lines = _recurring_lines(
        subscription, period_start, period_end, fee_until, billed_lines, purchases
    )
    usage_from = max(period_start, subscription.trial_end or period_start)  # trials are free
    if usage_until <= usage_from:
        return lines
    for usage in subscription_billable_usage(
        subscription=subscription,
        period_start=usage_from,
        period_end=usage_until,
        offer_services=None if offers is None else offers.offer_services(subscription),
        purchases=purchases,
    ):
        billed = usage_billed(
            subscription=subscription,
            service_code=usage.service_code,
            period_start=period_start,
            period_end=period_end,
            lines=billed_lines,
        )
        quantity = usage.billable_quantity - billed.quantity
        # The period's price is rounded once; the line is what it leaves after the rounded
        # amounts already billed (rounding the difference instead would round negatives
        # away from zero and lose a cent).
        amount = round_money(usage.amount, currency) - billed.amount
        if quantity == 0 and round_money(amount, currency) == 0:
            continue
        if usage.unit_price is not None:
            unit_price = usage.unit_price
        else:
            unit_price = _DIVISION.divide(amount, quantity) if quantity else amount
        lines.append(
            InvoiceLineDraft(
                description=f"{usage.service_name}: {usage.quantity.normalize():f} used",
                kind="usage" if amount >= 0 else "adjustment",
                service=usage.service_code,
                quantity=quantity,
                unit_price=unit_price if amount >= 0 else -abs(unit_price),
                amount=amount,
                pricing_model=usage.pricing_model or "",
                period_start=period_start,
                period_end=usage_until,
                metadata={
                    "usage_quantity": str(quantity),
                    "measured_quantity": str(usage.quantity),
                },
            )
        )
    return lines


def lines_total(lines: list[InvoiceLineDraft], currency: str) -> Decimal:
    return sum((round_money(line.raw_amount(), currency) for line in lines), ZERO)


def _carry_negative_to_credit(
    subscription: Subscription, lines: list[InvoiceLineDraft], start: datetime, at: datetime
) -> list[InvoiceLineDraft]:
    """A period whose earlier invoices billed more than its whole usage is worth (a level that
    fell, a volume price that dropped) owes the customer: the invoice comes to zero and the
    rest becomes customer credit, so the period still bills exactly its usage (R-T7)."""
    currency = subscription.offer.currency
    owed = -lines_total(lines, currency)
    if owed <= 0:
        return lines
    customer_credit_grant(
        customer=subscription.customer,
        amount=owed,
        currency=currency,
        description="Billed earlier in the period beyond its usage",
        at=at,
        idempotency_key=f"period_end_credit:{subscription.pk}:{start.isoformat()}",
    )
    return [
        *lines,
        InvoiceLineDraft(
            description="Carried to the customer's credit balance",
            kind="adjustment",
            unit_price=owed,
            amount=owed,
        ),
    ]


def _has_pending_charges(subscription: Subscription, at: datetime) -> bool:
    return PendingCharge.objects.filter(
        subscription=subscription, invoiced_at__isnull=True, created_at__lte=at
    ).exists()


def invoice_unbilled(
    *,
    subscription: Subscription,
    reason: str,
    period_start: datetime,
    period_end: datetime,
    lines: list[InvoiceLineDraft],
    at: datetime,
    idempotency_key: str,
):
    """Issue the invoice of ``lines`` (+ pending charges); None when there is nothing to bill."""
    if not lines and not _has_pending_charges(subscription, at):
        return None
    return invoice_issue(
        subscription=subscription,
        customer=subscription.customer,
        reason=reason,
        period_start=period_start,
        period_end=period_end,
        lines=lines,
        idempotency_key=idempotency_key,
        at=at,
    )


# --------------------------------------------------------------------------- rolling


def subscription_locked(subscription_id: int) -> Subscription:
    return (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("offer", "customer", "clock")
        .get(pk=subscription_id)
    )


def effective_period_end(subscription: Subscription) -> datetime:
    """Where the current period ends: its end, or an earlier requested cancel."""
    end = subscription.current_period_end
    if subscription.cancel_at is not None:
        end = min(end, max(subscription.cancel_at, subscription.current_period_start))
    return end


def _close_current_period(
    subscription: Subscription, at: datetime, offers: OfferData
) -> dict[str, Any]:
    """Invoice the current period (which has ended by ``at``) and roll the subscription on."""
    start = subscription.current_period_start
    end = effective_period_end(subscription)
    canceled = end < subscription.current_period_end or subscription.cancel_at == end
    report: dict[str, Any] = {
        "subscription": subscription.pk,
        "period_start": start,
        "period_end": end,
        "invoice": None,
    }
    if (
        end > start
        and not PeriodClose.objects.filter(subscription=subscription, period_start=start).exists()
    ):
        lines = unbilled_lines(
            subscription=subscription, usage_until=end, fee_until=end, offers=offers
        )
        lines = _carry_negative_to_credit(subscription, lines, start, end)
        invoice = invoice_unbilled(
            subscription=subscription,
            reason=InvoiceReason.PERIOD_END,
            period_start=start,
            period_end=end,
            lines=lines,
            at=end,
            idempotency_key=f"period_end:{subscription.pk}:{start.isoformat()}",
        )
        PeriodClose.objects.create(
            subscription=subscription,
            period_start=start,
            period_end=end,
            reason=PeriodCloseReason.CANCELED if canceled else PeriodCloseReason.PERIOD_END,
            invoice=invoice,
            closed_at=at,
        )
        if invoice is not None:
            report.update(
                invoice=invoice.pk,
                number=invoice.number,
                total=money_str(invoice.total, invoice.currency),
            )
    if canceled:
        subscription.status = SubscriptionStatus.CANCELED
        subscription.ended_at = end
        report["ended"] = True
    else:
        offer = subscription.offer
        subscription.current_period_start, subscription.current_period_end = periods.period_at(
            subscription.billing_anchor, offer.billing_interval, end, offer.timezone
        )
    subscription.save(
        update_fields=["status", "ended_at", "current_period_start", "current_period_end"]
    )
    return report


def _trial_over(subscription: Subscription, at: datetime) -> bool:
    return (
        subscription.status == SubscriptionStatus.TRIALING
        and subscription.trial_end is not None
        and subscription.trial_end <= at
    )


def subscription_resets_record(
    *,
    subscription: Subscription,
    at: datetime,
    targets: list[QuotaTarget] | None = None,
    last: dict[int, datetime | None] | None = None,
) -> list[dict]:
    """Record the usage-based quota windows that began after the subscription's start, up to
    ``at`` and not yet recorded (R-Q1, R-L3); returns the new ones. ``targets``: the
    subscription's ``quota_targets``, when the caller already read them; ``last``: the latest
    recorded window start per offer service, read and kept up to date here across the calls
    of one transaction (a later call starts from there instead of reading it again)."""
    if targets is None:
        targets = quota_targets(subscription_ids=[subscription.pk])
    usage_based = [target for target in targets if target.kind == USAGE_BASED]
    if not usage_based:
        return []
    last = {} if last is None else last
    unknown = [t.offer_service_id for t in usage_based if t.offer_service_id not in last]
    if unknown:
        found = dict(
            QuotaReset.objects.filter(subscription_id=subscription.pk, offer_service_id__in=unknown)
            .values("offer_service_id")
            .annotate(latest=Max("window_start"))
            .values_list("offer_service_id", "latest")
        )
        last.update((os_id, found.get(os_id)) for os_id in unknown)
    due: list[QuotaReset] = []
    for target in usage_based:
        since = last[target.offer_service_id] or target.started_at
        end = at if target.ended_at is None else min(at, target.ended_at)
        # A window starting exactly at ``end`` is a reset at ``end``: include it.
        for window in target.windows_between(since, end + timedelta(microseconds=1)):
            if window.start <= since or window.start > end:
                continue
            due.append(
                QuotaReset(
                    subscription_id=target.subscription_id,
                    offer_service_id=target.offer_service_id,
                    window_start=window.start,
                    recorded_at=at,
                )
            )
            last[target.offer_service_id] = window.start
    if not due:
        return []
    try:
        # Past the latest recorded window, under the subscription's lock: new, one INSERT.
        with transaction.atomic():
            QuotaReset.objects.bulk_create(due)
        created = due
    except IntegrityError:
        # Recorded meanwhile by a caller without the lock: one by one, keep what is new.
        created = [
            reset
            for reset in due
            if QuotaReset.objects.get_or_create(
                subscription_id=reset.subscription_id,
                offer_service_id=reset.offer_service_id,
                window_start=reset.window_start,
                defaults={"recorded_at": at},
            )[1]
        ]
    return [
        {
            "subscription": reset.subscription_id,
            "offer_service": reset.offer_service_id,
            "reset_at": reset.window_start,
        }
        for reset in created
    ]


@dataclass
class RollReport:
    closes: list[dict[str, Any]]
    resets: list[dict[str, Any]]


def subscription_roll(
    *, subscription_id: int, at: datetime, offers: OfferData | None = None
) -> RollReport:
    """Do everything due for one subscription up to ``at``, oldest first: trial end, each
    ended period's invoice and roll, the end of a canceled subscription, quota resets.

    One transaction per period, under the subscription's row lock; safe to run twice. When
    the period just closed was the last one due, the resets up to ``at`` are recorded in its
    transaction (what the next turn would do, without locking and reading it all again).
    ``offers``: per-offer data shared by the closes of one run (default: read here).
    """
    offers = offers or OfferData()
    report = RollReport(closes=[], resets=[])
    while True:
        with transaction.atomic():
            subscription = subscription_locked(subscription_id)
            if subscription.status not in LIVE_STATUSES:
                break
            if _trial_over(subscription, at):
                subscription.status = SubscriptionStatus.ACTIVE
                subscription.save(update_fields=["status"])
            targets = offers.targets(subscription)
            last: dict[int, datetime | None] = {}
            if effective_period_end(subscription) > at:
                report.resets += subscription_resets_record(
                    subscription=subscription, at=at, targets=targets, last=last
                )
                break
            report.resets += subscription_resets_record(
                subscription=subscription,
                at=effective_period_end(subscription),
                targets=targets,
                last=last,
            )
            report.closes.append(_close_current_period(subscription, at, offers))
            if (
                subscription.status in LIVE_STATUSES
                and not _trial_over(subscription, at)
                and effective_period_end(subscription) > at
            ):
                # Rolled on (not ended: its targets are unchanged) and nothing more is due.
                report.resets += subscription_resets_record(
                    subscription=subscription, at=at, targets=targets, last=last
                )
                break
    return report


# --------------------------------------------------------------------------- what is due


def _live(clock: Clock | None):
    return Subscription.objects.filter(status__in=LIVE_STATUSES, clock=clock)


def subscriptions_due(*, clock: Clock | None, at: datetime) -> list[int]:
    """Live subscriptions (on ``clock``, or on real time) with a period, cancel or trial end
    due at or before ``at``."""
    due = (
        Q(current_period_end__lte=at)
        | Q(cancel_at__lte=at)
        | Q(status=SubscriptionStatus.TRIALING, trial_end__lte=at)
    )
    return list(_live(clock).filter(due).order_by("pk").values_list("pk", flat=True))


def periods_close_due(*, clock: Clock | None, at: datetime) -> RollReport:
    """Roll every subscription due by ``at`` (the beat's task and the clock's job), then record
    the quota resets of the clock's other subscriptions."""
    report = RollReport(closes=[], resets=[])
    due = subscriptions_due(clock=clock, at=at)
    offers = OfferData()
    for pk in due:
        one = subscription_roll(subscription_id=pk, at=at, offers=offers)
        report.closes += one.closes
        report.resets += one.resets
    if clock is not None:
        # Quota windows shorter than the period (a daily quota) reset between period ends.
        for subscription in _live(clock).exclude(pk__in=due).select_related("offer"):
            with transaction.atomic():
                report.resets += subscription_resets_record(
                    subscription=subscription, at=at, targets=offers.targets(subscription)
                )
    return report


def clock_next_due(clock: Clock, after: datetime) -> datetime | None:
    """The first instant after ``after`` when a subscription on ``clock`` has something due:
    a period end, a cancel, a trial end or a usage-based quota reset."""
    live = _live(clock)
    candidates = [
        live.filter(current_period_end__gt=after).aggregate(at=Min("current_period_end"))["at"],
        live.filter(cancel_at__gt=after).aggregate(at=Min("cancel_at"))["at"],
        live.filter(status=SubscriptionStatus.TRIALING, trial_end__gt=after).aggregate(
            at=Min("trial_end")
        )["at"],
    ]
    targets = quota_targets(subscription_ids=live.values_list("pk", flat=True))
    for target in targets:
        if target.kind == USAGE_BASED:
            candidates.append(target.window_at(after).end)
    upcoming = [at for at in candidates if at is not None and at > after]
    return min(upcoming, default=None)


def clock_job_run(clock: Clock, at: datetime) -> list[dict[str, Any]]:
    """The period machinery as a simulation clock's job (billing.clocks)."""
    report = periods_close_due(clock=clock, at=at)
    return [{"type": "period_close", **close} for close in report.closes] + [
        {"type": "quota_reset", **reset} for reset in report.resets
    ]
