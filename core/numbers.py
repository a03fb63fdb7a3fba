from decimal import Decimal


def decimal_str(value: Decimal) -> str:
    """A quantity as the API writes it: no exponent, no trailing zeros ("10", "0.5")."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text
