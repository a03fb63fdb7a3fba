"""Pricing models, money rounding and proration (DESIGN.md §3-4, R-Q2, R-M6, R-T8, R-L6).

Pure logic: standard library only (no Django).

Money rules
-----------
* Amounts are ``Decimal``; unit prices keep full precision. Every function here returns an
  **unrounded** ``Decimal``. An amount is rounded **once**, by the caller, with
  ``round_money`` when it becomes an invoice line.
* Arithmetic runs in a private decimal context with 60 significant digits, so products of
  API-sized numbers are exact; only genuine divisions (proration by 1/3 of a period) round.

Pricing objects (API.md "Catalog")::

    {"model": "per_unit", "unit_price": "0.50"}
    {"model": "package", "package_size": "10", "package_price": "5.00"}
    {"model": "graduated" | "volume",
     "tiers": [{"up_to": "100", "unit_price": "0.10", "flat_fee": "0"},
               {"up_to": null, "unit_price": "0.05"}]}

The free quantity is not part of the pricing object: it is the offer service's ``included``
and is passed to ``price_usage`` separately (``None`` = unlimited, nothing is billed).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import (
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from billing import periods

__all__ = [
    "MINOR_UNITS",
    "Graduated",
    "Package",
    "PerUnit",
    "Pricing",
    "PricingError",
    "Tier",
    "Volume",
    "minor_units",
    "overage_quantity",
    "parse_pricing",
    "price_usage",
    "pricing_to_json",
    "prorate",
    "proration_fraction",
    "round_money",
    "volume_tier",
]

ZERO = Decimal(0)
_MICROSECOND = timedelta(microseconds=1)

# 60 significant digits: products of two parsed values (each at most 36 digits, see
# _MAX_* below) would need 72 in the worst case, but realistic prices/quantities are far
# shorter; every exact case in the rule book fits with room to spare.
_CONTEXT = Context(
    prec=60,
    rounding=ROUND_HALF_EVEN,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
# Bounds on values accepted from the outside world: below 10**18 and at most 18 decimal
# places. Keeps every quantize/ceil well defined and refuses "1e999999999" style input.
_MAX_ADJUSTED = 17
_MIN_EXPONENT = -18
_DECIMAL_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")


class PricingError(ValueError):
    """A pricing object or amount that breaks a rule.

    ``code`` is machine readable (``"invalid_pricing"``), ``message`` a human sentence and
    ``field`` the offending path inside the pricing object (``"tiers[1].up_to"``), or ``None``.
    ``str(error)`` is the message followed by the field.
    """

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid_pricing"):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.message} (field: {self.field})" if self.field else self.message


# --------------------------------------------------------------------------- money

#: ISO 4217 minor units (digits after the decimal point) for the currencies that are not 2.
#: Anything else that is a valid three-letter code is treated as 2.
MINOR_UNITS: dict[str, int] = {
    # two decimals, listed for clarity
    "TRY": 2,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CHF": 2,
    "CAD": 2,
    "AUD": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "PLN": 2,
    "CZK": 2,
    "HUF": 2,
    "INR": 2,
    "CNY": 2,
    "BRL": 2,
    "MXN": 2,
    # no minor unit
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    # three decimals
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
    # four decimals (units of account)
    "CLF": 4,
    "UYW": 4,
}

_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


def minor_units(currency: str) -> int:
    """Digits after the decimal point for ``currency`` (ISO 4217, in capitals).

    Unknown but well-formed codes get 2; anything else raises ``ValueError``.
    """
    if not isinstance(currency, str) or not _CURRENCY_RE.match(currency):
        raise ValueError(f"{currency!r} is not an ISO 4217 currency code (e.g. USD).")
    return MINOR_UNITS.get(currency, 2)


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round ``amount`` to the minor unit of ``currency`` (``Decimal("0.01")`` for USD).

    ROUND_HALF_UP (half away from zero) rather than Python's default banker's rounding:
    it is the commercial rounding customers, accountants and tax authorities (TR VUK, EU
    invoicing) expect to reproduce by hand - 0.125 USD is 0.13, not 0.12 - and it is
    symmetric for credits (-0.125 -> -0.13). Apply it once per invoice line, never to
    intermediate results.
    """
    value = _finite(amount, "amount")
    exponent = Decimal(1).scaleb(-minor_units(currency))
    with localcontext(_CONTEXT):
        rounded = value.quantize(exponent, rounding=ROUND_HALF_UP)
    return rounded + ZERO if rounded == 0 else rounded  # no "-0.00"


