"""Writes: the catalog (service groups, services, offers), subscriptions and add-ons."""

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from billing import periods
from billing.charges import pending_charge_add
from billing.models import Clock, Customer, Offer, Subscription, SubscriptionStatus
from billing.pricing import PricingError, parse_pricing, prorate, round_money
from billing.subscriptions import clock_now, subscription_create
from core.errors import Conflict, DomainError, InvalidInput
from metering.models import Meter

from .balances import balance_ensure, balances_rebuild, quota_targets
from .closing import subscription_roll
from .models import (
    AddOn,
    AddOnPurchase,
    OfferService,
    Service,
    ServiceGroup,
    ServiceKind,
    UsageBalance,
)
from .selectors import LIVE_STATUSES

MAX_METERS_PER_OFFER = 10  # R-M5
OFFER_FIELDS = (
    "name",
    "description",
    "currency",
    "fixed_fee",
    "billing_interval",
    "timezone",
    "trial_days",
    "level",
    "tax_rate",
    "is_active",
)


def _full_clean(obj) -> None:
    try:
        obj.full_clean()
    except ValidationError as exc:
        raise InvalidInput(
            next(iter(exc.messages), "Invalid."), code="validation_error", details=exc.message_dict
        ) from exc


def service_group_create(*, name: str, kind: str) -> ServiceGroup:
    if ServiceGroup.objects.filter(name=name).exists():
        raise Conflict(f"A service group named {name!r} exists.", code="service_group_exists")
    group = ServiceGroup(name=name, kind=kind)
    _full_clean(group)
    group.save()
    return group


def service_create(
    *, code: str, name: str, group: ServiceGroup, meter: Meter | None = None, description: str = ""
) -> Service:
    if Service.objects.filter(code=code).exists():
        raise Conflict(f"A service with code {code!r} exists.", code="service_exists")
    service = Service(code=code, name=name, group=group, meter=meter, description=description)
    _full_clean(service)
    service.save()
    return service


def _parse_included(kind: str, raw: Any, where: str) -> tuple[Decimal | None, bool]:
    """API `included`: a decimal string or null (unlimited) for quotas, true/false for on/off."""
    if kind == ServiceKind.ON_OFF:
        if raw is None:
            return None, True
        if not isinstance(raw, bool):
            raise InvalidInput(
                "An on/off service takes `included: true` or `false`.",
                code="invalid_included",
                details={"field": where},
            )
        return None, raw
    if raw is None:
        return None, True
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        raise InvalidInput(
            "A quota takes `included` as a decimal string, or null for unlimited.",
            code="invalid_included",
            details={"field": where},
        )
    try:
        value = Decimal(str(raw))
    except InvalidOperation as exc:
        raise InvalidInput(
            f"`included` {raw!r} is not a number.",
            code="invalid_included",
            details={"field": where},
        ) from exc
    if not value.is_finite() or value < 0:
        raise InvalidInput(
            "`included` must be a number >= 0.", code="invalid_included", details={"field": where}
        )
    return value, True


def _build_offer_services(offer: Offer, items: list[dict[str, Any]]) -> list[OfferService]:
    codes = [item["service"] for item in items]
    if len(codes) != len(set(codes)):
        raise InvalidInput("A service may appear once per offer.", code="duplicate_service")
    services = Service.objects.select_related("group").in_bulk(codes, field_name="code")
    built = []
    for index, item in enumerate(items):
        where = f"services[{index}]"
        service = services.get(item["service"])
        if service is None:
            raise InvalidInput(
                f"No service {item['service']!r}.",
                code="unknown_service",
                details={"field": f"{where}.service"},
            )
        included, enabled = _parse_included(service.kind, item.get("included"), f"{where}.included")
        pricing = item.get("pricing")
        if pricing:
            if service.kind == ServiceKind.ON_OFF:
                raise InvalidInput(
                    "An on/off service has no usage pricing.",
                    code="invalid_pricing",
                    details={"field": f"{where}.pricing"},
                )
            try:
                parse_pricing(pricing)
            except PricingError as exc:
                raise InvalidInput(
                    str(exc), code="invalid_pricing", details={"field": f"{where}.pricing"}
                ) from exc
        offer_service = OfferService(
            offer=offer,
            service=service,
            included=included,
            enabled=enabled,
            pricing=pricing or None,
            **{k: item[k] for k in ("reset_interval", "limit_behaviour") if item.get(k)},
        )
        built.append(offer_service)
    meters = {s.service.meter_id for s in built if s.service.meter_id}
    if len(meters) > MAX_METERS_PER_OFFER:
        raise DomainError(
            f"An offer may link at most {MAX_METERS_PER_OFFER} meters (R-M5); this one links "
            f"{len(meters)}.",
            code="too_many_meters",
            details={"limit": MAX_METERS_PER_OFFER, "meters": len(meters)},
        )
    return built


