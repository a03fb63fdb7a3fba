"""Quota windows (pure): resets in the offer's zone (R-Q1, R-L3) and seat levels (R-Q4)."""

from datetime import UTC, datetime, timedelta

from quotas.windows import QuotaTarget, Window


def target(**overrides) -> QuotaTarget:
    values = {
        "subscription_id": 1,
        "offer_service_id": 1,
        "customer_id": 1,
        "meter_id": 1,
        "kind": "usage_based",
        "reset_interval": "month",
        "timezone": "America/Los_Angeles",
        "billing_interval": "month",
        "billing_anchor": datetime(2026, 1, 1, 8, tzinfo=UTC),
        "started_at": datetime(2026, 1, 1, 8, tzinfo=UTC),
    }
    return QuotaTarget(**{**values, **overrides})


def test_monthly_window_starts_on_the_1st_at_midnight_pacific_r_l3():
    # January in Los Angeles is UTC-8: the 1st 00:00 local is 08:00 UTC.
    window = target().window_at(datetime(2026, 1, 31, 23, tzinfo=UTC))
    assert window == Window(
        datetime(2026, 1, 1, 8, tzinfo=UTC), datetime(2026, 2, 1, 8, tzinfo=UTC)
    )
    # Feb 1 07:59 UTC is still Jan 31 in Los Angeles.
    assert target().window_at(datetime(2026, 2, 1, 7, 59, tzinfo=UTC)).start == window.start
    assert target().window_at(datetime(2026, 2, 1, 8, tzinfo=UTC)).start == window.end


def test_daily_window_is_local_midnight_to_midnight_r_q1():
    t = target(reset_interval="day", timezone="Europe/Istanbul")  # UTC+3
    window = t.window_at(datetime(2026, 3, 10, 20, 59, tzinfo=UTC))
    assert window.start == datetime(2026, 3, 9, 21, tzinfo=UTC)
    assert window.end == datetime(2026, 3, 10, 21, tzinfo=UTC)


def test_billing_period_window_follows_the_anchor():
    anchor = datetime(2026, 1, 15, 10, 7, tzinfo=UTC)
    t = target(
        reset_interval="billing_period", timezone="UTC", billing_anchor=anchor, started_at=anchor
    )
    window = t.window_at(datetime(2026, 2, 20, tzinfo=UTC))
    assert window == Window(
        datetime(2026, 2, 15, 10, 7, tzinfo=UTC), datetime(2026, 3, 15, 10, 7, tzinfo=UTC)
    )


def test_seat_based_is_one_window_for_the_whole_subscription_r_q4():
    t = target(kind="seat_based")
    first = t.window_at(datetime(2026, 1, 2, tzinfo=UTC))
    later = t.window_at(datetime(2027, 6, 2, tzinfo=UTC))
    assert first == later == Window(t.started_at, None)
    assert list(t.windows_between(t.started_at, t.started_at + timedelta(days=400))) == [first]


def test_counted_range_is_clipped_to_the_subscription_life():
    start = datetime(2026, 1, 10, 12, 5, tzinfo=UTC)
    end = datetime(2026, 1, 20, tzinfo=UTC)
    t = target(started_at=start, billing_anchor=start, ended_at=end)
    window = t.window_at(datetime(2026, 1, 15, tzinfo=UTC))
    assert window.start == datetime(2026, 1, 1, 8, tzinfo=UTC)
    assert t.counted(window) == (start, end)
    bucket = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    assert not t.covers(window, bucket, bucket + timedelta(minutes=15))  # straddles the start
    later = bucket + timedelta(minutes=15)
    assert t.covers(window, later, later + timedelta(minutes=15))


def test_windows_between_lists_each_window_met_once():
    t = target(reset_interval="day", timezone="UTC", started_at=datetime(2026, 1, 1, tzinfo=UTC))
    windows = list(
        t.windows_between(
            datetime(2026, 1, 1, 23, 50, tzinfo=UTC), datetime(2026, 1, 2, 0, 5, tzinfo=UTC)
        )
    )
    assert [w.start.day for w in windows] == [1, 2]
