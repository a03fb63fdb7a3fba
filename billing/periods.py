"""Billing periods and quota reset windows in a time zone (DESIGN.md §3-4, R-Q1, R-L3).

Pure logic: standard library only (no Django), so it can be unit- and property-tested alone.

Conventions
-----------
* Every input datetime must be *aware*; a naive one raises ``ValueError``. Every output is an
  aware datetime in UTC (``datetime.UTC``, i.e. ``datetime.timezone.utc``), ready to be stored.
* Calendar arithmetic happens on the **local wall clock** of an IANA zone (``zoneinfo``): a
  monthly period anchored at 00:00 local starts at 00:00 local every month, whatever DST does.
* Zones are IANA names only (``validate_timezone``). R-L3's "UTC-8 (Pacific)" is modelled as
  ``America/Los_Angeles`` (Pacific time, follows DST: UTC-8 in winter, UTC-7 in summer). When a
  *fixed* UTC-8 is really wanted, use ``Etc/GMT+8`` (POSIX sign convention: ``Etc/GMT+8`` *is*
  UTC-08:00 all year). Fixed-offset strings such as ``"UTC-08:00"`` are deliberately refused.
* Local times that do not exist or exist twice are resolved deterministically (PEP 495
  ``fold=0``):
    - an **ambiguous** wall time (the repeated hour when clocks go back) is the *first*
      occurrence (the earlier instant, still on summer time);
    - a **nonexistent** wall time (inside the gap when clocks go forward) is moved *forward by
      the gap*: 02:30 on a spring-forward night in Los Angeles becomes 03:30 PDT.
* Intervals: ``"day"``, ``"week"``, ``"month"``, ``"year"``. Month and year steps are counted
  from the *original* anchor and the day of month is clamped to the target month's length:
  anchor Jan 31 -> Feb 28 (29 in leap years) -> Mar 31 -> Apr 30 ..., never drifting to the 28th.
"""

from __future__ import annotations

import calendar
import operator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "INTERVALS",
    "RESET_INTERVALS",
    "UTC",
    "next_reset",
    "period_at",
    "periods_between",
    "reset_window",
    "shift",
    "validate_interval",
    "validate_timezone",
]

INTERVALS: tuple[str, ...] = ("day", "week", "month", "year")
RESET_INTERVALS: tuple[str, ...] = ("billing_period", *INTERVALS)

_MONTHS_PER_STEP = {"month": 1, "year": 12}
_DAYS_PER_STEP = {"day": 1, "week": 7}


# --------------------------------------------------------------------------- validation


def validate_timezone(name: str) -> str:
    """Return ``name`` if it is a usable IANA zone name, else raise ``ValueError``."""
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. America/Los_Angeles).")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. America/Los_Angeles).") from exc
    return name


def validate_interval(interval: str) -> str:
    """Return ``interval`` if it is one of ``INTERVALS``, else raise ``ValueError``."""
    if interval not in INTERVALS:
        raise ValueError(f"Unknown interval {interval!r}; expected one of {', '.join(INTERVALS)}.")
    return interval


def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(validate_timezone(tz))


def _aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(value).__name__}.")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime (with a time zone), got {value!r}.")
    # Normalise to UTC: Python compares/subtracts two datetimes sharing a tzinfo by wall clock,
    # which is wrong across a DST fold; UTC instants always compare by elapsed time.
    return value.astimezone(UTC)


# --------------------------------------------------------------------------- local time


def _from_local(wall: datetime, zone: ZoneInfo) -> datetime:
    """A naive local wall time in ``zone`` -> the UTC instant (fold=0; gaps move forward).

    With ``fold=0`` zoneinfo applies the offset in force *before* a transition. For an
    ambiguous time that is the first occurrence; for a time in a gap that is the pre-gap
    offset, which lands the instant ``gap`` later on the wall clock (02:30 -> 03:30).
    """
    try:
        return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    except OverflowError as exc:  # the edges of year 1 / year 9999
        raise ValueError("Date out of range.") from exc


