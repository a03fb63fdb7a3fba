"""From events to rollup partials, in Python, once per batch (no Django).

``accumulate`` folds a batch's events into one ``Partial`` per (meter, customer, 15-minute
bucket) with plain lists (no object per event), and ``rollup_rows`` derives the hour and day
partials from those, so the database receives one upsert row per key and granularity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from .aggregation import _CONTEXT, Partial, event_value, merge
from .filters import Filter, matches
from .windows import DAY, HOUR, QUARTER_HOUR, bucket_floor, quarter_floor

_ZERO = Decimal(0)

#: (meter_id, customer_id, bucket_start)
Key = tuple[int, int, datetime]


@dataclass(frozen=True, slots=True)
class CompiledMeter:
    """What ingestion and back-fill need of a meter, its filter parsed once."""

    id: int
    generation: int
    event_name: str
    aggregation: str
    property: str
    filter: Filter | None

    def value(self, properties: Any) -> tuple[bool, Decimal | None]:
        """(counted, value): the filter (R-M3, R-M4) then the aggregated property (R-M2)."""
        if self.filter is not None and not matches(self.filter, properties):
            return False, None
        return event_value(self.aggregation, self.property, properties)


def accumulate(
    meters_by_name: dict[str, list[CompiledMeter]],
    events: Iterable[tuple[str, str, int, datetime, Any]],
) -> dict[Key, Partial]:
    """Partials per (meter, customer, 15-minute bucket) of ``(event_id, name, customer_id,
    timestamp, properties)`` rows. ``last`` is decided by (timestamp, event_id), never by
    the order of the rows (R-M2)."""
    acc: dict[Key, list] = {}
    for event_id, name, customer_id, ts, props in events:
        meters = meters_by_name.get(name)
        if not meters:
            continue
        bucket = None
        for meter in meters:
            counted, value = meter.value(props)
            if not counted:
                continue
            if bucket is None:
                bucket = quarter_floor(ts)
            key = (meter.id, customer_id, bucket)
            slot = acc.get(key)
            if slot is None:
                if value is None:
                    acc[key] = [1, _ZERO, None, None, "", None]
                else:
                    acc[key] = [1, value, value, ts, event_id, value]
                continue
            slot[0] += 1
            if value is None:
                continue
            slot[1] = _CONTEXT.add(slot[1], value)
            if slot[2] is None or value > slot[2]:
                slot[2] = value
            if slot[3] is None or ts > slot[3] or (ts == slot[3] and event_id > slot[4]):
                slot[3], slot[4], slot[5] = ts, event_id, value
    return {key: Partial(*slot) for key, slot in acc.items()}


def rollup_rows(partials: dict[Key, Partial], generations: dict[int, int]) -> list[tuple]:
    """Upsert rows for the 15-minute partials and the hour and day partials they add up to."""
    coarser: dict[tuple[int, int, int, datetime], Partial] = {}
    rows = []
    for (meter_id, customer_id, bucket), p in partials.items():
        rows.append(_row(meter_id, generations[meter_id], customer_id, QUARTER_HOUR, bucket, p))
        for granularity in (HOUR, DAY):
            key = (meter_id, customer_id, granularity, bucket_floor(bucket, granularity))
            prev = coarser.get(key)
            coarser[key] = p if prev is None else merge(prev, p)
    for (meter_id, customer_id, granularity, bucket), p in coarser.items():
        rows.append(_row(meter_id, generations[meter_id], customer_id, granularity, bucket, p))
    return rows


def _row(meter_id, generation, customer_id, granularity, bucket, p: Partial) -> tuple:
    return (
        meter_id,
        generation,
        customer_id,
        granularity,
        bucket,
        p.count,
        p.total,
        p.maximum,
        p.last_at,
        p.last_key,
        p.last_value,
    )
