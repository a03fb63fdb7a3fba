"""Formatting for the customer pages: quantities with thousands separators, money."""

from decimal import Decimal

from django import template

from billing.pricing import round_money
from core.numbers import decimal_str

register = template.Library()

RESET_PHRASES = {
    "day": "today",
    "week": "this week",
    "month": "this month",
    "year": "this year",
    "billing_period": "this billing period",
}


@register.filter
def qty(value: Decimal | None) -> str:
    """10000 -> "10,000"; 2.50 -> "2.5"; None -> "Unlimited"."""
    if value is None:
        return "Unlimited"
    text = decimal_str(Decimal(value))
    sign = "-" if text.startswith("-") else ""
    whole, _, fraction = text.lstrip("-").partition(".")
    grouped = f"{int(whole):,}"
    return f"{sign}{grouped}.{fraction}" if fraction else f"{sign}{grouped}"


@register.filter
def money(value: Decimal, currency: str) -> str:
    """An amount rounded to the currency's minor unit: "5.00 TRY"."""
    rounded = round_money(Decimal(value), currency)
    whole, _, fraction = format(rounded, "f").partition(".")
    grouped = f"{int(whole):,}" if whole not in ("-0", "") else whole
    return f"{grouped}.{fraction} {currency}" if fraction else f"{grouped} {currency}"


@register.filter
def reset_phrase(reset_interval: str) -> str:
    return RESET_PHRASES.get(reset_interval, "this period")
