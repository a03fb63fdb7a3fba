from decimal import Decimal

from django import template

from billing.pricing import round_money
from core.numbers import decimal_str

register = template.Library()


@register.filter
def money(amount: Decimal, currency: str) -> str:
    """An amount for people, in the currency's minor unit: "1,250.00" USD, "500" JPY."""
    return f"{round_money(amount, currency):,}"


@register.filter
def plain(value: Decimal) -> str:
    """A quantity or unit price at full precision, without trailing zeros."""
    return decimal_str(value)