def _finite(value: Any, name: str) -> Decimal:
    """Coerce a computation input to a finite Decimal (ValueError otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str, float)):
        raise ValueError(f"{name} must be a decimal number, got {type(value).__name__}.")
    try:
        result = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"{name} must be a decimal number, got {value!r}.") from exc
    if not result.is_finite():
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    return result


# --------------------------------------------------------------------------- pricing models


def _price_field(value: Any, field_name: str, *, positive: bool = False) -> Decimal:
    """Parse a price/quantity from JSON: decimal string, int, float (via str) or Decimal."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str, float)):
        raise PricingError(
            f'{field_name} must be a decimal number as a string, e.g. "0.50".', field=field_name
        )
    if isinstance(value, str) and not _DECIMAL_RE.match(value):
        raise PricingError(f"{field_name} is not a decimal number: {value!r}.", field=field_name)
    try:
        result = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - guarded by the regex
        raise PricingError(f"{field_name} is not a decimal number.", field=field_name) from exc
    if not result.is_finite():
        raise PricingError(f"{field_name} must be finite (no NaN or Infinity).", field=field_name)
    if result < 0:
        raise PricingError(f"{field_name} must not be negative.", field=field_name)
    if positive and result == 0:
        raise PricingError(f"{field_name} must be greater than 0.", field=field_name)
    if result != 0 and result.adjusted() > _MAX_ADJUSTED:
        raise PricingError(f"{field_name} is too large.", field=field_name)
    if result.as_tuple().exponent < _MIN_EXPONENT:  # type: ignore[operator]
        if result.normalize().as_tuple().exponent < _MIN_EXPONENT:  # type: ignore[operator]
            raise PricingError(
                f"{field_name} has more than {-_MIN_EXPONENT} decimal places.", field=field_name
            )
        result = result.quantize(Decimal(1).scaleb(_MIN_EXPONENT))
    return result + ZERO if result == 0 else result  # "-0" -> "0"


@dataclass(frozen=True)
class PerUnit:
    """Every billable unit at ``unit_price`` (R-M6: free threshold = the service's included)."""

    unit_price: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "unit_price", _price_field(self.unit_price, "unit_price"))


@dataclass(frozen=True)
class Package:
    """Every started block of ``package_size`` billable units costs ``package_price`` (R-Q2)."""

    package_size: Decimal
    package_price: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "package_size", _price_field(self.package_size, "package_size", positive=True)
        )
        object.__setattr__(self, "package_price", _price_field(self.package_price, "package_price"))


@dataclass(frozen=True)
class Tier:
    """Units up to ``up_to`` (inclusive; ``None`` = no upper bound) and the tier's prices."""

    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = field(default=ZERO)

    def __post_init__(self) -> None:
        if self.up_to is not None:
            object.__setattr__(self, "up_to", _price_field(self.up_to, "up_to", positive=True))
        object.__setattr__(self, "unit_price", _price_field(self.unit_price, "unit_price"))
        object.__setattr__(self, "flat_fee", _price_field(self.flat_fee, "flat_fee"))


