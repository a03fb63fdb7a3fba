"""Reads: the catalog, subscriptions, add-ons, usage and entitlements."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NoReturn

from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet, Sum
from django.utils import timezone

from billing import periods
from billing.models import Customer, Offer, Subscription, SubscriptionStatus
from billing.pricing import PerUnit, overage_quantity, parse_pricing, price_usage, round_money
from billing.subscriptions import clock_now
from core.errors import NotFound
from metering import selectors as metering_selectors
from metering.aggregation import Partial

from .balances import EMPTY, balance_partial
from .models import (
    AddOn,
    AddOnPurchase,
    LimitBehaviour,
    OfferService,
    Service,
    ServiceGroup,
    ServiceKind,
    UsageBalance,
)
from .windows import SEAT_BASED, QuotaTarget, Window

ZERO = Decimal(0)


def offer_list() -> QuerySet[Offer]:
    return Offer.objects.prefetch_related(
        Prefetch("offer_services", queryset=OfferService.objects.select_related("service__group"))
    ).order_by("level", "code")


def offer_get(*, code: str) -> Offer:
    offer = offer_list().filter(code=code).first()
    if offer is None:
        raise NotFound(f"No offer {code!r}.", code="unknown_offer")
    return offer


def service_list() -> QuerySet[Service]:
    return Service.objects.select_related("group", "meter").order_by("code")


def service_group_list() -> QuerySet[ServiceGroup]:
    return ServiceGroup.objects.order_by("name")


# --------------------------------------------------------------------------- subscriptions

LIVE_STATUSES = (
    SubscriptionStatus.TRIALING,
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.PAST_DUE,
)


def subscription_list() -> QuerySet[Subscription]:
    return Subscription.objects.select_related("customer", "offer", "clock").order_by("-id")


def subscription_get(*, subscription_id: int) -> Subscription:
    subscription = subscription_list().filter(id=subscription_id).first()
    if subscription is None:
        raise NotFound(f"No subscription {subscription_id}.", code="unknown_subscription")
    return subscription


def subscription_offer_services(subscription: Subscription) -> list[OfferService]:
    return list(
        OfferService.objects.filter(offer_id=subscription.offer_id)
        .select_related("service__group", "service__meter")
        .order_by("service__code")
    )


# --------------------------------------------------------------------------- add-ons


def addon_list() -> QuerySet[AddOn]:
    return AddOn.objects.select_related("service").order_by("min_level", "code")


def addons_for_offer(offer: Offer, *, addons: Iterable[AddOn] | None = None) -> list[AddOn]:
    """The active add-ons an offer's subscribers may buy (R-L5).

    Allowed when the offer's level is at least the add-on's ``min_level`` and the offer has
    the add-on's service as a limited quota (more of an unlimited quota means nothing).
    ``addons`` lets a caller listing many offers pass the add-ons it already loaded.
    """
    limited = {
        os.service_id
        for os in offer.offer_services.all()
        if os.included is not None and os.service.kind != ServiceKind.ON_OFF
    }
    pool = addon_list().filter(is_active=True) if addons is None else addons
    return [
        addon
        for addon in pool
        if addon.is_active and addon.min_level <= offer.level and addon.service_id in limited
    ]


def _addon_extra(purchases: Iterable[AddOnPurchase], service_id: int, at: datetime) -> Decimal:
    """Quota added to a service by the purchases active at ``at``."""
    return sum(
        (
            p.addon.quantity * p.quantity
            for p in purchases
            if p.addon.service_id == service_id
            and p.purchased_at <= at
            and (p.canceled_at is None or p.canceled_at > at)
        ),
        ZERO,
    )


def subscription_active_addons(
    *, subscription: Subscription, at: datetime | None = None
) -> list[AddOnPurchase]:
    """Add-on purchases in force at ``at`` (default: the subscription's now), for invoicing
    their recurring fee (``addon.price`` x ``quantity`` per billing interval)."""
    at = at or clock_now(subscription.clock)
    return [
        p
        for p in subscription.addon_purchases.select_related("addon__service")
        if p.purchased_at <= at and (p.canceled_at is None or p.canceled_at > at)
    ]


# --------------------------------------------------------------------------- usage


@dataclass(frozen=True, slots=True)
class ServiceUsage:
    """One service of a subscription at an instant (R-Q3, R-L7).

    ``included``/``used``/``remaining``/``overage_quantity``/``resets_at`` describe the
    current quota window (``included`` counts active add-ons; ``None`` = unlimited; on/off
    services have no quantities). ``overage_amount`` is what the current billing period has
    accrued so far (summed over the reset windows inside the period; unrounded); when the
    window is the billing period (R-Q2) it is the price of ``overage_quantity``.
    """

    service_code: str
    service_name: str
    kind: str
    unit: str
    enabled: bool
    included: Decimal | None
    addon_quantity: Decimal
    used: Decimal | None
    remaining: Decimal | None
    overage_quantity: Decimal
    overage_amount: Decimal
    window_start: datetime | None
    resets_at: datetime | None
    reset_interval: str
    limit_behaviour: str
    has_access: bool

    @property
    def is_quota(self) -> bool:
        return self.kind != ServiceKind.ON_OFF

    @property
    def is_unlimited(self) -> bool:
        return self.is_quota and self.included is None

    @property
    def percent_used(self) -> int | None:
        """0-100 for a progress bar; None for unlimited and on/off."""
        if self.included is None or self.used is None:
            return None
        if self.included <= 0:
            return 100 if self.used > 0 else 0
        return min(100, int(self.used * 100 / self.included))


@dataclass(frozen=True, slots=True)
class SubscriptionUsage:
    subscription_id: int
    at: datetime
    period_start: datetime
    period_end: datetime
    timezone: str
    currency: str
    fixed_fee: Decimal
    pending_charges: Decimal
    services: list[ServiceUsage]
    amount_due_so_far: Decimal  # rounded to the currency

    def service(self, code: str) -> ServiceUsage:
        for service in self.services:
            if service.service_code == code:
                return service
        raise KeyError(code)


@dataclass(frozen=True, slots=True)
class BillableUsage:
    """What one metered service bills for a billing period (see subscription_billable_usage)."""

    service_code: str
    service_name: str
    quantity: Decimal
    billable_quantity: Decimal
    amount: Decimal  # unrounded
    unit_price: Decimal | None
    pricing_model: str | None


def quota_target(subscription: Subscription, offer_service: OfferService) -> QuotaTarget:
    return QuotaTarget(
        subscription_id=subscription.id,
        offer_service_id=offer_service.id,
        customer_id=subscription.customer_id,
        meter_id=offer_service.service.meter_id,
        kind=offer_service.service.kind,
        reset_interval=offer_service.reset_interval,
        timezone=subscription.offer.timezone,
        billing_interval=subscription.offer.billing_interval,
        billing_anchor=subscription.billing_anchor,
        started_at=subscription.started_at,
        ended_at=subscription.ended_at,
    )


def _value(partial: Partial, aggregation: str) -> Decimal:
    return partial.value(aggregation) or ZERO


def _has_access(
    limit_behaviour: str, used: Decimal, included: Decimal | None, *, removed: bool = False
) -> bool:
    """R-L2: a blocking quota denies access once used reaches it; others only report.
    ``removed``: an alert's "remove access" action holds for the rest of the window (R-A2)."""
    if removed:
        return False
    if included is None or limit_behaviour != LimitBehaviour.BLOCK:
        return True
    return used < included


class _PeriodUsage:
    """The usage of one metered offer service over a billing period ``[start, end)``.

    A window wholly inside the period is read from its balance row. A window straddling a
    period boundary (weekly quota, monthly invoice) bills only its increment inside the
    period: price(usage up to the period's end) - price(usage before its start); those parts
    are read exactly from the meter's rollups, the only reads that are not a balance row.
    """

    def __init__(
        self,
        *,
        subscription: Subscription,
        offer_service: OfferService,
        balances: dict[datetime, UsageBalance],
        purchases: list[AddOnPurchase],
        start: datetime,
        end: datetime,
        at: datetime,
    ):
        self.target = quota_target(subscription, offer_service)
        self.offer_service = offer_service
        self.meter = offer_service.service.meter
        self.aggregation = self.meter.aggregation
        self.pricing = parse_pricing(offer_service.pricing) if offer_service.pricing else None
        self.balances = balances
        self.purchases = purchases
        self.start, self.end, self.at = start, end, at

    def included_at(self, at: datetime) -> Decimal | None:
        base = self.offer_service.included
        if base is None:
            return None
        return base + _addon_extra(self.purchases, self.offer_service.service_id, at)

    def balance(self, window: Window) -> Partial:
        return balance_partial(self.balances.get(window.start))

    def access_removed(self, window: Window) -> bool:
        row = self.balances.get(window.start)
        return row is not None and row.access_removed_at is not None

    def exact(self, start: datetime, end: datetime) -> Partial:
        if start >= end:
            return EMPTY
        return metering_selectors.meter_partial(
            meter=self.meter, customer_id=self.target.customer_id, start=start, end=end
        )

    def totals(self, *, with_quantity: bool) -> tuple[Decimal, Decimal, Decimal]:
        """(quantity, billable quantity, amount) accrued in the period up to ``at``."""
        until = min(self.end, self.at)
        if self.target.kind == SEAT_BASED:
            window = self.target.window_at(self.start)
            lo, hi = self.target.counted(window)
            if until >= self.end and (hi is None or hi > self.end):
                level_partial = self.exact(lo, self.end)  # the level when the period closed
            else:
                level_partial = self.balance(window)
            level = _value(level_partial, self.aggregation)
            included = self.included_at(until)
            return level, *self._price(level, included)
        quantity = billable = amount = ZERO
        for window in self.target.windows_between(self.start, until):
            lo, hi = self.target.counted(window)
            included = self.included_at(min(hi, until) if hi else until)
            if self.start <= lo and hi is not None and hi <= self.end:
                before, upto = EMPTY, self.balance(window)
            else:
                before = self.exact(lo, self.start) if lo < self.start else EMPTY
                upto = (
                    self.balance(window)
                    if hi is not None and hi <= self.end
                    else self.exact(lo, self.end)
                )
            q_upto, a_upto = self._price(_value(upto, self.aggregation), included)
            q_before, a_before = self._price(_value(before, self.aggregation), included)
            billable += q_upto - q_before
            amount += a_upto - a_before
            if with_quantity:
                if before is EMPTY:
                    inside = upto
                elif self.aggregation in ("count", "sum"):
                    quantity += _value(upto, self.aggregation) - _value(before, self.aggregation)
                    continue
                else:
                    inside = self.exact(max(lo, self.start), min(hi or self.end, self.end))
                quantity += _value(inside, self.aggregation)
        return quantity, billable, amount

    def _price(self, used: Decimal, included: Decimal | None) -> tuple[Decimal, Decimal]:
        quantity = overage_quantity(used, included)
        if self.pricing is None or quantity == 0:
            return quantity, ZERO
        return quantity, price_usage(self.pricing, used, included)


def _billing_period(subscription: Subscription, at: datetime) -> tuple[datetime, datetime]:
    offer = subscription.offer
    if subscription.current_period_start <= at < subscription.current_period_end:
        return subscription.current_period_start, subscription.current_period_end
    return periods.period_at(
        subscription.billing_anchor,
        offer.billing_interval,
        max(at, subscription.billing_anchor),
        offer.timezone,
    )


def _period_balances(
    subscription: Subscription, start: datetime, end: datetime
) -> dict[int, dict[datetime, UsageBalance]]:
    rows = UsageBalance.objects.filter(subscription=subscription, window_start__lt=end).filter(
        Q(window_end__isnull=True) | Q(window_end__gt=start)
    )
    by_service: dict[int, dict[datetime, UsageBalance]] = {}
    for row in rows:
        by_service.setdefault(row.offer_service_id, {})[row.window_start] = row
    return by_service


def subscription_usage(
    *, subscription: Subscription, at: datetime | None = None
) -> SubscriptionUsage:
    """A subscription's quotas and what it owes so far, exact after every event (R-Q3, R-L7).

    ``at`` defaults to the subscription's now (its simulation clock's, R-A5). Quantities come
    from the cached balances (see ``quotas.balances``), never from raw events; per service:
    included (with add-ons; None = unlimited), used, remaining, overage so far in the billing
    period and its unrounded amount, the next reset (None for seat-based and on/off) and
    ``has_access`` (on/off: enabled; block: used < included, R-L2; otherwise true).
    ``amount_due_so_far`` = fixed fee (none during a trial) + overage so far + pending
    charges not yet invoiced, rounded once to the currency.
    """
    at = at or clock_now(subscription.clock)
    offer = subscription.offer
    period_start, period_end = _billing_period(subscription, at)
    offer_services = subscription_offer_services(subscription)
    balances = _period_balances(subscription, period_start, period_end)
    purchases = list(subscription.addon_purchases.select_related("addon"))
    services = []
    for offer_service in offer_services:
        service = offer_service.service
        if service.kind == ServiceKind.ON_OFF:
            services.append(
                ServiceUsage(
                    service_code=service.code,
                    service_name=service.name,
                    kind=service.kind,
                    unit="",
                    enabled=offer_service.enabled,
                    included=None,
                    addon_quantity=ZERO,
                    used=None,
                    remaining=None,
                    overage_quantity=ZERO,
                    overage_amount=ZERO,
                    window_start=None,
                    resets_at=None,
                    reset_interval=offer_service.reset_interval,
                    limit_behaviour=offer_service.limit_behaviour,
                    has_access=offer_service.enabled,
                )
            )
            continue
        usage = _PeriodUsage(
            subscription=subscription,
            offer_service=offer_service,
            balances=balances.get(offer_service.id, {}),
            purchases=purchases,
            start=period_start,
            end=period_end,
            at=at,
        )
        window = usage.target.window_at(at)
        used = _value(usage.balance(window), usage.aggregation)
        included = usage.included_at(at)
        amount = usage.totals(with_quantity=False)[2] if usage.pricing else ZERO
        services.append(
            ServiceUsage(
                service_code=service.code,
                service_name=service.name,
                kind=service.kind,
                unit=service.meter.unit,
                enabled=True,
                included=included,
                addon_quantity=ZERO if included is None else included - offer_service.included,
                used=used,
                remaining=None if included is None else max(ZERO, included - used),
                overage_quantity=overage_quantity(used, included),
                overage_amount=amount,
                window_start=window.start if window.end is not None else None,
                resets_at=window.end,
                reset_interval=offer_service.reset_interval,
                limit_behaviour=offer_service.limit_behaviour,
                has_access=_has_access(
                    offer_service.limit_behaviour,
                    used,
                    included,
                    removed=usage.access_removed(window),
                ),
            )
        )
    pending = (
        subscription.pending_charges.filter(invoiced_at__isnull=True).aggregate(
            total=Sum("amount")
        )["total"]
        or ZERO
    )
    in_trial = subscription.trial_end is not None and at < subscription.trial_end
    fixed_fee = ZERO if in_trial else offer.fixed_fee
    due = fixed_fee + pending + sum((s.overage_amount for s in services), ZERO)
    return SubscriptionUsage(
        subscription_id=subscription.id,
        at=at,
        period_start=period_start,
        period_end=period_end,
        timezone=offer.timezone,
        currency=offer.currency,
        fixed_fee=fixed_fee,
        pending_charges=pending,
        services=services,
        amount_due_so_far=round_money(due, offer.currency),
    )


def subscription_billable_usage(
    *,
    subscription: Subscription,
    period_start: datetime,
    period_end: datetime,
    offer_services: list[OfferService] | None = None,
    purchases: list[AddOnPurchase] | None = None,
) -> list[BillableUsage]:
    """What each metered service of ``subscription`` bills for ``[period_start, period_end)``.

    For the invoicing code in billing (which may read quotas selectors). One
    ``BillableUsage`` per seat- or usage-based service of the offer, in service-code order;
    on/off services yield nothing (the offer's fixed fee covers them).

    * ``quantity``: the usage measured in the period - usage-based: the meter's value over
      the period, window by window (count/sum add up across windows); seat-based (R-Q4): the
      level at the period's end.
    * ``billable_quantity``: the quantity beyond the included one (with the add-ons in force at
      each window's end); ``amount``: its price (unrounded; round once with
      ``billing.pricing.round_money`` when it becomes an invoice line). A usage-based quota
      whose reset window is shorter than the period (a daily quota, a monthly invoice) is
      priced window by window and summed: 30 days each 10 over a 100-a-day quota bill 300
      units, not max(0, 3,300 - 100). A window straddling the period's start or end
      contributes only its increment inside the period.
    * ``unit_price``: the per-unit price for ``per_unit`` pricing, else None;
      ``pricing_model``: ``per_unit|package|graduated|volume``, or None without pricing (the
      amount is then 0: block and notify quotas only report).

    ``offer_services``: the offer's ``subscription_offer_services``, when the caller already
    read them (the period close reads them once per offer); ``purchases``: all the
    subscription's add-on purchases with their add-on, when already read.
    """
    if offer_services is None:
        offer_services = subscription_offer_services(subscription)
    balances = _period_balances(subscription, period_start, period_end)
    if purchases is None:
        purchases = list(subscription.addon_purchases.select_related("addon"))
    result = []
    for offer_service in offer_services:
        service = offer_service.service
        if service.kind == ServiceKind.ON_OFF:
            continue
        usage = _PeriodUsage(
            subscription=subscription,
            offer_service=offer_service,
            balances=balances.get(offer_service.id, {}),
            purchases=purchases,
            start=period_start,
            end=period_end,
            at=period_end,
        )
        quantity, billable, amount = usage.totals(with_quantity=True)
        pricing = usage.pricing
        result.append(
            BillableUsage(
                service_code=service.code,
                service_name=service.name,
                quantity=quantity,
                billable_quantity=billable,
                amount=amount,
                unit_price=pricing.unit_price if isinstance(pricing, PerUnit) else None,
                pricing_model=(offer_service.pricing or {}).get("model"),
            )
        )
    return result


# --------------------------------------------------------------------------- entitlements


@dataclass(frozen=True, slots=True)
class Entitlement:
    subscription_id: int
    service_code: str
    kind: str
    has_access: bool
    used: Decimal | None
    limit: Decimal | None
    remaining: Decimal | None
    resets_at: datetime | None


MAX_LIVE_CANDIDATES = 20
_ENTITLEMENT_FIELDS = (
    "id",
    "offer_id",
    "reset_interval",
    "limit_behaviour",
    "included",
    "enabled",
    "service_id",
    "service__meter_id",
    "service__meter__aggregation",
    "service__group__kind",
    "offer__timezone",
    "offer__billing_interval",
)


def entitlement_check(*, customer_external_id: str, service_code: str) -> Entitlement:
    """May this customer use this service now? The hot path (API.md).

    A handful of small indexed queries, each cheap to plan (a single wide join spends more
    time in PostgreSQL's planner than in execution):

    1. the customer's live subscriptions (trialing/active/past_due) by ``external_id``, with
       their clocks' now; kept: started and not ended at that now;
    2. the offer service for ``service_code`` on those offers (the most recently started
       subscription wins), with its meter's aggregation and whether the service has add-ons;
    3. only if it has: the quantity of the subscription's active add-on purchases;
    4. the balance row of the current window (unique index).

    No aggregation over events or rollups. Errors (404): ``unknown_customer``,
    ``unknown_service``, ``no_subscription`` (the customer exists but no live subscription
    includes the service).
    """
    real_now = timezone.now()
    subscriptions = [
        s
        for s in Subscription.objects.filter(
            customer__external_id=customer_external_id, status__in=LIVE_STATUSES
        )
        .values(
            "id",
            "offer_id",
            "customer_id",
            "billing_anchor",
            "started_at",
            "ended_at",
            clock_now=F("clock__now"),
        )
        .order_by("-started_at", "-id")[:MAX_LIVE_CANDIDATES]
        if s["started_at"] <= (s["clock_now"] or real_now)
        and (s["ended_at"] is None or s["ended_at"] > (s["clock_now"] or real_now))
    ]
    if not subscriptions:
        _entitlement_not_found(customer_external_id, service_code)
    quotas = {
        row["offer_id"]: row
        for row in OfferService.objects.filter(
            offer_id__in={s["offer_id"] for s in subscriptions}, service__code=service_code
        ).values(
            *_ENTITLEMENT_FIELDS,
            has_addons=Exists(AddOn.objects.filter(service_id=OuterRef("service_id"))),
        )
    }
    subscription = next((s for s in subscriptions if s["offer_id"] in quotas), None)
    if subscription is None:
        _entitlement_not_found(customer_external_id, service_code)
    row = quotas[subscription["offer_id"]]
    kind = row["service__group__kind"]
    if kind == ServiceKind.ON_OFF:
        return Entitlement(
            subscription_id=subscription["id"],
            service_code=service_code,
            kind=kind,
            has_access=row["enabled"],
            used=None,
            limit=None,
            remaining=None,
            resets_at=None,
        )
    at = subscription["clock_now"] or real_now
    target = QuotaTarget(
        subscription_id=subscription["id"],
        offer_service_id=row["id"],
        customer_id=subscription["customer_id"],
        meter_id=row["service__meter_id"],
        kind=kind,
        reset_interval=row["reset_interval"],
        timezone=row["offer__timezone"],
        billing_interval=row["offer__billing_interval"],
        billing_anchor=subscription["billing_anchor"],
        started_at=subscription["started_at"],
        ended_at=subscription["ended_at"],
    )
    window = target.window_at(at)
    balance = (
        UsageBalance.objects.filter(
            subscription_id=target.subscription_id,
            offer_service_id=target.offer_service_id,
            window_start=window.start,
        )
        .only("count", "total", "maximum", "last_at", "last_key", "last_value", "access_removed_at")
        .first()
    )
    used = _value(balance_partial(balance), row["service__meter__aggregation"])
    removed = balance is not None and balance.access_removed_at is not None
    limit = row["included"]
    if limit is not None and row["has_addons"]:
        purchases = AddOnPurchase.objects.filter(
            subscription_id=target.subscription_id, addon__service_id=row["service_id"]
        ).select_related("addon")
        limit += _addon_extra(purchases, row["service_id"], at)
    return Entitlement(
        subscription_id=target.subscription_id,
        service_code=service_code,
        kind=kind,
        has_access=_has_access(row["limit_behaviour"], used, limit, removed=removed),
        used=used,
        limit=limit,
        remaining=None if limit is None else max(ZERO, limit - used),
        resets_at=window.end,
    )


def _entitlement_not_found(customer_external_id: str, service_code: str) -> NoReturn:
    if not Customer.objects.filter(external_id=customer_external_id).exists():
        raise NotFound(f"No customer {customer_external_id!r}.", code="unknown_customer")
    if not Service.objects.filter(code=service_code).exists():
        raise NotFound(f"No service {service_code!r}.", code="unknown_service")
    raise NotFound(
        f"Customer {customer_external_id!r} has no live subscription including {service_code!r}.",
        code="no_subscription",
    )
