"""Metering reads: meters, events, and usage from rollups (R-M2, R-M7).

Usage over ``[start, end)`` is read from pre-aggregated rollups: whole UTC days, then hours,
then quarter hours (``windows.plan``), plus raw events only for the edges shorter than 15
minutes when ``start`` or ``end`` is not on a quarter hour. A meter whose back-fill is not
done is read from raw events (exact, slower) until it is. An archived meter counts the events
stored before it was archived, nothing later.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import F, Q, QuerySet, Sum, Window
from django.db.models.functions import RowNumber
from django.utils.dateparse import parse_datetime

from core.errors import NotFound

from .aggregation import EMPTY, Partial, aggregate, merge, merge_all
from .filters import parse_filter
from .models import BackfillStatus, Event, Granularity, Meter, MeterRollup, MeterStatus
from .rollups import CompiledMeter
from .sql import CodePointOrder, DecimalMax, DecimalSum
from .windows import (
    DAY,
    Segment,
    TooManyWindows,
    bucket_ceil,
    bucket_floor,
    merge_segments,
    plan,
    summary_windows,
)

MAX_SUMMARY_WINDOWS = 1000
# A chart wider than this is unreadable and slow to draw: a coarser window is used instead.
MAX_CHART_POINTS = 400
CHART_WINDOWS: tuple[str, ...] = ("day", "week", "month")  # finest first

# ------------------------------------------------------------------------------ meters


def meter_list(*, status: str | None = MeterStatus.ACTIVE) -> QuerySet[Meter]:
    """Meters by name; ``status`` None lists every meter."""
    qs = Meter.objects.order_by("name", "id")
    return qs if status is None else qs.filter(status=status)


def meter_get(*, meter_id: int) -> Meter:
    meter = Meter.objects.filter(pk=meter_id).first()
    if meter is None:
        raise NotFound(f"No meter {meter_id}.", code="unknown_meter")
    return meter


def meter_compiled(meter: Meter) -> CompiledMeter:
    return CompiledMeter(
        id=meter.id,
        generation=meter.generation,
        event_name=meter.event_name,
        aggregation=meter.aggregation,
        property=meter.property,
        filter=parse_filter(meter.filter),
    )


# What a usage read depends on besides the id: compared with the stored row before trusting a
# caller's instance.
_READ_STATE = (
    "generation",
    "backfill_status",
    "archived_upto",
    "event_name",
    "aggregation",
    "property",
    "filter",
)


def _fresh(meter: Meter) -> Meter:
    """The meter as stored now: a caller's instance may predate a change of generation (a
    back-fill in progress, whose rollups are not complete yet) or of definition. Only the
    few fields a read depends on are read; the caller's instance is used when they match."""
    state = Meter.objects.filter(pk=meter.pk).values_list(*_READ_STATE).first()
    if state is not None and state == tuple(getattr(meter, f) for f in _READ_STATE):
        return meter
    return Meter.objects.get(pk=meter.pk)


# ------------------------------------------------------------------------------ events


def event_list(
    *,
    customer_id: int | None = None,
    name: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    meter: Meter | None = None,
    event_id: str | None = None,
) -> QuerySet[Event]:
    """Events matching the SQL-expressible criteria (R-M7); ``meter`` narrows to its event name
    (and to what was stored before it was archived): its filter and property are checked in
    Python by ``event_counted_by``. ``event_id`` is an exact match (the unique index)."""
    qs = Event.objects.select_related("customer")
    if event_id is not None:
        qs = qs.filter(event_id=event_id)
    if customer_id is not None:
        qs = qs.filter(customer_id=customer_id)
    if name is not None:
        qs = qs.filter(name=name)
    if since is not None:
        qs = qs.filter(timestamp__gte=since)
    if until is not None:
        qs = qs.filter(timestamp__lt=until)
    if meter is not None:
        qs = qs.filter(name=meter.event_name)
        if meter.archived_upto is not None:
            qs = qs.filter(id__lte=meter.archived_upto)
    return qs


def event_counted_by(compiled: CompiledMeter, event: Event) -> bool:
    """Whether the meter counts this event: filter (R-M3, R-M4) and aggregated value (R-M2)."""
    return event.name == compiled.event_name and compiled.value(event.properties)[0]


# ------------------------------------------------------------------------------ usage


