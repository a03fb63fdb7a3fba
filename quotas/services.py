"""Writes for the catalog: service groups, services and offers with their services."""

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from billing.models import Offer
from billing.pricing import PricingError, parse_pricing
from core.errors import Conflict, DomainError, InvalidInput
from metering.models import Meter

from .models import OfferService, Service, ServiceGroup, ServiceKind

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


@transaction.atomic
def offer_update(*, offer: Offer, services: list[dict[str, Any]] | None = None, **fields) -> Offer:
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
    return offer
