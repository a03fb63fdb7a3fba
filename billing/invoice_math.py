"""Invoice arithmetic: line amounts, discount, tax, credit and total (DESIGN.md §3-4, R-T5).

Pure logic: standard library and ``billing.pricing`` only (no Django), so the money rules of
an invoice can be tested exhaustively without a database.

How an invoice adds up
----------------------
1. Each line's amount is rounded **once** to the currency's minor unit:
   ``round_money(amount if given else quantity x unit_price)``.
2. ``subtotal`` = sum of the rounded line amounts (exact: no further rounding).
3. ``discount`` = the active discounts, each computed on the subtotal (percentages do not
   compound), summed, capped at the subtotal, and rounded once.
4. ``tax`` = round((subtotal - discount) x rate / 100), rate in percent.
5. ``credit`` = min(credit balance, subtotal - discount + tax); the balance is never exceeded.
6. ``total`` = subtotal - discount + tax - credit, never negative.

Single lines may be negative (an adjustment), the subtotal may not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, Context, Decimal, localcontext
from typing import Any

from billing.pricing import minor_units, round_money

__all__ = [
    "LINE_KINDS",
    "DiscountTerm",
    "InvoiceLineDraft",
    "InvoiceMathError",
    "InvoiceTotals",
    "amount_before_tax",
    "compute_totals",
    "line_amount",
    "money_str",
]

ZERO = Decimal(0)
HUNDRED = Decimal(100)
_CONTEXT = Context(prec=60)

#: What an invoice line bills; ``usage`` lines carry what R-T7 needs in their metadata.
LINE_KINDS = ("fixed_fee", "usage", "addon", "charge", "adjustment")


class InvoiceMathError(ValueError):
    """Inputs an invoice cannot be built from; ``code`` is machine readable."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class InvoiceLineDraft:
    """A line before it is written: what callers (period close, thresholds, add-ons) pass in.

    ``amount`` is the **unrounded** charge when it is not simply quantity x unit_price (a
    package or graduated price); ``None`` means quantity x unit_price. ``unit_price`` keeps
    full precision. ``metadata`` is stored on the line; for usage lines the convention is
    ``{"usage_quantity": "<billed quantity, as a string>"}`` so that a later invoice of the
    same period can bill only what earlier ones did not (R-T7).
    """

    description: str
    unit_price: Decimal
    quantity: Decimal = Decimal(1)
    amount: Decimal | None = None
    kind: str = "fixed_fee"
    service: str = ""
    pricing_model: str = ""
    period_start: datetime | None = None
    period_end: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in LINE_KINDS:
            raise InvoiceMathError(
                f"Unknown line kind {self.kind!r}; expected one of {', '.join(LINE_KINDS)}.",
                code="invalid_line_kind",
            )
        for name in ("unit_price", "quantity", "amount"):
            value = getattr(self, name)
            if value is None and name == "amount":
                continue
            if not isinstance(value, Decimal) or not value.is_finite():
                raise InvoiceMathError(
                    f"Line {name} must be a finite Decimal, got {value!r}.", code="invalid_line"
                )
        if self.kind != "adjustment" and self.raw_amount() < 0:
            raise InvoiceMathError(
                "Only adjustment lines may be negative.", code="negative_line_amount"
            )

    def raw_amount(self) -> Decimal:
        """The unrounded amount this line bills."""
        if self.amount is not None:
            return self.amount
        with localcontext(_CONTEXT):
            return self.quantity * self.unit_price


@dataclass(frozen=True)
class DiscountTerm:
    """One active discount: a percentage of the subtotal XOR a fixed amount off."""

    percent: Decimal | None = None
    amount_off: Decimal | None = None

    def __post_init__(self) -> None:
        if (self.percent is None) == (self.amount_off is None):
            raise InvoiceMathError(
                "A discount is either a percent or an amount off.", code="invalid_discount"
            )
        if self.percent is not None and not (ZERO < self.percent <= HUNDRED):
            raise InvoiceMathError("A discount percent is in (0, 100].", code="invalid_discount")
        if self.amount_off is not None and not self.amount_off > 0:
            raise InvoiceMathError(
                "A discount amount off is greater than 0.", code="invalid_discount"
            )


