"""billing.periods: billing periods and reset windows in a zone (R-L3, DESIGN.md §4).

Pure tests: no database, no Django.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import billing.periods as periods_module
from billing.periods import (
    INTERVALS,
    next_reset,
    period_at,
    periods_between,
    reset_window,
    shift,
    validate_timezone,
)

LA = "America/Los_Angeles"
ZONES = [
    LA,
    "Etc/GMT+8",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Europe/Istanbul",
    "Australia/Lord_Howe",
    "UTC",
]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(tz: str, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz), fold=fold)


# --------------------------------------------------------------------------- R-L3


def test_r_l3_monthly_reset_in_pacific_time_follows_dst():
    """R-L3: limits reset on the 1st of each month in Pacific time (America/Los_Angeles).

    2026-11-21T10:00Z: the window opened 2026-11-01 00:00 PDT (07:00Z) and closes
    2026-12-01 00:00 PST (08:00Z).
    """
    at = utc(2026, 11, 21, 10)
    assert reset_window(at, "month", LA) == (utc(2026, 11, 1, 7), utc(2026, 12, 1, 8))
    assert next_reset(at, "month", LA) == utc(2026, 12, 1, 8)


def test_r_l3_monthly_reset_in_fixed_utc_minus_8():
    """R-L3: with a fixed UTC-8 (Etc/GMT+8) both ends are at 08:00Z."""
    at = utc(2026, 11, 21, 10)
    assert reset_window(at, "month", "Etc/GMT+8") == (utc(2026, 11, 1, 8), utc(2026, 12, 1, 8))
    assert next_reset(at, "month", "Etc/GMT+8") == utc(2026, 12, 1, 8)


def test_r_l3_reset_is_computed_in_the_zone_not_in_utc():
    """R-L3: 2026-12-01T05:00Z is still November in Los Angeles: no reset yet."""
    at = utc(2026, 12, 1, 5)
    assert reset_window(at, "month", LA)[0] == utc(2026, 11, 1, 7)
    assert reset_window(at, "month", "UTC")[0] == utc(2026, 12, 1)
    # a minute after the Pacific reset instant, a new window has opened
    assert reset_window(utc(2026, 12, 1, 8, 1), "month", LA) == (
        utc(2026, 12, 1, 8),
        utc(2027, 1, 1, 8),
    )


def test_reset_day_window_in_half_and_quarter_hour_zones():
    """R-L3 (zone, not UTC): a day in Asia/Kolkata (+05:30) starts at 18:30Z."""
    at = utc(2026, 11, 21, 10)
    assert reset_window(at, "day", "Asia/Kolkata") == (utc(2026, 11, 20, 18, 30),
                                                       utc(2026, 11, 21, 18, 30))  # fmt: skip
    assert reset_window(utc(2026, 11, 21, 19), "day", "Asia/Kolkata")[0] == utc(
        2026, 11, 21, 18, 30
    )
    assert reset_window(at, "day", "Asia/Kathmandu")[0] == utc(2026, 11, 20, 18, 15)


def test_reset_week_and_year_windows():
    at = utc(2026, 11, 21, 10)  # a Saturday
    assert reset_window(at, "week", "UTC") == (utc(2026, 11, 16), utc(2026, 11, 23))
    assert reset_window(at, "week", LA) == (utc(2026, 11, 16, 8), utc(2026, 11, 23, 8))
    assert reset_window(at, "year", LA) == (utc(2026, 1, 1, 8), utc(2027, 1, 1, 8))
    assert next_reset(at, "year", "Europe/Istanbul") == utc(2026, 12, 31, 21)


def test_reset_day_window_on_dst_days_is_23_or_25_hours():
    spring = reset_window(utc(2026, 3, 8, 20), "day", LA)
    assert spring == (utc(2026, 3, 8, 8), utc(2026, 3, 9, 7))
    autumn = reset_window(utc(2026, 11, 1, 20), "day", LA)
    assert autumn == (utc(2026, 11, 1, 7), utc(2026, 11, 2, 8))


def test_reset_billing_period_is_the_billing_period():
    anchor = utc(2026, 1, 31, 15)
    at = utc(2026, 3, 5)
    window = reset_window(at, "billing_period", LA, billing_anchor=anchor, billing_interval="month")
    assert window == period_at(anchor, "month", at, LA)
    assert (
        next_reset(at, "billing_period", LA, billing_anchor=anchor, billing_interval="month")
        == window[1]
    )
    with pytest.raises(ValueError):
        reset_window(at, "billing_period", LA)
    with pytest.raises(ValueError):
        reset_window(at, "fortnight", LA)


# --------------------------------------------------------------------------- shift


def test_shift_month_end_clamps_relative_to_the_original_anchor():
    anchor = utc(2026, 1, 31, 9, 30)
    got = [shift(anchor, "month", n, "UTC") for n in range(0, 5)]
    assert got == [
        utc(2026, 1, 31, 9, 30),
        utc(2026, 2, 28, 9, 30),
        utc(2026, 3, 31, 9, 30),  # not Mar 28
        utc(2026, 4, 30, 9, 30),
        utc(2026, 5, 31, 9, 30),
    ]
    assert shift(utc(2028, 1, 31), "month", 1, "UTC") == utc(2028, 2, 29)  # leap year
    assert shift(anchor, "month", -2, "UTC") == utc(2025, 11, 30, 9, 30)


def test_shift_year_from_february_29():
    anchor = utc(2024, 2, 29)
    assert shift(anchor, "year", 1, "UTC") == utc(2025, 2, 28)
    assert shift(anchor, "year", 4, "UTC") == utc(2028, 2, 29)


def test_shift_keeps_the_local_wall_clock_across_dst():
    anchor = local(LA, 2026, 3, 1)  # midnight PST
    assert shift(anchor, "day", 7, LA) == utc(2026, 3, 8, 8)  # DST starts 02:00 that day
    assert shift(anchor, "day", 8, LA) == utc(2026, 3, 9, 7)  # midnight PDT
    assert shift(anchor, "week", 1, LA) == utc(2026, 3, 8, 8)
    assert shift(anchor, "week", 2, LA) == utc(2026, 3, 15, 7)
    assert shift(anchor, "month", 1, LA) == utc(2026, 4, 1, 7)
    assert shift(local("Etc/GMT+8", 2026, 3, 1), "month", 1, "Etc/GMT+8") == utc(2026, 4, 1, 8)


def test_shift_resolves_nonexistent_and_ambiguous_wall_times_deterministically():
    # 02:30 does not exist on 2026-03-08 in Los Angeles: moved forward by the 1 h gap
    anchor = local(LA, 2026, 3, 7, 2, 30)
    moved = shift(anchor, "day", 1, LA)
    assert moved == utc(2026, 3, 8, 10, 30)
    assert moved.astimezone(ZoneInfo(LA)).time() == time(3, 30)
    assert shift(anchor, "day", 2, LA).astimezone(ZoneInfo(LA)).time() == time(2, 30)
    # 01:30 happens twice on 2026-11-01: the first occurrence (PDT, fold=0) is used
    anchor = local(LA, 2026, 10, 31, 1, 30)
    assert shift(anchor, "day", 1, LA) == utc(2026, 11, 1, 8, 30)
    # n=0 is the anchor itself, even on the second pass of an ambiguous hour
    second = local(LA, 2026, 11, 1, 1, 30, fold=1)
    assert shift(second, "day", 0, LA) == utc(2026, 11, 1, 9, 30)
    assert shift(second, "day", 1, LA) == utc(2026, 11, 2, 9, 30)


def test_outputs_are_utc():
    anchor = local("Asia/Kolkata", 2026, 1, 15, 12)
    assert shift(anchor, "month", 1, "Asia/Kolkata").tzinfo is UTC
    start, end = period_at(anchor, "month", utc(2026, 5, 1), "Asia/Kolkata")
    assert start.tzinfo is UTC and end.tzinfo is UTC
    assert reset_window(utc(2026, 5, 1), "day", "Asia/Kolkata")[0].tzinfo is UTC


def test_naive_datetimes_bad_zones_and_intervals_are_refused():
    naive = datetime(2026, 1, 1)
    aware = utc(2026, 1, 1)
    with pytest.raises(ValueError):
        shift(naive, "month", 1, "UTC")
    with pytest.raises(ValueError):
        period_at(aware, "month", naive, "UTC")
    with pytest.raises(ValueError):
        periods_between(aware, "month", "UTC", naive, aware)
    with pytest.raises(ValueError):
        reset_window(naive, "day", "UTC")
    with pytest.raises(ValueError):
        shift(aware, "fortnight", 1, "UTC")
    for bad in ("UTC-08:00", "-08:00", "UTC-8", "Mars/Olympus", "", " UTC", "../etc/passwd"):
        with pytest.raises(ValueError):
            validate_timezone(bad)
        with pytest.raises(ValueError):
            shift(aware, "day", 1, bad)
    assert validate_timezone("Etc/GMT+8") == "Etc/GMT+8"
    with pytest.raises(ValueError):
        shift(aware, "year", 10**6, "UTC")


# --------------------------------------------------------------------------- period_at


def test_period_at_examples():
    anchor = utc(2026, 1, 31, 8)
    assert period_at(anchor, "month", anchor, LA) == (anchor, utc(2026, 2, 28, 8))
    assert period_at(anchor, "month", utc(2026, 3, 30), LA) == (
        utc(2026, 2, 28, 8),
        utc(2026, 3, 31, 7),  # 00:00 PDT: the anchor's wall clock is kept
    )
    assert period_at(anchor, "month", utc(2026, 3, 31, 7), LA)[0] == utc(2026, 3, 31, 7)
    with pytest.raises(ValueError):
        period_at(anchor, "month", anchor - timedelta(microseconds=1), LA)


def test_period_at_is_constant_time(monkeypatch):
    """k is estimated arithmetically, not found by walking from the anchor."""
    calls = []
    real_shift = periods_module.shift

    def counting_shift(*args, **kwargs):
        calls.append(args)
        return real_shift(*args, **kwargs)

    monkeypatch.setattr(periods_module, "shift", counting_shift)
    anchor = local(LA, 1990, 1, 31, 23, 59)
    start, end = period_at(anchor, "day", utc(2040, 7, 4, 12), LA)
    assert start <= utc(2040, 7, 4, 12) < end
    assert len(calls) <= 6
    calls.clear()
    period_at(anchor, "month", utc(2040, 7, 4, 12), LA)
    assert len(calls) <= 6


def test_periods_between_catches_up_missed_closes():
    anchor = utc(2026, 1, 31)
    got = periods_between(anchor, "month", "UTC", utc(2026, 2, 1), utc(2026, 5, 31))
    assert got == [
        (utc(2026, 1, 31), utc(2026, 2, 28)),
        (utc(2026, 2, 28), utc(2026, 3, 31)),
        (utc(2026, 3, 31), utc(2026, 4, 30)),
        (utc(2026, 4, 30), utc(2026, 5, 31)),  # end == until: included
    ]
    # end == since: excluded (already closed)
    assert periods_between(anchor, "month", "UTC", utc(2026, 2, 28), utc(2026, 3, 31)) == [
        (utc(2026, 2, 28), utc(2026, 3, 31))
    ]
    assert periods_between(anchor, "month", "UTC", utc(2026, 3, 1), utc(2026, 3, 30)) == []
    assert periods_between(anchor, "month", "UTC", utc(2026, 5, 1), utc(2026, 4, 1)) == []
    # since before the anchor
    assert periods_between(anchor, "week", "UTC", utc(2025, 1, 1), utc(2026, 2, 7)) == [
        (utc(2026, 1, 31), utc(2026, 2, 7))
    ]


def test_zone_that_skipped_a_day_yields_no_empty_period():
    """Pacific/Apia skipped 2011-12-30: the daily period that would start then is empty."""
    tz = "Pacific/Apia"
    anchor = local(tz, 2011, 12, 28, 12)
    got = periods_between(anchor, "day", tz, anchor, anchor + timedelta(days=4))
    assert all(start < end for start, end in got)
    assert all(a[1] == b[0] for a, b in zip(got, got[1:], strict=False))
    for hours in range(0, 72, 5):
        at = anchor + timedelta(hours=hours)
        start, end = period_at(anchor, "day", at, tz)
        assert start <= at < end


# --------------------------------------------------------------------------- properties


@cache
def transitions(tz: str) -> tuple[datetime, ...]:
    """UTC instants (to the minute) where ``tz`` changes offset, 2000-2040."""
    zone = ZoneInfo(tz)
    found = []
    day = utc(2000, 1, 1)
    while day < utc(2040, 1, 1):
        nxt = day + timedelta(days=1)
        if day.astimezone(zone).utcoffset() != nxt.astimezone(zone).utcoffset():
            lo, hi = day, nxt
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(zone).utcoffset() == lo.astimezone(zone).utcoffset():
                    lo = mid
                else:
                    hi = mid
            found.append(hi)
        day = nxt
    return tuple(found)


zones = st.sampled_from(ZONES)
intervals = st.sampled_from(INTERVALS)
uniform_instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2039, 12, 31), timezones=st.just(UTC)
)


@st.composite
def instants_for(draw, tz: str):
    """Random instants, half of them within two days of one of the zone's DST transitions."""
    changes = transitions(tz)
    if changes and draw(st.booleans()):
        base = draw(st.sampled_from(changes))
        return base + timedelta(seconds=draw(st.integers(-2 * 86400, 2 * 86400)))
    return draw(uniform_instants)


