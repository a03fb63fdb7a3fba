"""Time arithmetic for rollups and summaries: UTC buckets, window decomposition, local windows.

No Django. Rollup buckets are UTC-aligned 15-minute, 1-hour and 1-day slices. Any window
``[start, end)`` is read as whole days, then whole hours, then quarter hours, greedily from
the largest, plus at most two raw-event edges shorter than 15 minutes where ``start`` or
``end`` are not on a quarter hour. Every real zone offset (UTC-8, +05:30, +05:45) is a
multiple of 15 minutes, so windows from one local midnight to another need no raw edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from billing.periods import reset_window, validate_timezone

QUARTER_HOUR = 900
HOUR = 3600
DAY = 86400
GRANULARITIES: tuple[int, ...] = (DAY, HOUR, QUARTER_HOUR)  # largest first
SUMMARY_WINDOWS: tuple[str, ...] = ("hour", "day", "week", "month")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STEPS = {g: timedelta(seconds=g) for g in GRANULARITIES}


def bucket_floor(ts: datetime, granularity: int) -> datetime:
    """The start (UTC) of the ``granularity``-second bucket containing ``ts`` (exact)."""
    step = _STEPS[granularity]
    return _EPOCH + ((ts - _EPOCH) // step) * step


def bucket_ceil(ts: datetime, granularity: int) -> datetime:
    floor = bucket_floor(ts, granularity)
    return floor if floor == ts else floor + _STEPS[granularity]


def quarter_floor(ts: datetime) -> datetime:
    return _EPOCH + ((ts - _EPOCH) // _STEPS[QUARTER_HOUR]) * _STEPS[QUARTER_HOUR]


@dataclass(frozen=True, slots=True)
class Segment:
    """Every ``granularity`` bucket whose start is in ``[start, end)`` (both aligned)."""

    granularity: int
    start: datetime
    end: datetime

    def buckets(self) -> list[datetime]:
        step = _STEPS[self.granularity]
        count = (self.end - self.start) // step
        return [self.start + i * step for i in range(count)]


@dataclass(frozen=True, slots=True)
class Plan:
    """How to read ``[start, end)``: rollup segments plus raw-event edges (< 15 min each)."""

    segments: tuple[Segment, ...]
    edges: tuple[tuple[datetime, datetime], ...]


def plan(start: datetime, end: datetime) -> Plan:
    if end <= start:
        return Plan((), ())
    a, b = bucket_ceil(start, QUARTER_HOUR), bucket_floor(end, QUARTER_HOUR)
    if a >= b:
        return Plan((), ((start, end),))
    edges = []
    if start < a:
        edges.append((start, a))
    if b < end:
        edges.append((b, end))
    segments: list[Segment] = []
    _cover(a, b, 0, segments)
    return Plan(tuple(segments), tuple(edges))


def _cover(x: datetime, y: datetime, level: int, out: list[Segment]) -> None:
    """Cover the quarter-aligned ``[x, y)`` with the largest buckets first."""
    if x >= y:
        return
    granularity = GRANULARITIES[level]
    if granularity == QUARTER_HOUR:
        out.append(Segment(granularity, x, y))
        return
    c, d = bucket_ceil(x, granularity), bucket_floor(y, granularity)
    if c >= d:
        _cover(x, y, level + 1, out)
        return
    _cover(x, c, level + 1, out)
    out.append(Segment(granularity, c, d))
    _cover(d, y, level + 1, out)


def merge_segments(segments: list[Segment]) -> list[Segment]:
    """Adjacent or overlapping segments of one granularity joined (fewer, wider range reads)."""
    merged: list[Segment] = []
    for seg in sorted(segments, key=lambda s: (s.granularity, s.start)):
        last = merged[-1] if merged else None
        if last and last.granularity == seg.granularity and seg.start <= last.end:
            if seg.end > last.end:
                merged[-1] = Segment(seg.granularity, last.start, seg.end)
        else:
            merged.append(seg)
    return merged


# --------------------------------------------------------------------------- summaries


class TooManyWindows(ValueError):
    pass


def _next_local_hour(at: datetime, zone: ZoneInfo) -> datetime:
    local = at.astimezone(zone)
    floor = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    step = floor + timedelta(hours=1)
    # Re-floor on the local clock: zones with 30-minute DST shifts move the hour marks.
    refloored = step.astimezone(zone).replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    return refloored if refloored > at else step


def summary_windows(
    start: datetime, end: datetime, window: str, tz: str, *, limit: int
) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut at every local hour / midnight / Monday / 1st of ``tz``.

    The first and last windows are clipped to ``start`` and ``end``. Raises ``ValueError``
    for an unknown window or zone and ``TooManyWindows`` beyond ``limit`` windows.
    """
    if window not in SUMMARY_WINDOWS:
        raise ValueError(f"window must be one of {', '.join(SUMMARY_WINDOWS)}.")
    validate_timezone(tz)
    zone = ZoneInfo(tz)
    windows: list[tuple[datetime, datetime]] = []
    try:
        at, end = start.astimezone(UTC), end.astimezone(UTC)
        while at < end:
            if len(windows) >= limit:
                raise TooManyWindows(f"More than {limit} windows; use a larger window.")
            if window == "hour":
                boundary = _next_local_hour(at, zone)
            else:
                boundary = reset_window(at, window, tz)[1]
            nxt = min(end, boundary)
            windows.append((at, nxt))
            at = nxt
    except OverflowError as exc:  # local dates before year 1 or after 9999
        raise ValueError("Dates out of range.") from exc
    return windows