def _raw_rows(
    meter: Meter,
    customer_id: int | None,
    ranges: Iterable[tuple[datetime, datetime]],
    *,
    small: bool = False,
) -> list[tuple[datetime, str, Decimal | None]]:
    """``(timestamp, event_id, value)`` of the events the meter counts in ``ranges``.

    ``small``: few rows are expected (one customer, edges shorter than 15 minutes): one plain
    fetch. Otherwise rows are streamed in chunks (a server-side cursor on PostgreSQL, whose
    DECLARE / FETCH / CLOSE round trips cost more than a small read itself)."""
    ranges = list(ranges)
    if not ranges:
        return []
    where = Q()
    for lo, hi in ranges:
        where |= Q(timestamp__gte=lo, timestamp__lt=hi)
    qs = Event.objects.filter(where, name=meter.event_name)
    if customer_id is not None:
        qs = qs.filter(customer_id=customer_id)
    if meter.archived_upto is not None:
        qs = qs.filter(id__lte=meter.archived_upto)
    compiled = meter_compiled(meter)
    rows = []
    values = qs.values_list("event_id", "timestamp", "properties")
    for event_id, ts, props in values if small else values.iterator(chunk_size=5000):
        counted, value = compiled.value(props)
        if counted:
            rows.append((ts, event_id, value))
    return rows


def _rows_partial(rows: Iterable[tuple[datetime, str, Decimal | None]]) -> Partial:
    return merge_all(Partial.of_event(ts, key, value) for ts, key, value in rows)


def _bucket_partials(
    meter: Meter, customer_id: int | None, segments: list[Segment]
) -> dict[tuple[int, datetime], Partial]:
    """Rollup partials by (granularity, bucket_start), summed over customers if none given."""
    if not segments:
        return {}
    where = Q()
    for seg in merge_segments(segments):
        where |= Q(
            granularity=seg.granularity, bucket_start__gte=seg.start, bucket_start__lt=seg.end
        )
    qs = MeterRollup.objects.filter(where, meter_id=meter.id, generation=meter.generation)
    if customer_id is not None:
        return {
            (g, b): Partial(n, t, mx, la, lk, lv)
            for g, b, n, t, mx, la, lk, lv in qs.filter(customer_id=customer_id).values_list(
                "granularity",
                "bucket_start",
                "count",
                "total",
                "maximum",
                "last_at",
                "last_key",
                "last_value",
            )
        }
    grouped = (
        qs.values("granularity", "bucket_start")
        .order_by()
        .annotate(n=Sum("count"), t=DecimalSum("total"), mx=DecimalMax("maximum"))
        .values_list("granularity", "bucket_start", "n", "t", "mx")
    )
    out = {(g, b): Partial(n, t, mx) for g, b, n, t, mx in grouped}
    if meter.aggregation == "last":
        latest = (
            qs.filter(last_at__isnull=False)
            .annotate(
                rank=Window(
                    RowNumber(),
                    partition_by=[F("granularity"), F("bucket_start")],
                    order_by=[F("last_at").desc(), CodePointOrder(F("last_key")).desc()],
                )
            )
            .filter(rank=1)
            .values_list("granularity", "bucket_start", "last_at", "last_key", "last_value")
        )
        for g, b, la, lk, lv in latest:
            p = out[(g, b)]
            out[(g, b)] = Partial(p.count, p.total, p.maximum, la, lk, lv)
    return out


def _merge_plan_buckets(
    segments: Iterable[Segment], buckets: dict[tuple[int, datetime], Partial]
) -> Partial:
    result = EMPTY
    for seg in segments:
        for bucket in seg.buckets():
            p = buckets.get((seg.granularity, bucket))
            if p is not None:
                result = merge(result, p)
    return result


def meter_partial(
    *, meter: Meter, customer_id: int | None, start: datetime, end: datetime
) -> Partial:
    """The meter's aggregation state over ``[start, end)`` for one customer (or, with
    ``customer_id=None``, all customers merged: counts and sums add, max of maxima, latest
    last)."""
    if customer_id is not None:
        fast = _customer_partial(meter, customer_id, start, end)
        if fast is not None:
            return fast
    return _partial(_fresh(meter), customer_id, start, end)


# --------------------------------------------------------------------- one customer, fast