@transaction.atomic
def offer_create(
    *, code: str, name: str, currency: str, services: list[dict[str, Any]] | None = None, **fields
) -> Offer:
    if Offer.objects.filter(code=code).exists():
        raise Conflict(f"An offer with code {code!r} exists.", code="offer_exists")
    offer = Offer(code=code, name=name, currency=currency.upper())
    for field in OFFER_FIELDS:
        if field in fields:
            setattr(offer, field, fields[field])
    _full_clean(offer)
    offer.save()
    OfferService.objects.bulk_create(_build_offer_services(offer, services or []))
    return offer


def _window_layout(offer: Offer) -> tuple:
    """What decides an offer's quota windows: a change means its balances are re-keyed."""
    metered = offer.offer_services.exclude(service__group__kind=ServiceKind.ON_OFF)
    return (
        offer.timezone,
        offer.billing_interval,
        sorted(metered.values_list("service_id", "reset_interval")),
    )


@transaction.atomic
def offer_update(*, offer: Offer, services: list[dict[str, Any]] | None = None, **fields) -> Offer:
    layout = _window_layout(Offer.objects.get(pk=offer.pk))
    for field in OFFER_FIELDS:
        if field in fields:
            setattr(offer, field, fields[field])
    _full_clean(offer)
    offer.save()
    if services is not None:
        built = _build_offer_services(offer, services)
        offer.offer_services.exclude(service__in=[s.service for s in built]).delete()
        for item in built:
            OfferService.objects.update_or_create(
                offer=offer,
                service=item.service,
                defaults={
                    "included": item.included,
                    "enabled": item.enabled,
                    "pricing": item.pricing,
                    "reset_interval": item.reset_interval,
                    "limit_behaviour": item.limit_behaviour,
                },
            )
    if _window_layout(offer) != layout:
        # Windows moved (zone, billing interval, reset interval, a new metered service):
        # recompute the balances of every subscription to the offer.
        for subscription_id in offer.subscriptions.values_list("id", flat=True):
            balances_rebuild(subscription_id=subscription_id)
    return offer


# --------------------------------------------------------------------------- subscriptions


@transaction.atomic
def subscription_start(
    *,
    customer: Customer,
    offer: Offer,
    start: datetime | None = None,
    clock: Clock | None = None,
) -> Subscription:
    """Create a subscription (billing.subscriptions) and seed its usage balances.

    A subscription may start in the past, over events already received: its balances are
    computed from the meters' rollups at once, so usage is right from the first read.
    """
    if not offer.is_active:
        raise DomainError(f"Offer {offer.code!r} is not sold any more.", code="offer_inactive")
    subscription = subscription_create(customer=customer, offer=offer, start=start, clock=clock)
    balances_rebuild(subscription_id=subscription.id)
    return subscription


def _live(subscription: Subscription, at: datetime) -> bool:
    return (
        subscription.status in LIVE_STATUSES
        and subscription.started_at <= at
        and (subscription.ended_at is None or subscription.ended_at > at)
    )


