"""Rollup read plans and summary windows (pure time arithmetic, no database)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metering.windows import (
    DAY,
    HOUR,
    QUARTER_HOUR,
    Segment,
    TooManyWindows,
    bucket_floor,
    merge_segments,
    plan,
    summary_windows,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
instants = st.integers(min_value=0, max_value=400 * 86400 * 10**6).map(
    lambda us: T0 + timedelta(microseconds=us)
)


def covered(p):
    """[(start, end)] of every rollup bucket and raw edge in a plan, sorted."""
    pieces = [(b, b + timedelta(seconds=s.granularity)) for s in p.segments for b in s.buckets()]
    return sorted(pieces + list(p.edges))


@settings(max_examples=300)
@given(instants, instants)
def test_plan_tiles_the_window_exactly(a, b):
    start, end = min(a, b), max(a, b)
    p = plan(start, end)
    pieces = covered(p)
    if start == end:
        assert pieces == []
        return
    # Contiguous, non-overlapping, from start to end.
    assert pieces[0][0] == start and pieces[-1][1] == end
    assert all(x[1] == y[0] for x, y in zip(pieces, pieces[1:], strict=False))
    # Raw edges are short; buckets are aligned to their granularity.
    assert len(p.edges) <= 2
    assert all(hi - lo < timedelta(minutes=15) or not p.segments for lo, hi in p.edges)
    for seg in p.segments:
        assert bucket_floor(seg.start, seg.granularity) == seg.start
        assert bucket_floor(seg.end, seg.granularity) == seg.end


def test_plan_uses_the_largest_buckets_first():
    start = datetime(2026, 3, 1, 10, 30, 5, tzinfo=UTC)
    end = datetime(2026, 3, 4, 2, 20, tzinfo=UTC)
    p = plan(start, end)
    assert [(s.granularity, s.start, s.end) for s in p.segments] == [
        (
            QUARTER_HOUR,
            datetime(2026, 3, 1, 10, 45, tzinfo=UTC),
            datetime(2026, 3, 1, 11, tzinfo=UTC),
        ),
        (HOUR, datetime(2026, 3, 1, 11, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)),
        (DAY, datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 4, tzinfo=UTC)),
        (HOUR, datetime(2026, 3, 4, tzinfo=UTC), datetime(2026, 3, 4, 2, tzinfo=UTC)),
        (
            QUARTER_HOUR,
            datetime(2026, 3, 4, 2, tzinfo=UTC),
            datetime(2026, 3, 4, 2, 15, tzinfo=UTC),
        ),
    ]
    assert p.edges == (
        (start, datetime(2026, 3, 1, 10, 45, tzinfo=UTC)),
        (datetime(2026, 3, 4, 2, 15, tzinfo=UTC), end),
    )


@pytest.mark.parametrize(
    "tz", ["America/Los_Angeles", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe"]
)
def test_local_midnight_windows_need_no_raw_events(tz):
    """UTC-8, +05:30, +05:45: every local day, week and month is whole quarter hours."""
    start = datetime(2026, 1, 1, tzinfo=ZoneInfo(tz))
    end = datetime(2027, 1, 1, tzinfo=ZoneInfo(tz))
    for window in ("day", "week", "month"):
        for s, e in summary_windows(start, end, window, tz, limit=1000):
            assert plan(s, e).edges == ()


def test_summary_windows_follow_the_local_calendar():
    la = ZoneInfo("America/Los_Angeles")
    start = datetime(2026, 3, 7, tzinfo=la)
    end = datetime(2026, 3, 10, tzinfo=la)
    days = summary_windows(start, end, "day", "America/Los_Angeles", limit=10)
    assert [e - s for s, e in days] == [
        timedelta(hours=24),
        timedelta(hours=23),
        timedelta(hours=24),
    ]
    weeks = summary_windows(start, end, "week", "America/Los_Angeles", limit=10)
    # Saturday 7th .. Monday 9th (a new week) .. 10th.
    assert [s.astimezone(la).day for s, _ in weeks] == [7, 9]
    months = summary_windows(
        datetime(2026, 1, 15, tzinfo=UTC),
        datetime(2026, 4, 1, tzinfo=UTC),
        "month",
        "UTC",
        limit=10,
    )
    assert [(s.month, s.day) for s, _ in months] == [(1, 15), (2, 1), (3, 1)]
    hours = summary_windows(
        datetime(2026, 1, 1, 4, 0, tzinfo=UTC),
        datetime(2026, 1, 1, 6, 0, tzinfo=UTC),
        "hour",
        "Asia/Kolkata",
        limit=10,
    )
    assert [(s.hour, s.minute) for s, _ in hours] == [(4, 0), (4, 30), (5, 30)]


def test_summary_windows_are_capped():
    with pytest.raises(TooManyWindows):
        summary_windows(T0, T0 + timedelta(days=42), "hour", "UTC", limit=1000)
    assert len(summary_windows(T0, T0 + timedelta(hours=1000), "hour", "UTC", limit=1000)) == 1000


def test_merge_segments_joins_adjacent_ranges():
    a = Segment(HOUR, T0, T0 + timedelta(hours=2))
    b = Segment(HOUR, T0 + timedelta(hours=2), T0 + timedelta(hours=5))
    c = Segment(DAY, T0, T0 + timedelta(days=1))
    assert merge_segments([b, c, a]) == [Segment(HOUR, T0, T0 + timedelta(hours=5)), c]
