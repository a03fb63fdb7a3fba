"""An exact decimal column for rollups: unbounded NUMERIC on PostgreSQL, TEXT on SQLite.

Sums of event values must stay exact (R-M2): ``DecimalField`` fixes the scale (rounding
anything finer) and SQLite's NUMERIC affinity turns decimals into binary floats. So
PostgreSQL gets ``numeric`` without precision or scale, and SQLite keeps the decimal's text;
SQL arithmetic on it goes through the ``kota_dec_*`` functions that ``metering.sqlite``
registers on each SQLite connection.
"""

from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import models


class ExactDecimalField(models.Field):
    description = "An exact decimal number of any precision"

    def db_type(self, connection):
        return "numeric" if connection.vendor == "postgresql" else "text"

    def get_internal_type(self):
        return "ExactDecimalField"

    def to_python(self, value):
        if value is None or isinstance(value, Decimal):
            return value
        try:
            return Decimal(str(value))
        except InvalidOperation as exc:
            raise ValidationError(f"{value!r} is not a decimal number.") from exc

    def from_db_value(self, value, expression, connection):
        if value is None or isinstance(value, Decimal):
            return value
        return Decimal(value if isinstance(value, str) else str(value))

    def get_db_prep_value(self, value, connection, prepared=False):
        value = self.get_prep_value(value)
        if value is None:
            return None
        value = self.to_python(value)
        return value if connection.vendor == "postgresql" else str(value)