@transaction.atomic
def subscription_cancel(*, subscription: Subscription, at: datetime | str) -> Subscription:
    """Ask for the subscription to end at ``at`` (an instant, ``"period_end"`` or ``"now"``).

    Sets ``cancel_at`` (and ``canceled_at``, when it was asked); the period machinery ends the
    subscription when its clock reaches ``cancel_at``, invoicing the last (partial) period.
    ``"now"`` does that at once. Asking again moves the date.
    """
    now = clock_now(subscription.clock)
    if subscription.ended_at is not None or subscription.status in (
        SubscriptionStatus.CANCELED,
        SubscriptionStatus.ENDED,
    ):
        raise Conflict("The subscription has already ended.", code="subscription_ended")
    if at == "now":
        cancel_at = now
    elif at == "period_end":
        cancel_at = periods.period_at(
            subscription.billing_anchor,
            subscription.offer.billing_interval,
            max(now, subscription.billing_anchor),
            subscription.offer.timezone,
        )[1]
    elif isinstance(at, datetime):
        if timezone.is_naive(at):
            raise InvalidInput("`at` needs a time zone offset.", code="naive_datetime")
        if at < now:
            raise InvalidInput(
                "`at` is in the past.",
                code="cancel_at_in_past",
                details={"now": now.isoformat()},
            )
        cancel_at = at
    else:
        raise InvalidInput(
            '`at` is "period_end" or an ISO 8601 timestamp.', code="invalid_cancel_at"
        )
    subscription.cancel_at = cancel_at
    subscription.canceled_at = now
    subscription.save(update_fields=["cancel_at", "canceled_at"])
    if cancel_at <= now:  # "now": the last period's invoice and the end happen at once
        subscription_roll(subscription_id=subscription.pk, at=now)
        subscription.refresh_from_db()
    return subscription


# --------------------------------------------------------------------------- add-ons

MAX_ADDON_UNITS = 10_000


@transaction.atomic
def addon_purchase(
    *,
    subscription: Subscription,
    addon_code: str,
    quantity: int,
    at: datetime | None = None,
    idempotency_key: str | None = None,
) -> AddOnPurchase:
    """Buy ``quantity`` units of an add-on: more quota at once, a prorated charge (R-L5, R-L6).

    * the service's quota rises immediately (included = the offer's + active add-ons), so a
      blocking quota that was exhausted gives access again (R-L2);
    * only offers with ``level >= addon.min_level`` that have the add-on's service as a
      limited quota may buy it; otherwise 422 ``addon_not_allowed`` (R-L5);
    * the price per billing interval x units is prorated to the time left in the current
      billing period (billing.pricing.prorate) and recorded with
      billing.charges.pending_charge_add for the next invoice (R-L6: $400/year with 6 of 12
      months left -> 200.00).

    ``at`` defaults to the subscription's now. With an ``idempotency_key`` a retried request
    returns the first purchase instead of buying twice. Returns the purchase; its ``charge``
    is the pending charge.
    """
    if idempotency_key:
        existing = (
            AddOnPurchase.objects.select_related("addon", "charge")
            .filter(idempotency_key=idempotency_key)
            .first()
        )
        if existing is not None:
            if existing.subscription_id != subscription.id:
                raise Conflict(
                    "This idempotency key was used for another subscription.",
                    code="idempotency_key_reused",
                )
            return existing
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidInput("`quantity` is a whole number of units.", code="invalid_quantity")
    if not 1 <= quantity <= MAX_ADDON_UNITS:
        raise InvalidInput(
            f"`quantity` is between 1 and {MAX_ADDON_UNITS}.", code="invalid_quantity"
        )
    addon = AddOn.objects.select_related("service__group").filter(code=addon_code).first()
    if addon is None or not addon.is_active:
        raise InvalidInput(f"No add-on {addon_code!r}.", code="unknown_addon")
    offer = subscription.offer
    at = at or clock_now(subscription.clock)
    if not _live(subscription, at):
        raise DomainError(
            "Add-ons can only be bought for a live subscription.", code="subscription_not_active"
        )
    if offer.level < addon.min_level:
        raise DomainError(
            f"{addon.name} is for plans of level {addon.min_level} and above; "
            f"{offer.name} is level {offer.level} (R-L5).",
            code="addon_not_allowed",
            details={"addon": addon.code, "min_level": addon.min_level, "level": offer.level},
        )
    quota = offer.offer_services.filter(service_id=addon.service_id).first()
    if quota is None or quota.included is None:
        reason = "service_not_on_offer" if quota is None else "unlimited"
        raise DomainError(
            f"{addon.name} adds {addon.service.name}, which {offer.name} "
            + ("does not include." if quota is None else "already has without limit."),
            code="addon_not_allowed",
            details={"addon": addon.code, "reason": reason},
        )
    period_start, period_end = periods.period_at(
        subscription.billing_anchor, offer.billing_interval, at, offer.timezone
    )
    units = Decimal(quantity)
    amount = prorate(
        addon.price * units,
        period_start=period_start,
        period_end=period_end,
        at=at,
        interval=offer.billing_interval,
        tz=offer.timezone,
    )
    purchase = AddOnPurchase.objects.create(
        subscription=subscription,
        addon=addon,
        quantity=quantity,
        purchased_at=at,
        idempotency_key=idempotency_key or None,
    )
    zone = ZoneInfo(offer.timezone)
    purchase.charge = pending_charge_add(
        subscription=subscription,
        description=(
            f"{addon.name} × {quantity}, prorated "
            f"{at.astimezone(zone):%Y-%m-%d} – {period_end.astimezone(zone):%Y-%m-%d}"
        ),
        unit_price=addon.price,
        quantity=units,
        amount=amount,
        at=at,
        idempotency_key=f"addon-purchase:{purchase.id}",
        service_code=addon.service.code,
        kind="addon",
    )
    purchase.save(update_fields=["charge"])
    # More quota gives back access an alert removed (R-L2: "until more quota is bought").
    access_restore(subscription=subscription, service_id=addon.service_id)
    return purchase


