"""Meter aggregations (R-M2) as a mergeable partial state, for pre-aggregated rollups.

Pure Python, no Django. A rollup row stores the six fields of ``Partial``; rows for any set
of events merge (``a + b``) into the partial of their union, whatever the split and order, so
a period's value is the merge of its rollup rows:

* **count**: the number of matching events;
* **sum**: the sum of a numeric property;
* **max**: the highest value of a property;
* **last**: the value of the most recent event by event timestamp; events with the same
  timestamp are ordered by their event key (the event ID), so the result never depends on
  arrival order.

Which events feed a meter is the caller's job: ``event_value`` says whether an event is
included and with what value. For sum / max / last meters an event whose aggregated property
is missing, null or not numeric is **excluded** (it is not even counted); numeric strings
(``"12.5"``) are numeric. Decimal arithmetic uses a 60-digit context, so sums of values with
up to 60 significant digits are exact.

Timestamps must be comparable with one another: all timezone-aware (as Django stores them)
or all naive.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from functools import reduce
from typing import Any

from metering.filters import extract, to_decimal

__all__ = ["AGGREGATIONS", "Partial", "aggregate", "event_value", "merge", "merge_all"]

AGGREGATIONS: tuple[str, ...] = ("count", "sum", "max", "last")

_CONTEXT = Context(
    prec=60, Emax=999_999, Emin=-999_999, traps=[InvalidOperation, DivisionByZero, Overflow]
)


def _check(aggregation: str) -> None:
    if aggregation not in AGGREGATIONS:
        raise ValueError(
            f"unknown aggregation {aggregation!r}; expected one of {', '.join(AGGREGATIONS)}"
        )


def event_value(
    aggregation: str, property_path: str, properties: Any
) -> tuple[bool, Decimal | None]:
    """``(included, value)`` for one event that passed the meter's filter.

    count -> ``(True, None)``. sum / max / last -> ``(True, Decimal)`` when the property at
    ``property_path`` (dotted, see ``filters.extract``) is numeric, else ``(False, None)``: the
    event is excluded from the meter.
    """
    _check(aggregation)
    if aggregation == "count":
        return True, None
    value = to_decimal(extract(properties, property_path))
    if value is None:
        return False, None
    return True, value


def _max(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    """The greater of two decimals, ignoring ``None``; ties pick one representation
    deterministically (``1.00`` over ``1``) so that merging is commutative to the digit."""
    if a is None:
        return b
    if b is None:
        return a
    if a > b:
        return a
    if b > a:
        return b
    ka = (a.as_tuple().exponent, str(a))
    kb = (b.as_tuple().exponent, str(b))
    return a if ka <= kb else b


@dataclass(frozen=True, slots=True)
class Partial:
    """Mergeable state of count / sum / max / last over a set of events."""

    count: int = 0
    total: Decimal = Decimal(0)
    maximum: Decimal | None = None
    last_at: datetime | None = None
    last_key: str = ""
    last_value: Decimal | None = None

    @classmethod
    def of_event(cls, timestamp: datetime, key: str, value: Decimal | None) -> Partial:
        """The partial of one event. ``value`` None (count meters) only counts the event."""
        if value is None:
            return cls(count=1)
        return cls(1, value, value, timestamp, key, value)

    def merge(self, other: Partial) -> Partial:
        return merge(self, other)

    def __add__(self, other: object) -> Partial:
        if not isinstance(other, Partial):
            return NotImplemented
        return merge(self, other)

    def value(self, aggregation: str) -> Decimal | None:
        """count -> Decimal(count); sum -> total; max / last -> None when no value was seen."""
        _check(aggregation)
        if aggregation == "count":
            return Decimal(self.count)
        if aggregation == "sum":
            return self.total
        if aggregation == "max":
            return self.maximum
        return self.last_value


EMPTY = Partial()


def merge(a: Partial, b: Partial) -> Partial:
    """The partial of the union of two disjoint sets of events (associative, commutative)."""
    if b.last_at is None:
        last_at, last_key, last_value = a.last_at, a.last_key, a.last_value
    elif a.last_at is None:
        last_at, last_key, last_value = b.last_at, b.last_key, b.last_value
    else:
        ka, kb = (a.last_at, a.last_key), (b.last_at, b.last_key)
        if ka > kb:
            last_at, last_key, last_value = a.last_at, a.last_key, a.last_value
        elif kb > ka:
            last_at, last_key, last_value = b.last_at, b.last_key, b.last_value
        else:  # the same event seen twice: keep a deterministic value
            last_at, last_key = a.last_at, a.last_key
            last_value = _max(a.last_value, b.last_value)
    return Partial(
        count=a.count + b.count,
        total=_CONTEXT.add(a.total, b.total),
        maximum=_max(a.maximum, b.maximum),
        last_at=last_at,
        last_key=last_key,
        last_value=last_value,
    )


def merge_all(partials: Iterable[Partial]) -> Partial:
    """Merge any number of partials; ``Partial()`` for none."""
    return reduce(merge, partials, EMPTY)


def aggregate(
    aggregation: str, rows: Iterable[tuple[datetime, str, Decimal | None]]
) -> Decimal | None:
    """Reference (slow, straightforward) aggregation of ``(timestamp, key, value)`` rows.

    Rows with value None only count. sum of nothing is 0; max / last of nothing is None.
    """
    _check(aggregation)
    rows = list(rows)
    if aggregation == "count":
        return Decimal(len(rows))
    valued = [row for row in rows if row[2] is not None]
    if aggregation == "sum":
        total = Decimal(0)
        for _, _, value in valued:
            total = _CONTEXT.add(total, value)
        return total
    if not valued:
        return None
    if aggregation == "max":
        return max(value for _, _, value in valued)
    return max(valued, key=lambda row: (row[0], row[1], row[2]))[2]