def _check_tiers(tiers: Any) -> tuple[Tier, ...]:
    if not isinstance(tiers, (list, tuple)):
        raise PricingError("tiers must be a list of tiers.", field="tiers")
    if not tiers:
        raise PricingError("tiers must contain at least one tier.", field="tiers")
    previous = ZERO
    last = len(tiers) - 1
    for index, tier in enumerate(tiers):
        if not isinstance(tier, Tier):
            raise PricingError("Each tier must be a Tier.", field=f"tiers[{index}]")
        where = f"tiers[{index}].up_to"
        if tier.up_to is None:
            if index != last:
                raise PricingError("Only the last tier may have up_to null.", field=where)
            continue
        if index == last:
            raise PricingError("The last tier must have up_to null (no upper bound).", field=where)
        if tier.up_to <= previous:
            raise PricingError(
                f"up_to must be strictly increasing (tier {index} ends at {tier.up_to}, "
                f"not after {previous}).",
                field=where,
            )
        previous = tier.up_to
    return tuple(tiers)


@dataclass(frozen=True)
class Graduated:
    """Each tier's units at that tier's price, plus the flat fee of every tier reached."""

    tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", _check_tiers(self.tiers))


@dataclass(frozen=True)
class Volume:
    """All units at the price of the tier the total falls in, plus that tier's flat fee."""

    tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", _check_tiers(self.tiers))


Pricing = PerUnit | Package | Graduated | Volume

_MODELS = ("per_unit", "package", "graduated", "volume")
_KEYS = {
    "per_unit": {"model", "unit_price"},
    "package": {"model", "package_size", "package_price"},
    "graduated": {"model", "tiers"},
    "volume": {"model", "tiers"},
}
_TIER_KEYS = {"up_to", "unit_price", "flat_fee"}