def _to_local(value: datetime, zone: ZoneInfo) -> datetime:
    """An aware instant -> naive local wall time in ``zone``."""
    return value.astimezone(zone).replace(tzinfo=None, fold=0)


def _add_months(wall: datetime, months: int, day: int) -> datetime:
    """Naive ``wall`` moved by ``months`` calendar months, day clamped from ``day``."""
    index = wall.year * 12 + (wall.month - 1) + months
    year, month0 = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise ValueError("Date out of range.")
    month = month0 + 1
    return wall.replace(year=year, month=month, day=min(day, calendar.monthrange(year, month)[1]))


def _shift_wall(wall: datetime, interval: str, n: int) -> datetime:
    try:
        if interval in _DAYS_PER_STEP:
            return wall + timedelta(days=_DAYS_PER_STEP[interval] * n)
        return _add_months(wall, _MONTHS_PER_STEP[interval] * n, wall.day)
    except OverflowError as exc:
        raise ValueError("Date out of range.") from exc


# --------------------------------------------------------------------------- billing periods


def shift(anchor: datetime, interval: str, n: int, tz: str) -> datetime:
    """``anchor`` plus ``n`` intervals on the local calendar of ``tz``, as a UTC instant.

    The anchor's local wall-clock time is kept across DST changes; months and years clamp the
    day of month relative to the *anchor's* day (Jan 31 + 1 month = Feb 28/29, + 2 = Mar 31).
    ``n`` may be negative. ``n == 0`` returns the anchor itself (in UTC), even when its wall
    time is the second occurrence of an ambiguous hour; any other ``n`` resolves the wall time
    with fold=0 (see the module docstring).
    """
    anchor = _aware(anchor, "anchor")
    validate_interval(interval)
    n = operator.index(n)
    zone = _zone(tz)
    if n == 0:
        return anchor
    return _from_local(_shift_wall(_to_local(anchor, zone), interval, n), zone)


def _estimate_index(anchor_wall: datetime, at_wall: datetime, interval: str) -> int:
    """Index k of the period containing ``at``, from wall clocks; exact up to +-1."""
    if interval in _DAYS_PER_STEP:
        return (at_wall - anchor_wall).days // _DAYS_PER_STEP[interval]
    months = (at_wall.year - anchor_wall.year) * 12 + (at_wall.month - anchor_wall.month)
    return months // _MONTHS_PER_STEP[interval]


def _index_at(anchor: datetime, interval: str, at: datetime, zone: ZoneInfo, tz: str) -> int:
    """The largest k >= 0 with shift(k) <= at (so shift(k+1) > at)."""
    k = max(0, _estimate_index(_to_local(anchor, zone), _to_local(at, zone), interval))
    # The estimate is off by at most one step (DST, clamping, time of day); these loops run a
    # couple of times at most. shift() is non-decreasing in k, so they terminate.
    while k > 0 and shift(anchor, interval, k, tz) > at:
        k -= 1
    while shift(anchor, interval, k + 1, tz) <= at:
        k += 1
    return k


def period_at(anchor: datetime, interval: str, at: datetime, tz: str) -> tuple[datetime, datetime]:
    """The billing period ``[start, end)`` that contains ``at``.

    Period k is ``[shift(anchor, k), shift(anchor, k + 1))`` for k >= 0. Raises ``ValueError``
    when ``at`` is before the anchor. Cost is O(1): k is estimated from the calendar, then
    corrected by at most a step or two.
    """
    anchor = _aware(anchor, "anchor")
    at = _aware(at, "at")
    validate_interval(interval)
    zone = _zone(tz)
    if at < anchor:
        raise ValueError(f"{at.isoformat()} is before the billing anchor {anchor.isoformat()}.")
    k = _index_at(anchor, interval, at, zone, tz)
    return shift(anchor, interval, k, tz), shift(anchor, interval, k + 1, tz)