@st.composite
def zone_and_instant(draw):
    tz = draw(zones)
    return tz, draw(instants_for(tz))


@given(zone_and_instant(), st.sampled_from(["day", "week", "month", "year"]))
@settings(max_examples=300, deadline=None)
def test_reset_window_contains_at_and_starts_at_local_midnight(zone_at, reset_interval):
    tz, at = zone_at
    zone = ZoneInfo(tz)
    start, end = reset_window(at, reset_interval, tz)
    assert start <= at < end
    assert start.tzinfo is UTC and end.tzinfo is UTC
    for edge in (start, end):
        wall = edge.astimezone(zone)
        assert wall.time() == time(0)
        if reset_interval == "week":
            assert wall.weekday() == 0
        if reset_interval == "month":
            assert wall.day == 1
        if reset_interval == "year":
            assert (wall.month, wall.day) == (1, 1)
    # the next window starts where this one ends
    assert reset_window(end, reset_interval, tz)[0] == end
    assert next_reset(at, reset_interval, tz) == end


@given(
    zones,
    st.integers(2000, 2030),
    st.integers(1, 12),
    st.integers(1, 31),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(-240, 240),
    st.sampled_from(["month", "year"]),
)
@settings(max_examples=300, deadline=None)
def test_shift_keeps_the_anchor_day_or_clamps(tz, year, month, day, hour, minute, n, interval):
    zone = ZoneInfo(tz)
    day = min(day, calendar.monthrange(year, month)[1])
    anchor = datetime(year, month, day, hour, minute, tzinfo=zone)
    result = shift(anchor, interval, n, tz)
    months = n if interval == "month" else 12 * n
    target_year, target_month0 = divmod(year * 12 + month - 1 + months, 12)
    target_month = target_month0 + 1
    expected_day = min(day, calendar.monthrange(target_year, target_month)[1])
    wall = datetime(target_year, target_month, expected_day, hour, minute)
    got = result.astimezone(zone).replace(tzinfo=None)
    exists = wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall
    if exists:
        assert got == wall  # same day (clamped) and same wall-clock time
    else:
        assert got.date() == wall.date() and got > wall  # moved forward out of a DST gap
        assert got - wall <= timedelta(hours=1)