def _require(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise PricingError(f"{where} is required.", field=where)
    return obj[key]


def _reject_unknown(obj: dict[str, Any], allowed: set[str], prefix: str) -> None:
    for key in obj:
        if key not in allowed:
            where = f"{prefix}{key}"
            raise PricingError(
                f"Unknown key {key!r}; allowed: {', '.join(sorted(allowed))}.", field=where
            )


def _parse_tier(obj: Any, index: int) -> Tier:
    prefix = f"tiers[{index}]."
    if not isinstance(obj, dict):
        raise PricingError("A tier must be an object.", field=f"tiers[{index}]")
    _reject_unknown(obj, _TIER_KEYS, prefix)
    up_to_raw = _require(obj, "up_to", f"{prefix}up_to")
    up_to = None if up_to_raw is None else _price_field(up_to_raw, f"{prefix}up_to", positive=True)
    return Tier(
        up_to=up_to,
        unit_price=_price_field(
            _require(obj, "unit_price", f"{prefix}unit_price"), f"{prefix}unit_price"
        ),
        flat_fee=_price_field(obj.get("flat_fee", "0"), f"{prefix}flat_fee"),
    )


def parse_pricing(obj: dict[str, Any]) -> Pricing:
    """Build a pricing model from its API.md JSON form; ``PricingError`` names the bad field."""
    if not isinstance(obj, dict):
        raise PricingError("A pricing object must be a JSON object.", field=None)
    model = _require(obj, "model", "model")
    if model not in _MODELS:
        raise PricingError(
            f"Unknown pricing model {model!r}; expected one of {', '.join(_MODELS)}.",
            field="model",
        )
    _reject_unknown(obj, _KEYS[model], "")
    if model == "per_unit":
        return PerUnit(_price_field(_require(obj, "unit_price", "unit_price"), "unit_price"))
    if model == "package":
        return Package(
            package_size=_price_field(
                _require(obj, "package_size", "package_size"), "package_size", positive=True
            ),
            package_price=_price_field(
                _require(obj, "package_price", "package_price"), "package_price"
            ),
        )
    raw_tiers = _require(obj, "tiers", "tiers")
    if not isinstance(raw_tiers, list):
        raise PricingError("tiers must be a list of tiers.", field="tiers")
    tiers = tuple(_parse_tier(tier, index) for index, tier in enumerate(raw_tiers))
    return Graduated(tiers) if model == "graduated" else Volume(tiers)


def _dec_str(value: Decimal) -> str:
    return format(value, "f")


def pricing_to_json(pricing: Pricing) -> dict[str, Any]:
    """The API.md JSON form of ``pricing`` (decimals as plain strings); inverse of parse."""
    if isinstance(pricing, PerUnit):
        return {"model": "per_unit", "unit_price": _dec_str(pricing.unit_price)}
    if isinstance(pricing, Package):
        return {
            "model": "package",
            "package_size": _dec_str(pricing.package_size),
            "package_price": _dec_str(pricing.package_price),
        }
    if isinstance(pricing, (Graduated, Volume)):
        return {
            "model": "graduated" if isinstance(pricing, Graduated) else "volume",
            "tiers": [
                {
                    "up_to": None if tier.up_to is None else _dec_str(tier.up_to),
                    "unit_price": _dec_str(tier.unit_price),
                    "flat_fee": _dec_str(tier.flat_fee),
                }
                for tier in pricing.tiers
            ],
        }
    raise TypeError(f"Not a pricing model: {pricing!r}")


# --------------------------------------------------------------------------- charging usage


def overage_quantity(used: Decimal, included: Decimal | None) -> Decimal:
    """Billable quantity beyond the free ``included`` one; 0 when ``included`` is None."""
    used_d = _finite(used, "used")
    if included is None:
        return ZERO
    included_d = _finite(included, "included")
    if included_d < 0:
        raise ValueError("included must not be negative.")
    with localcontext(_CONTEXT):
        return max(ZERO, used_d - included_d)


def _graduated(tiers: tuple[Tier, ...], billable: Decimal) -> Decimal:
    total = ZERO
    previous = ZERO
    for tier in tiers:
        if billable <= previous:
            break
        top = billable if tier.up_to is None else min(billable, tier.up_to)
        total += (top - previous) * tier.unit_price + tier.flat_fee
        if tier.up_to is None:
            break
        previous = tier.up_to
    return total


def _volume(tiers: tuple[Tier, ...], billable: Decimal) -> Decimal:
    if billable == 0:
        return ZERO
    tier = volume_tier(tiers, billable)
    return billable * tier.unit_price + tier.flat_fee


def volume_tier(tiers: tuple[Tier, ...], quantity: Decimal) -> Tier:
    """The tier ``quantity`` falls in (first tier whose ``up_to`` is >= quantity)."""
    for tier in tiers:
        if tier.up_to is None or quantity <= tier.up_to:
            return tier
    raise AssertionError("validated tiers always end with up_to=None")  # pragma: no cover


def price_usage(pricing: Pricing, used: Decimal, included: Decimal | None) -> Decimal:
    """Unrounded charge for one period's usage of a service.

    ``included`` is the free quantity (``None`` = unlimited: nothing is charged);
    billable = max(0, used - included).

    * per_unit: billable x unit_price (R-M6: 250 used, 100 free, 0.50 -> 75.00);
    * package: ceil(billable / package_size) x package_price (R-Q2);
    * graduated: each tier's share of the billable units at its unit_price, plus the flat
      fee of every tier reached (billable > the previous tier's up_to);
    * volume: all billable units at the unit_price of the tier the total falls in, plus that
      tier's flat fee; nothing for 0 billable units.
    """
    billable = overage_quantity(used, included)
    with localcontext(_CONTEXT):
        if isinstance(pricing, PerUnit):
            return billable * pricing.unit_price
        if isinstance(pricing, Package):
            # Exact ceil via Fraction: no rounding can turn 2.000...01 packages into 2.
            blocks = math.ceil(Fraction(billable) / Fraction(pricing.package_size))
            return Decimal(blocks) * pricing.package_price
        if isinstance(pricing, Graduated):
            return _graduated(pricing.tiers, billable)
        if isinstance(pricing, Volume):
            return _volume(pricing.tiers, billable)
    raise TypeError(f"Not a pricing model: {pricing!r}")


# --------------------------------------------------------------------------- proration


def _exact_fraction(
    *, period_start: datetime, period_end: datetime, at: datetime, interval: str, tz: str
) -> Fraction:
    for name, value in (("period_start", period_start), ("period_end", period_end), ("at", at)):
        if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be an aware datetime.")
    periods.validate_interval(interval)
    zone_name = periods.validate_timezone(tz)
    # Work on UTC instants: subtracting two datetimes that share a tzinfo gives the *wall
    # clock* difference in Python (24 h across a 23 h DST day), not the elapsed time.
    period_start = period_start.astimezone(periods.UTC)
    period_end = period_end.astimezone(periods.UTC)
    at = at.astimezone(periods.UTC)
    if period_end <= period_start:
        raise ValueError("period_end must be after period_start.")
    if at <= period_start:
        return Fraction(1)
    if at >= period_end:
        return Fraction(0)

    def micros(delta: timedelta) -> int:
        return delta // _MICROSECOND

    if interval in ("day", "week"):
        return Fraction(micros(period_end - at), micros(period_end - period_start))

    # Month / year: count calendar months in the zone.
    zone = ZoneInfo(zone_name)
    start_local = period_start.astimezone(zone)
    end_local = period_end.astimezone(zone)
    months = (end_local.year - start_local.year) * 12 + (end_local.month - start_local.month)
    if months < 1:
        return Fraction(micros(period_end - at), micros(period_end - period_start))
    # Month boundaries inside the period, clamped like the billing anchor: whichever end keeps
    # the larger day of month is unclamped (anchor Jan 31: Feb 28 -> Mar 31 uses Mar 31).
    if start_local.day >= end_local.day:
        inner = [periods.shift(period_start, "month", j, zone_name) for j in range(1, months)]
    else:
        inner = [
            periods.shift(period_end, "month", j - months, zone_name) for j in range(1, months)
        ]
    bounds = [period_start, *inner, period_end]
    if any(a >= b for a, b in zip(bounds, bounds[1:], strict=False)):
        # Degenerate calendar (should not happen for real periods): fall back to seconds.
        return Fraction(micros(period_end - at), micros(period_end - period_start))
    for j in range(months):
        lo, hi = bounds[j], bounds[j + 1]
        if lo <= at < hi:
            whole_after = months - j - 1
            partial = Fraction(micros(hi - at), micros(hi - lo))
            return (whole_after + partial) / months
    raise AssertionError("at lies inside the period")  # pragma: no cover


def proration_fraction(
    *, period_start: datetime, period_end: datetime, at: datetime, interval: str, tz: str
) -> Decimal:
    """Share of the billing period ``[period_start, period_end)`` left after ``at``, in [0, 1].

    For ``month``/``year`` the share is counted in calendar months of the zone: the whole
    months from ``at`` to ``period_end`` plus the rest of the month ``at`` is in (elapsed
    seconds over that month's length), divided by the months in the period (1 or 12). For
    ``day``/``week``: seconds left / seconds in the period. Before the period: 1; after: 0.
    """
    frac = _exact_fraction(
        period_start=period_start, period_end=period_end, at=at, interval=interval, tz=tz
    )
    with localcontext(_CONTEXT):
        return Decimal(frac.numerator) / Decimal(frac.denominator)


def prorate(
    amount: Decimal,
    *,
    period_start: datetime,
    period_end: datetime,
    at: datetime,
    interval: str,
    tz: str,
) -> Decimal:
    """``amount`` x the share of the period left after ``at`` (unrounded).

    R-L6: $400/year bought with six months of an annual cycle left -> exactly ``Decimal("200")``.
    The fraction is kept exact (``Fraction``) and applied as amount x numerator / denominator,
    so the only rounding is one division at 60 significant digits.
    """
    value = _finite(amount, "amount")
    frac = _exact_fraction(
        period_start=period_start, period_end=period_end, at=at, interval=interval, tz=tz
    )
    with localcontext(_CONTEXT):
        return (value * frac.numerator) / Decimal(frac.denominator)
