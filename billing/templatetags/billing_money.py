from decimal import Decimal

from django import template

from billing.invoice_math import money_str
from core.numbers import decimal_str

register = template.Library()


@register.filter
def money(amount: Decimal, currency: str) -> str:
    """An amount in the currency's minor unit: 5 USD -> "5.00", 500 JPY -> "500"."""
    return money_str(amount, currency)


@register.filter
def plain(value: Decimal) -> str:
    """A quantity or unit price at full precision, without trailing zeros."""
    return decimal_str(value)
