"""billing.pricing: rule-book examples (R-Q2, R-M6, R-L6) and properties (hypothesis).

Pure tests: no database, no Django.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.pricing import (
    MINOR_UNITS,
    Graduated,
    Package,
    PerUnit,
    PricingError,
    Tier,
    Volume,
    minor_units,
    overage_quantity,
    parse_pricing,
    price_usage,
    pricing_to_json,
    prorate,
    proration_fraction,
    round_money,
)

D = Decimal
LA = "America/Los_Angeles"

# --------------------------------------------------------------------------- rule book


@pytest.mark.parametrize(
    ("used", "expected"),
    [("9", "0"), ("10", "0"), ("15", "5"), ("20", "5"), ("21", "10")],
)
def test_r_q2_package_overage_ten_prints_included_5_tl_per_started_block(used, expected):
    """R-Q2: 10 prints included, every started block of 10 more costs 5 TL."""
    pricing = parse_pricing({"model": "package", "package_size": "10", "package_price": "5.00"})
    charge = price_usage(pricing, D(used), D("10"))
    assert charge == D(expected)
    assert round_money(charge, "TRY") == D(expected).quantize(D("0.01"))


def test_r_q2_overage_formula_and_quantity():
    """R-Q2: overage = ceil(max(0, used - included) / package_size) x package_price."""
    assert overage_quantity(D("21"), D("10")) == D("11")
    assert overage_quantity(D("9"), D("10")) == D("0")
    pricing = Package(D("10"), D("5.00"))
    for used in range(0, 60):
        blocks = math.ceil(max(0, used - 10) / 10)
        assert price_usage(pricing, D(used), D(10)) == blocks * D("5.00")


def test_r_m6_per_unit_free_threshold_250_used_100_free_050_is_75():
    """R-M6: free 100 units, $0.50 a unit, usage 250 -> (250 - 100) x 0.50 = $75.00."""
    pricing = parse_pricing({"model": "per_unit", "unit_price": "0.50"})
    charge = price_usage(pricing, D("250"), D("100"))
    assert charge == D("75.00")
    assert str(round_money(charge, "USD")) == "75.00"


@pytest.mark.parametrize("tz", [LA, "UTC"])
def test_r_l6_addon_400_a_year_six_months_left_is_200(tz):
    """R-L6: six months left of an annual cycle, add-on $400 a year -> $200 exactly."""
    zone = ZoneInfo(tz)
    start = datetime(2026, 1, 1, tzinfo=zone)
    end = datetime(2027, 1, 1, tzinfo=zone)
    bought = datetime(2026, 7, 1, tzinfo=zone)
    kwargs = {"period_start": start, "period_end": end, "at": bought, "interval": "year", "tz": tz}
    assert proration_fraction(**kwargs) == D("0.5")
    charge = prorate(D("400"), **kwargs)
    assert charge == D("200")
    assert str(charge) == "200"
    assert round_money(charge, "USD") == D("200.00")


# --------------------------------------------------------------------------- examples


def test_unlimited_included_charges_nothing():
    for pricing in (PerUnit(D("1")), Package(D("1"), D("1"))):
        assert price_usage(pricing, D("1000000"), None) == 0
    assert overage_quantity(D("5"), None) == 0


def test_graduated_example():
    pricing = parse_pricing(
        {
            "model": "graduated",
            "tiers": [
                {"up_to": "100", "unit_price": "0.10", "flat_fee": "1"},
                {"up_to": "1000", "unit_price": "0.05", "flat_fee": "2"},
                {"up_to": None, "unit_price": "0.01"},
            ],
        }
    )
    assert price_usage(pricing, D(0), D(0)) == 0
    assert price_usage(pricing, D(1), D(0)) == D("1.10")
    assert price_usage(pricing, D(100), D(0)) == D("11.00")
    assert price_usage(pricing, D(101), D(0)) == D("13.05")  # tier 2 reached: +2 flat
    assert price_usage(pricing, D(1500), D(0)) == D("11") + D("47") + D("5")
    # included comes off the bottom: 150 used, 50 free = 100 billable
    assert price_usage(pricing, D(150), D(50)) == D("11.00")


def test_volume_example():
    pricing = parse_pricing(
        {
            "model": "volume",
            "tiers": [
                {"up_to": "100", "unit_price": "0.10"},
                {"up_to": None, "unit_price": "0.05", "flat_fee": "3"},
            ],
        }
    )
    assert price_usage(pricing, D(0), D(0)) == 0
    assert price_usage(pricing, D(100), D(0)) == D("10.00")
    assert price_usage(pricing, D(101), D(0)) == D("8.05")  # all units at tier 2 + flat


def test_round_money_half_up_and_minor_units():
    assert round_money(D("0.125"), "USD") == D("0.13")
    assert round_money(D("0.124999"), "EUR") == D("0.12")
    assert round_money(D("-0.125"), "USD") == D("-0.13")
    assert str(round_money(D("-0.001"), "USD")) == "0.00"
    assert round_money(D("1234.5"), "JPY") == D("1235")
    assert str(round_money(D("1234.5"), "KRW")) == "1235"
    assert str(round_money(D("1.0005"), "KWD")) == "1.001"
    assert str(round_money(D("7"), "XYZ")) == "7.00"  # unknown but valid -> 2
    assert minor_units("TRY") == 2 and minor_units("BHD") == 3 and minor_units("JPY") == 0
    assert all(len(code) == 3 and code.isupper() for code in MINOR_UNITS)
    for bad in ("usd", "US", "USDD", "", None):
        with pytest.raises(ValueError):
            minor_units(bad)
    with pytest.raises(ValueError):
        round_money(D("NaN"), "USD")


def test_parse_accepts_numbers_and_defaults_flat_fee():
    assert parse_pricing({"model": "per_unit", "unit_price": 0.5}) == PerUnit(D("0.5"))
    assert parse_pricing({"model": "per_unit", "unit_price": 2}) == PerUnit(D("2"))
    assert parse_pricing({"model": "package", "package_size": 10, "package_price": "5"}) == (
        Package(D("10"), D("5"))
    )
    tiered = parse_pricing({"model": "volume", "tiers": [{"up_to": None, "unit_price": "1"}]})
    assert tiered == Volume((Tier(None, D("1"), D("0")),))
    assert tiered.tiers[0].flat_fee == 0


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"model": "flat"}, "model"),
        ({"unit_price": "1"}, "model"),
        ({"model": "per_unit"}, "unit_price"),
        ({"model": "per_unit", "unit_price": "-0.50"}, "unit_price"),
        ({"model": "per_unit", "unit_price": "NaN"}, "unit_price"),
        ({"model": "per_unit", "unit_price": "Infinity"}, "unit_price"),
        ({"model": "per_unit", "unit_price": float("nan")}, "unit_price"),
        ({"model": "per_unit", "unit_price": float("inf")}, "unit_price"),
        ({"model": "per_unit", "unit_price": "abc"}, "unit_price"),
        ({"model": "per_unit", "unit_price": "1_000"}, "unit_price"),
        ({"model": "per_unit", "unit_price": True}, "unit_price"),
        ({"model": "per_unit", "unit_price": None}, "unit_price"),
        ({"model": "per_unit", "unit_price": "1e999999"}, "unit_price"),
        ({"model": "per_unit", "unit_price": "1", "included": "10"}, "included"),
        ({"model": "package", "package_size": "0", "package_price": "5"}, "package_size"),
        ({"model": "package", "package_size": "-10", "package_price": "5"}, "package_size"),
        ({"model": "package", "package_size": "10", "package_price": "-5"}, "package_price"),
        ({"model": "graduated", "tiers": []}, "tiers"),
        ({"model": "graduated", "tiers": "x"}, "tiers"),
        ({"model": "volume", "tiers": ["x"]}, "tiers[0]"),
        (
            {
                "model": "graduated",
                "tiers": [
                    {"up_to": "100", "unit_price": "1"},
                    {"up_to": "100", "unit_price": "1"},
                    {"up_to": None, "unit_price": "1"},
                ],
            },
            "tiers[1].up_to",
        ),
        (
            {
                "model": "volume",
                "tiers": [{"up_to": "10", "unit_price": "1"}, {"up_to": "20", "unit_price": "1"}],
            },
            "tiers[1].up_to",
        ),
        (
            {
                "model": "graduated",
                "tiers": [
                    {"up_to": None, "unit_price": "1"},
                    {"up_to": None, "unit_price": "1"},
                ],
            },
            "tiers[0].up_to",
        ),
        ({"model": "graduated", "tiers": [{"unit_price": "1"}]}, "tiers[0].up_to"),
        ({"model": "graduated", "tiers": [{"up_to": "0", "unit_price": "1"}]}, "tiers[0].up_to"),
        (
            {"model": "graduated", "tiers": [{"up_to": None, "unit_price": "1", "x": 1}]},
            "tiers[0].x",
        ),
        (
            {"model": "volume", "tiers": [{"up_to": None, "unit_price": "1", "flat_fee": "-1"}]},
            "tiers[0].flat_fee",
        ),
    ],
)
def test_parse_refuses_with_field(obj, field):
    with pytest.raises(PricingError) as info:
        parse_pricing(obj)
    assert info.value.field == field
    assert info.value.code == "invalid_pricing"
    assert info.value.message
    assert field in str(info.value)
    assert isinstance(info.value, ValueError)


def test_parse_refuses_non_object():
    with pytest.raises(PricingError):
        parse_pricing(["per_unit"])  # type: ignore[arg-type]


def test_dataclasses_validate_when_built_directly():
    with pytest.raises(PricingError):
        Package(D("0"), D("1"))
    with pytest.raises(PricingError):
        Graduated((Tier(D("10"), D("1")),))
    with pytest.raises(PricingError):
        PerUnit(D("-1"))


def test_price_usage_refuses_bad_quantities():
    with pytest.raises(ValueError):
        price_usage(PerUnit(D("1")), D("NaN"), D("0"))
    with pytest.raises(ValueError):
        price_usage(PerUnit(D("1")), D("5"), D("-1"))


def test_prorate_monthly_with_clamped_anchor():
    """Anchor Jan 31: the Feb 28 -> Mar 31 period is one month; half of it left after day 14."""
    tz = "UTC"
    start, end = datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC)
    at = datetime(2026, 3, 15, 12, tzinfo=UTC)
    kw = {"period_start": start, "period_end": end, "interval": "month", "tz": tz}
    assert proration_fraction(at=at, **kw) == D(372) / D(744)  # 15.5 of 31 days left
    assert prorate(D("31"), at=at, **kw) == D("15.5")
    assert proration_fraction(at=start - timedelta(days=1), **kw) == 1
    assert proration_fraction(at=start, **kw) == 1
    assert proration_fraction(at=end, **kw) == 0
    assert proration_fraction(at=end + timedelta(days=3), **kw) == 0


def test_prorate_annual_counts_calendar_months_not_seconds():
    """Three whole months + half of a 30-day month left of a year -> 3.5 / 12."""
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    at = datetime(2026, 9, 16, tzinfo=UTC)  # September has 30 days: 15 of them left
    frac = proration_fraction(period_start=start, period_end=end, at=at, interval="year", tz="UTC")
    assert abs(frac - D(7) / D(24)) < D("1e-25")
    assert (
        prorate(D("1200"), period_start=start, period_end=end, at=at, interval="year", tz="UTC")
        == 350
    )


def test_prorate_day_and_week_by_seconds():
    start = datetime(2026, 3, 2, tzinfo=UTC)
    end = start + timedelta(days=7)
    at = start + timedelta(days=5, hours=6)
    kw = {"period_start": start, "period_end": end, "at": at, "tz": "UTC"}
    assert prorate(D("70"), interval="week", **kw) == D("17.5")
    # a DST day in Los Angeles has 23 hours: seconds, not wall clock, decide
    zone = ZoneInfo(LA)
    d0, d1 = datetime(2026, 3, 8, tzinfo=zone), datetime(2026, 3, 9, tzinfo=zone)
    assert d1.astimezone(UTC) - d0.astimezone(UTC) == timedelta(hours=23)
    half = d0.astimezone(UTC) + timedelta(hours=11.5)
    frac = proration_fraction(period_start=d0, period_end=d1, at=half, interval="day", tz=LA)
    assert frac == D("0.5")


def test_prorate_refuses_naive_and_bad_arguments():
    aware = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        prorate(
            D(1), period_start=datetime(2026, 1, 1), period_end=aware, at=aware, interval="month",
            tz="UTC",
        )  # fmt: skip
    with pytest.raises(ValueError):
        prorate(D(1), period_start=aware, period_end=aware, at=aware, interval="month", tz="UTC")
    later = aware + timedelta(days=31)
    with pytest.raises(ValueError):
        prorate(
            D(1), period_start=aware, period_end=later, at=aware, interval="fortnight", tz="UTC"
        )
    with pytest.raises(ValueError):
        prorate(D(1), period_start=aware, period_end=later, at=aware, interval="month", tz="Nope/X")


# --------------------------------------------------------------------------- properties

quantities = st.decimals(min_value=0, max_value=10**7, places=3, allow_nan=False)
prices = st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False)
included_st = st.one_of(st.none(), quantities)


@st.composite
def tier_lists(draw, min_size=1, max_size=5):
    count = draw(st.integers(min_value=min_size, max_value=max_size))
    bounds = sorted(
        draw(
            st.sets(
                st.decimals(min_value="0.5", max_value=10**6, places=1, allow_nan=False),
                min_size=count - 1,
                max_size=count - 1,
            )
        )
    )
    ups = [*bounds, None]
    return tuple(Tier(up, draw(prices), draw(prices)) for up in ups)


per_units = st.builds(PerUnit, prices)
packages = st.builds(
    Package, st.decimals(min_value="0.001", max_value=10**4, places=3, allow_nan=False), prices
)
graduateds = st.builds(Graduated, tier_lists())
volumes = st.builds(Volume, tier_lists())
monotone_pricings = st.one_of(per_units, packages, graduateds)
any_pricing = st.one_of(per_units, packages, graduateds, volumes)


@given(any_pricing, quantities, included_st)
def test_price_is_never_negative(pricing, used, included):
    assert price_usage(pricing, used, included) >= 0


@given(monotone_pricings, quantities, quantities, included_st)
def test_per_unit_package_graduated_are_monotone_in_usage(pricing, a, b, included):
    low, high = sorted((a, b))
    assert price_usage(pricing, low, included) <= price_usage(pricing, high, included)


@given(volumes, quantities, included_st)
def test_volume_is_tier_price_times_quantity_plus_flat_fee(pricing, used, included):
    billable = D(0) if included is None else max(D(0), used - included)
    charge = price_usage(pricing, used, included)
    if billable == 0:
        assert charge == 0
        return
    tier = next(t for t in pricing.tiers if t.up_to is None or billable <= t.up_to)
    assert charge == billable * tier.unit_price + tier.flat_fee


@given(packages, quantities, quantities)
def test_package_equals_ceil_formula(pricing, used, included):
    billable = max(D(0), used - included)
    blocks = int(billable // pricing.package_size)
    if blocks * pricing.package_size < billable:
        blocks += 1
    assert price_usage(pricing, used, included) == blocks * pricing.package_price


@given(prices, quantities, included_st)
def test_graduated_with_one_tier_equals_per_unit(price, used, included):
    graduated = Graduated((Tier(None, price, D(0)),))
    assert price_usage(graduated, used, included) == price_usage(PerUnit(price), used, included)


@st.composite
def integer_tiers(draw):
    count = draw(st.integers(min_value=1, max_value=4))
    bounds = sorted(draw(st.sets(st.integers(1, 60), min_size=count - 1, max_size=count - 1)))
    return tuple(Tier(None if up is None else D(up), draw(prices), draw(prices))
                 for up in [*bounds, None])  # fmt: skip


@given(integer_tiers(), st.integers(min_value=0, max_value=80))
def test_graduated_matches_unit_by_unit_oracle(tiers, used):
    """Each unit priced by the tier it falls in + the flat fee of each tier reached."""
    expected = D(0)
    reached = set()
    for unit in range(1, used + 1):
        index = next(i for i, t in enumerate(tiers) if t.up_to is None or unit <= t.up_to)
        expected += tiers[index].unit_price
        reached.add(index)
    expected += sum((tiers[i].flat_fee for i in reached), D(0))
    assert price_usage(Graduated(tiers), D(used), D(0)) == expected


@given(
    st.decimals(min_value=-(10**9), max_value=10**9, allow_nan=False, allow_infinity=False),
    st.sampled_from(["USD", "TRY", "JPY", "KWD", "CLF", "XYZ"]),
)
def test_round_money_is_idempotent_and_within_half_a_minor_unit(amount, currency):
    once = round_money(amount, currency)
    assert round_money(once, currency) == once
    assert once.as_tuple().exponent == -minor_units(currency)
    assert abs(once - amount) <= D(1).scaleb(-minor_units(currency)) / 2


@given(any_pricing)
def test_pricing_json_round_trips(pricing):
    as_json = pricing_to_json(pricing)
    assert parse_pricing(as_json) == pricing
    assert pricing_to_json(parse_pricing(as_json)) == as_json
    assert all(isinstance(v, str) for k, v in as_json.items() if k not in ("tiers",))


period_starts = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)


@given(
    period_starts,
    st.sampled_from(["day", "week", "month", "year"]),
    st.sampled_from([LA, "UTC", "Asia/Kolkata", "Australia/Lord_Howe"]),
    st.floats(min_value=-0.2, max_value=1.2),
    st.floats(min_value=-0.2, max_value=1.2),
)
def test_proration_fraction_in_unit_interval_and_non_increasing(start, interval, tz, f1, f2):
    from billing.periods import shift

    end = shift(start, interval, 1, tz)
    length = end - start
    early, late = sorted((f1, f2))
    kw = {"period_start": start, "period_end": end, "interval": interval, "tz": tz}
    a = proration_fraction(at=start + length * early, **kw)
    b = proration_fraction(at=start + length * late, **kw)
    assert 0 <= b <= a <= 1