def periods_between(
    anchor: datetime, interval: str, tz: str, since: datetime, until: datetime
) -> list[tuple[datetime, datetime]]:
    """Every period whose **end** is in ``(since, until]``, oldest first.

    Used to catch up period closes that were missed (a worker was down, a simulation clock
    jumped). A period left empty by a zone that skipped whole days (e.g. Pacific/Apia on
    2011-12-30) is not returned.
    """
    anchor = _aware(anchor, "anchor")
    since = _aware(since, "since")
    until = _aware(until, "until")
    validate_interval(interval)
    zone = _zone(tz)
    if until <= since:
        return []
    k = 0 if since < anchor else _index_at(anchor, interval, since, zone, tz)
    result: list[tuple[datetime, datetime]] = []
    start = shift(anchor, interval, k, tz)
    while True:
        end = shift(anchor, interval, k + 1, tz)
        if end > until:
            return result
        if since < end and start < end:
            result.append((start, end))
        start, k = end, k + 1


# --------------------------------------------------------------------------- reset windows


def _calendar_start(day: date, reset_interval: str) -> date:
    if reset_interval == "day":
        return day
    if reset_interval == "week":
        return day - timedelta(days=day.weekday())  # Monday
    if reset_interval == "month":
        return day.replace(day=1)
    return day.replace(month=1, day=1)  # year


def _calendar_next(day: date, reset_interval: str) -> date:
    """The next calendar window start after ``day`` (itself a window start)."""
    if reset_interval == "day":
        return day + timedelta(days=1)
    if reset_interval == "week":
        return day + timedelta(days=7)
    if reset_interval == "month":
        return date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return date(day.year + 1, 1, 1)


def _calendar_prev(day: date, reset_interval: str) -> date:
    return _calendar_start(day - timedelta(days=1), reset_interval)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return _from_local(datetime(day.year, day.month, day.day), zone)


def reset_window(
    at: datetime,
    reset_interval: str,
    tz: str,
    *,
    billing_anchor: datetime | None = None,
    billing_interval: str | None = None,
) -> tuple[datetime, datetime]:
    """The usage-based quota window ``[start, end)`` that contains ``at`` (R-Q1, R-L3).

    * ``"day"``: local midnight to the next local midnight;
    * ``"week"``: Monday 00:00 local to the next Monday 00:00;
    * ``"month"``: the 1st 00:00 local to the next 1st;
    * ``"year"``: Jan 1 00:00 local to the next Jan 1;
    * ``"billing_period"``: ``period_at(billing_anchor, billing_interval, at, tz)``.

    A local midnight that falls in a DST gap is moved forward by the gap (see module docs).
    """
    at = _aware(at, "at")
    zone = _zone(tz)
    if reset_interval == "billing_period":
        if billing_anchor is None or billing_interval is None:
            raise ValueError(
                "reset_interval 'billing_period' needs billing_anchor and billing_interval."
            )
        return period_at(billing_anchor, billing_interval, at, tz)
    if reset_interval not in INTERVALS:
        raise ValueError(
            f"Unknown reset interval {reset_interval!r}; "
            f"expected one of {', '.join(RESET_INTERVALS)}."
        )
    first = _calendar_start(at.astimezone(zone).date(), reset_interval)
    start, end = _midnight(first, zone), _midnight(_calendar_next(first, reset_interval), zone)
    # Guard against exotic transitions around midnight (a fall-back that crosses midnight):
    # the window found from the local date must still contain the instant.
    for _ in range(4):
        if at < start:
            first = _calendar_prev(first, reset_interval)
        elif at >= end:
            first = _calendar_next(first, reset_interval)
        else:
            break
        start = _midnight(first, zone)
        end = _midnight(_calendar_next(first, reset_interval), zone)
    return start, end


def next_reset(
    at: datetime,
    reset_interval: str,
    tz: str,
    *,
    billing_anchor: datetime | None = None,
    billing_interval: str | None = None,
) -> datetime:
    """When the quota window containing ``at`` ends (= the next reset instant)."""
    return reset_window(
        at,
        reset_interval,
        tz,
        billing_anchor=billing_anchor,
        billing_interval=billing_interval,
    )[1]