def addon_quote(*, subscription: Subscription, addon: AddOn, quantity: int) -> Decimal:
    """The prorated price ``addon_purchase`` would charge now (rounded), for a confirmation."""
    offer = subscription.offer
    at = clock_now(subscription.clock)
    period_start, period_end = periods.period_at(
        subscription.billing_anchor,
        offer.billing_interval,
        max(at, subscription.billing_anchor),
        offer.timezone,
    )
    amount = prorate(
        addon.price * Decimal(quantity),
        period_start=period_start,
        period_end=period_end,
        at=at,
        interval=offer.billing_interval,
        tz=offer.timezone,
    )
    return round_money(amount, offer.currency)


@transaction.atomic
def access_remove(
    *, subscription: Subscription, offer_service: OfferService, at: datetime
) -> datetime | None:
    """R-A2 "remove access": deny the service for the rest of its current quota window.

    Held on the window's balance row, which the entitlement check reads anyway, so it costs
    the hot path nothing; a reset starts a new row (access is back), and buying an add-on
    for the service clears it. Returns when it ends (None: a seat-based level never resets).
    Idempotent: the first removal's instant is kept.
    """
    target = next(
        t
        for t in quota_targets(subscription_ids=[subscription.id])
        if t.offer_service_id == offer_service.id
    )
    window = target.window_at(at)
    balance_ensure(target=target, window=window, now=at)
    UsageBalance.objects.filter(
        subscription=subscription,
        offer_service=offer_service,
        window_start=window.start,
        access_removed_at__isnull=True,
    ).update(access_removed_at=at)
    return window.end


def access_restore(
    *,
    subscription: Subscription,
    service_id: int | None = None,
    offer_service_id: int | None = None,
) -> int:
    """Give back access removed by an alert (an add-on bought, or an operator's decision)."""
    rows = UsageBalance.objects.filter(subscription=subscription, access_removed_at__isnull=False)
    if service_id is not None:
        rows = rows.filter(offer_service__service_id=service_id)
    if offer_service_id is not None:
        rows = rows.filter(offer_service_id=offer_service_id)
    return rows.update(access_removed_at=None)