@given(
    zones,
    intervals,
    st.data(),
)
@settings(max_examples=300, deadline=None)
def test_period_at_contains_at_and_windows_are_contiguous_and_ordered(tz, interval, data):
    anchor = data.draw(instants_for(tz), label="anchor")
    at = data.draw(instants_for(tz), label="at")
    if at < anchor:
        anchor, at = at, anchor
    start, end = period_at(anchor, interval, at, tz)
    assert start <= at < end
    assert anchor <= start
    # contiguous: the next period starts where this one ends, the previous ends where it starts
    nxt_start, nxt_end = period_at(anchor, interval, end, tz)
    assert nxt_start == end < nxt_end
    if start > anchor:
        prev_start, prev_end = period_at(anchor, interval, start - timedelta(microseconds=1), tz)
        assert prev_start < prev_end == start
    else:
        assert start == anchor


@given(zones, intervals, st.data())
@settings(max_examples=150, deadline=None)
def test_periods_between_lists_every_end_in_the_range(tz, interval, data):
    anchor = data.draw(instants_for(tz), label="anchor")
    since = anchor + timedelta(hours=data.draw(st.integers(-500, 20000), label="since_h"))
    until = since + timedelta(hours=data.draw(st.integers(0, 6000), label="span_h"))
    got = periods_between(anchor, interval, tz, since, until)
    for start, end in got:
        assert since < end <= until
        assert period_at(anchor, interval, start, tz) == (start, end)
    assert all(a[1] == b[0] for a, b in zip(got, got[1:], strict=False))
    # nothing missed at either edge
    first_end = period_at(anchor, interval, max(since, anchor), tz)[1]
    if got:
        assert got[0][1] == first_end
        assert period_at(anchor, interval, got[-1][1], tz)[1] > until
    else:
        assert first_end > until