@dataclass(frozen=True)
class InvoiceTotals:
    line_amounts: tuple[Decimal, ...]
    subtotal: Decimal
    discount: Decimal
    tax: Decimal
    credit: Decimal
    total: Decimal


def line_amount(line: InvoiceLineDraft, currency: str) -> Decimal:
    """The line's amount rounded once to the minor unit of ``currency``."""
    return round_money(line.raw_amount(), currency)


def _discount(subtotal: Decimal, discounts: Iterable[DiscountTerm], currency: str) -> Decimal:
    if subtotal <= 0:
        return ZERO
    with localcontext(_CONTEXT):
        raw = ZERO
        for term in discounts:
            if term.percent is not None:
                raw += subtotal * term.percent / HUNDRED
            else:
                raw += term.amount_off  # type: ignore[operator]
        # Capped before rounding: subtotal is already in minor units, so the cap survives it.
        return round_money(min(raw, subtotal), currency)


def _floor_money(amount: Decimal, currency: str) -> Decimal:
    """Down to the minor unit, so a credit taken from a balance never exceeds it."""
    exponent = Decimal(1).scaleb(-minor_units(currency))
    with localcontext(_CONTEXT):
        return amount.quantize(exponent, rounding=ROUND_DOWN)


def _check_rate(tax_rate: Decimal) -> None:
    if not isinstance(tax_rate, Decimal) or not tax_rate.is_finite() or tax_rate < 0:
        raise InvoiceMathError("The tax rate is a percent >= 0.", code="invalid_tax_rate")


def _subtotal(
    lines: Sequence[InvoiceLineDraft], currency: str
) -> tuple[tuple[Decimal, ...], Decimal]:
    amounts = tuple(line_amount(line, currency) for line in lines)
    with localcontext(_CONTEXT):
        subtotal = sum(amounts, ZERO)
    if subtotal < 0:
        raise InvoiceMathError(
            "An invoice's lines must not add up to less than zero.", code="negative_subtotal"
        )
    return amounts, subtotal


def compute_totals(
    *,
    lines: Sequence[InvoiceLineDraft],
    currency: str,
    discounts: Sequence[DiscountTerm] = (),
    tax_rate: Decimal = ZERO,
    credit_balance: Decimal = ZERO,
) -> InvoiceTotals:
    """Every amount of an invoice, each rounded once (see the module docstring).

    ``tax_rate`` is a percent (20 for 20 %); ``credit_balance`` the customer's balance in
    ``currency`` (a negative balance is treated as none).
    """
    _check_rate(tax_rate)
    amounts, subtotal = _subtotal(lines, currency)
    discount = _discount(subtotal, discounts, currency)
    with localcontext(_CONTEXT):
        taxable = subtotal - discount
        tax = round_money(taxable * tax_rate / HUNDRED, currency)
        due = taxable + tax
        credit = min(_floor_money(max(credit_balance, ZERO), currency), due)
        total = due - credit
    return InvoiceTotals(
        line_amounts=amounts,
        subtotal=subtotal,
        discount=discount,
        tax=tax,
        credit=credit,
        total=total,
    )


def amount_before_tax(
    *,
    lines: Sequence[InvoiceLineDraft],
    currency: str,
    discounts: Sequence[DiscountTerm] = (),
    credit_balance: Decimal = ZERO,
) -> Decimal:
    """What a monetary billing threshold compares with (R-T5): without taxes, after
    discounts and credits, never below zero."""
    _, subtotal = _subtotal(lines, currency)
    discount = _discount(subtotal, discounts, currency)
    with localcontext(_CONTEXT):
        taxable = subtotal - discount
        return taxable - min(_floor_money(max(credit_balance, ZERO), currency), taxable)


def money_str(amount: Decimal, currency: str) -> str:
    """An amount as the API and the invoice page write it: "5.00" in USD, "500" in JPY."""
    return format(round_money(amount, currency), "f")
