from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

code_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_\-]{0,63}$",
    "Use lowercase letters, digits, '_' and '-' (at most 64 characters).",
    code="invalid_code",
)
currency_validator = RegexValidator(
    r"^[A-Z]{3}$", "An ISO 4217 code in capitals, e.g. USD.", code="invalid_currency"
)


def validate_timezone(value: str) -> None:
    if value not in available_timezones():
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError(
                f"{value!r} is not an IANA time zone (e.g. America/Los_Angeles).",
                code="invalid_timezone",
            ) from exc