def _db_datetime(value: Any) -> datetime | None:
    """A datetime column read by a plain cursor: aware on PostgreSQL, naive UTC (or its text)
    on SQLite."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = parse_datetime(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _db_decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(value if isinstance(value, str) else str(value))


def _db_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _ranges_sql(column: str, count: int, extra: str = "") -> str:
    parts = [f"({extra}{column} >= %s AND {column} < %s)"] * count
    return "(" + " OR ".join(parts) + ")" if parts else "1 = 0"


def _customer_partial(
    meter: Meter, customer_id: int, start: datetime, end: datetime
) -> Partial | None:
    """``_partial(_fresh(meter), customer_id, ...)`` in at most two plain statements: the
    stored meter's read state comes with its rollups (one join, no ORM compilation), then the
    raw edges, if any. None when the caller's instance is not the stored meter (changed,
    archived, back-filling): the caller then takes the general path."""
    p = plan(start, end)
    segments = merge_segments(list(p.segments))
    adapt = connection.ops.adapt_datetimefield_value
    on = " OR ".join(
        ["(r.granularity = %s AND r.bucket_start >= %s AND r.bucket_start < %s)"] * len(segments)
    )
    params: list[Any] = [customer_id]
    for seg in segments:
        params += (seg.granularity, adapt(seg.start), adapt(seg.end))
    params.append(meter.pk)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT m.generation, m.backfill_status, m.archived_upto, m.event_name, "
            'm.aggregation, m.property, m.filter, r.granularity, r.bucket_start, r."count", '
            "r.total, r.maximum, r.last_at, r.last_key, r.last_value "
            "FROM metering_meter m LEFT JOIN metering_meterrollup r "
            "ON r.meter_id = m.id AND r.generation = m.generation AND r.customer_id = %s "
            f"AND ({on or '1 = 0'}) WHERE m.id = %s",
            params,
        )
        rows = cursor.fetchall()
        if not rows:
            return None
        generation, status, archived_upto, event_name, aggregation, prop, filt = rows[0][:7]
        if (
            status != BackfillStatus.DONE
            or (generation, archived_upto, event_name, aggregation, prop)
            != (meter.generation, meter.archived_upto, meter.event_name, meter.aggregation)
            + (meter.property,)
            or _db_json(filt) != meter.filter
        ):
            return None
        buckets = {
            (g, _db_datetime(b)): Partial(
                n, _db_decimal(t), _db_decimal(mx), _db_datetime(la), lk, _db_decimal(lv)
            )
            for *_, g, b, n, t, mx, la, lk, lv in rows
            if g is not None
        }
        result = _merge_plan_buckets(p.segments, buckets)
        if not p.edges:
            return result
        params = [event_name, customer_id]
        for lo, hi in p.edges:
            params += (adapt(lo), adapt(hi))
        archived = ""
        if archived_upto is not None:
            archived = " AND id <= %s"
            params.append(archived_upto)
        cursor.execute(
            'SELECT event_id, "timestamp", properties FROM metering_event '
            "WHERE name = %s AND customer_id = %s AND "
            f"{_ranges_sql(chr(34) + 'timestamp' + chr(34), len(p.edges))}{archived}",
            params,
        )
        events = cursor.fetchall()
    compiled = meter_compiled(meter)
    rows_counted = []
    for event_id, ts, props in events:
        counted, value = compiled.value(_db_json(props))
        if counted:
            rows_counted.append((_db_datetime(ts), event_id, value))
    return merge(result, _rows_partial(rows_counted))


def _partial(meter: Meter, customer_id: int | None, start: datetime, end: datetime) -> Partial:
    if meter.backfill_status != BackfillStatus.DONE:
        return _rows_partial(_raw_rows(meter, customer_id, [(start, end)]))
    p = plan(start, end)
    buckets = _bucket_partials(meter, customer_id, list(p.segments))
    return merge(
        _merge_plan_buckets(p.segments, buckets),
        _rows_partial(_raw_rows(meter, customer_id, p.edges, small=customer_id is not None)),
    )


def meter_value(
    *, meter: Meter, customer_id: int | None, start: datetime, end: datetime
) -> Decimal | None:
    """The meter's value over ``[start, end)`` (R-M2): count and sum are 0 without events,
    max and last are None."""
    if customer_id is not None:
        fast = _customer_partial(meter, customer_id, start, end)
        if fast is not None:
            return fast.value(meter.aggregation)
    meter = _fresh(meter)
    return _partial(meter, customer_id, start, end).value(meter.aggregation)


def meter_value_from_events(
    *, meter: Meter, customer_id: int | None, start: datetime, end: datetime
) -> Decimal | None:
    """The same value computed the slow, obvious way from raw events (the reference)."""
    meter = _fresh(meter)
    return aggregate(meter.aggregation, _raw_rows(meter, customer_id, [(start, end)]))


# ------------------------------------------------------------------------------ summaries


@dataclass(frozen=True, slots=True)
class SummaryWindow:
    start: datetime
    end: datetime
    partial: Partial
    value: Decimal | None


@dataclass(frozen=True, slots=True)
class MeterSummary:
    windows: list[SummaryWindow]
    total: Partial
    total_value: Decimal | None


def meter_summaries(
    *,
    meter: Meter,
    start: datetime,
    end: datetime,
    window: str,
    tz: str = "UTC",
    customer_id: int | None = None,
    limit: int = MAX_SUMMARY_WINDOWS,
) -> MeterSummary:
    """The meter over ``[start, end)`` cut into local hours, days, weeks (from Monday) or
    months (from the 1st) of ``tz`` (R-M7), for one customer or all.

    Raises ``ValueError`` (bad window, zone or dates) or ``windows.TooManyWindows``.
    """
    meter = _fresh(meter)
    spans = summary_windows(start, end, window, tz, limit=limit)
    starts = [s for s, _ in spans]
    partials = [EMPTY] * len(spans)

    def add_rows(rows):
        for ts, key, value in rows:
            i = bisect_right(starts, ts) - 1
            if 0 <= i < len(spans) and ts < spans[i][1]:
                partials[i] = merge(partials[i], Partial.of_event(ts, key, value))

    if meter.backfill_status != BackfillStatus.DONE:
        add_rows(_raw_rows(meter, customer_id, [(spans[0][0], spans[-1][1])] if spans else []))
    else:
        plans = [plan(s, e) for s, e in spans]
        buckets = _bucket_partials(meter, customer_id, [seg for p in plans for seg in p.segments])
        for i, p in enumerate(plans):
            partials[i] = _merge_plan_buckets(p.segments, buckets)
        edges = [edge for p in plans for edge in p.edges]
        add_rows(_raw_rows(meter, customer_id, edges, small=customer_id is not None))
    aggregation = meter.aggregation
    windows = [
        SummaryWindow(s, e, p, p.value(aggregation))
        for (s, e), p in zip(spans, partials, strict=True)
    ]
    total = merge_all(partials)
    return MeterSummary(windows=windows, total=total, total_value=total.value(aggregation))


@dataclass(frozen=True, slots=True)
class MeterChart:
    """Several meters over the same local windows (R-M7); ``window`` may be coarser than the
    one asked for (``requested_window``) when that one gives too many points."""

    requested_window: str
    window: str
    spans: list[tuple[datetime, datetime]]
    summaries: list[tuple[Meter, MeterSummary]]

    @property
    def coarsened(self) -> bool:
        return self.window != self.requested_window


def meter_chart(
    *,
    meters: Iterable[Meter],
    start: datetime,
    end: datetime,
    window: str,
    tz: str = "UTC",
    customer_id: int | None = None,
    max_points: int = MAX_CHART_POINTS,
) -> MeterChart:
    """``meter_summaries`` of each meter over ``[start, end)``, by ``window`` (day, week or
    month of ``tz``) or, past ``max_points`` windows, the first coarser one that fits.

    Raises ``ValueError`` (bad window, zone or dates) or ``TooManyWindows`` when even months
    are too many.
    """
    if window not in CHART_WINDOWS:
        raise ValueError(f"window must be one of {', '.join(CHART_WINDOWS)}.")
    for candidate in CHART_WINDOWS[CHART_WINDOWS.index(window) :]:
        try:
            spans = summary_windows(start, end, candidate, tz, limit=max_points)
        except TooManyWindows:
            continue
        summaries = [
            (
                meter,
                meter_summaries(
                    meter=meter,
                    start=start,
                    end=end,
                    window=candidate,
                    tz=tz,
                    customer_id=customer_id,
                    limit=max_points,
                ),
            )
            for meter in meters
        ]
        return MeterChart(window, candidate, spans, summaries)
    raise TooManyWindows(f"More than {max_points} months; choose a shorter range.")


def meter_value_upper_bounds(
    *, meter: Meter, customer_ids: set[int], start: datetime, end: datetime
) -> dict[int, Decimal] | None:
    """Per customer, a value no range inside ``[start, end)`` can exceed; one query.

    Read from the meter's day rollups over the whole days around the range (a superset of
    every alert's events): count -> count; max and last -> the maximum; sum -> count x the
    largest value (valid even with negative values). A customer without rollups there has
    nothing to fire on (absent from the result). None when rollups are being rebuilt.
    """
    if meter.backfill_status != BackfillStatus.DONE:
        return None
    rows = (
        MeterRollup.objects.filter(
            meter_id=meter.pk,
            generation=meter.generation,
            granularity=Granularity.DAY,
            customer_id__in=customer_ids,
            bucket_start__gte=bucket_floor(start, DAY),
            bucket_start__lt=bucket_ceil(end, DAY),
        )
        .values("customer_id")
        .annotate(n=Sum("count"), largest=DecimalMax("maximum"))
        .values_list("customer_id", "n", "largest")
    )
    bounds = {}
    for customer_id, count, largest in rows:
        if meter.aggregation == "count":
            bounds[customer_id] = Decimal(count)
        elif largest is not None:
            largest = Decimal(largest)
            bounds[customer_id] = (
                count * max(largest, Decimal(0)) if meter.aggregation == "sum" else largest
            )
    return bounds


def meter_customers_with_usage(*, meter: Meter, since: datetime) -> set[int]:
    """Customers with any usage of the meter since ``since`` (from day rollups, one query)."""
    recent = MeterRollup.objects.filter(
        meter_id=meter.pk,
        generation=meter.generation,
        granularity=Granularity.DAY,
        bucket_start__gte=bucket_floor(since, DAY),
    ).values_list("customer_id", flat=True)
    return set(recent.distinct())
