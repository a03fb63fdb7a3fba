from decimal import Decimal

from .pricing import round_money


def money_display(amount: Decimal, currency: str) -> str:
    """An amount for people: the currency's minor units, then the code ("29.00 USD")."""
    return f"{round_money(amount, currency):,} {currency}"
