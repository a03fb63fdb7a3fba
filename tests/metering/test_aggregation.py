"""Meter aggregations as mergeable partials (R-M2): pure Python, no database."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metering.aggregation import (
    AGGREGATIONS,
    Partial,
    aggregate,
    event_value,
    merge,
    merge_all,
)

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def at(minutes):
    return T0 + timedelta(minutes=minutes)


def fold(rows):
    return merge_all(Partial.of_event(ts, key, value) for ts, key, value in rows)


ROWS = [
    (at(0), "evt_1", Decimal(120)),
    (at(5), "evt_2", Decimal("30.5")),
    (at(3), "evt_3", Decimal(200)),  # arrives after evt_2 but happened before it
    (at(1), "evt_4", Decimal(7)),
]


def test_r_m2_count_is_the_number_of_events():
    """R-M2 count: the number of matching events."""
    rows = [(at(i), f"evt_{i}", None) for i in range(5)]
    assert fold(rows).value("count") == Decimal(5)
    assert aggregate("count", rows) == Decimal(5)


def test_r_m2_sum_of_a_numeric_property():
    """R-M2 sum: 120 + 30.5 + 200 + 7 = 357.5."""
    assert fold(ROWS).value("sum") == Decimal("357.5")
    assert aggregate("sum", ROWS) == Decimal("357.5")


def test_r_m2_max_is_the_peak():
    """R-M2 max: the highest value in the period (peak storage)."""
    assert fold(ROWS).value("max") == Decimal(200)
    assert aggregate("max", ROWS) == Decimal(200)


def test_r_m2_last_is_the_most_recent_by_event_timestamp():
    """R-M2 last: by event timestamp, not by arrival order."""
    assert fold(ROWS).value("last") == Decimal("30.5")
    assert fold(reversed(ROWS)).value("last") == Decimal("30.5")
    assert aggregate("last", ROWS) == Decimal("30.5")


def test_r_m2_last_ties_broken_by_event_key():
    """R-M2 last: equal timestamps are ordered by event key, whatever the arrival order."""
    a = Partial.of_event(T0, "evt_a", Decimal(1))
    b = Partial.of_event(T0, "evt_b", Decimal(2))
    assert (a + b).value("last") == Decimal(2)
    assert (b + a).value("last") == Decimal(2)
    assert (a + b).last_key == "evt_b"
    # The same instant in another offset is the same timestamp.
    other_offset = T0.astimezone(datetime.now().astimezone().tzinfo)
    c = Partial.of_event(other_offset, "evt_c", Decimal(3))
    assert (c + b).value("last") == Decimal(3)


def test_r_m2_empty_values():
    """R-M2 on no events: count 0, sum 0, max and last undefined (None)."""
    empty = Partial()
    assert empty.value("count") == 0
    assert empty.value("sum") == 0
    assert empty.value("max") is None
    assert empty.value("last") is None
    assert aggregate("sum", []) == 0
    assert aggregate("max", []) is None
    assert aggregate("last", []) is None
    assert merge_all([]) == Partial()


def test_r_m2_count_only_event_contributes_nothing_else():
    """R-M2: a value-less event (count meter) counts 1 and leaves sum / max / last alone."""
    p = Partial.of_event(at(9), "evt_9", None) + Partial.of_event(at(1), "evt_1", Decimal(4))
    assert p.count == 2
    assert p.value("sum") == Decimal(4)
    assert p.value("max") == Decimal(4)
    assert p.value("last") == Decimal(4)
    assert p.last_key == "evt_1"


def test_r_m2_negative_values_and_max():
    rows = [(at(0), "a", Decimal(-5)), (at(1), "b", Decimal(-2))]
    assert fold(rows).value("max") == Decimal(-2)
    assert fold(rows).value("sum") == Decimal(-7)


def test_merge_identity_and_operator():
    p = Partial.of_event(T0, "k", Decimal("1.5"))
    assert merge(p, Partial()) == p
    assert merge(Partial(), p) == p
    assert p + Partial() == p
    assert p.merge(p).count == 2
    with pytest.raises(TypeError):
        p + 1  # noqa: B018


def test_max_ties_keep_one_representation_whatever_the_order():
    a = Partial.of_event(T0, "a", Decimal("1"))
    b = Partial.of_event(at(1), "b", Decimal("1.00"))
    assert str((a + b).maximum) == str((b + a).maximum) == "1.00"


def test_unknown_aggregation_is_refused():
    assert AGGREGATIONS == ("count", "sum", "max", "last")
    with pytest.raises(ValueError):
        Partial().value("avg")
    with pytest.raises(ValueError):
        aggregate("median", [])
    with pytest.raises(ValueError):
        event_value("avg", "x", {})


# ---------------------------------------------------------------------------- event_value


@pytest.mark.parametrize(
    ("aggregation", "props", "expected"),
    [
        ("count", {}, (True, None)),
        ("count", {"tokens": "many"}, (True, None)),
        ("sum", {"tokens": 120}, (True, Decimal(120))),
        ("sum", {"tokens": 0.1}, (True, Decimal("0.1"))),
        ("sum", {"tokens": "12.5"}, (True, Decimal("12.5"))),
        ("sum", {}, (False, None)),
        ("sum", {"tokens": None}, (False, None)),
        ("max", {"tokens": "many"}, (False, None)),
        ("max", {"tokens": True}, (False, None)),
        ("last", {"tokens": [1]}, (False, None)),
        ("last", {"tokens": float("nan")}, (False, None)),
        ("last", {"tokens": 3}, (True, Decimal(3))),
    ],
)
def test_r_m2_event_value(aggregation, props, expected):
    """R-M2: sum / max / last exclude events whose property is missing or not numeric."""
    assert event_value(aggregation, "tokens", props) == expected


def test_r_m2_event_value_dotted_path():
    assert event_value("sum", "usage.gb", {"usage": {"gb": 2.5}}) == (True, Decimal("2.5"))
    assert event_value("sum", "usage.gb", {"usage.gb": 4}) == (True, Decimal(4))
    assert event_value("sum", "usage.gb", {"usage": 4}) == (False, None)


# ---------------------------------------------------------------------------- properties

# Few distinct timestamps so that ties in "last" are common; keys are unique event IDs.
timestamps = st.integers(min_value=0, max_value=4).map(at)
values = st.one_of(
    st.none(),
    st.decimals(
        min_value=-(10**6), max_value=10**6, places=3, allow_nan=False, allow_infinity=False
    ),
    st.integers(min_value=-100, max_value=100).map(Decimal),
)


@st.composite
def event_rows(draw, max_size=25):
    stamps = draw(st.lists(timestamps, max_size=max_size))
    vals = draw(st.lists(values, min_size=len(stamps), max_size=len(stamps)))
    return [(ts, f"evt_{i:03d}", v) for i, (ts, v) in enumerate(zip(stamps, vals, strict=True))]


@st.composite
def partials(draw):
    return fold(draw(event_rows(max_size=8)))


@given(partials(), partials(), partials())
def test_r_m2_merge_is_associative_property(a, b, c):
    """R-M2: (a + b) + c == a + (b + c)."""
    assert merge(merge(a, b), c) == merge(a, merge(b, c))


@given(partials(), partials())
def test_r_m2_merge_is_commutative_property(a, b):
    """R-M2: a + b == b + a."""
    assert merge(a, b) == merge(b, a)


@given(event_rows(), st.data())
def test_r_m2_any_split_and_order_gives_the_reference_property(rows, data):
    """R-M2: folding partials over any permutation and split of the events gives
    aggregate() for count, sum, max and last."""
    shuffled = data.draw(st.permutations(rows))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(shuffled)), max_size=4)))
    bounds = [0, *cuts, len(shuffled)]
    chunks = [shuffled[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False)]
    chunk_partials = [fold(chunk) for chunk in chunks]
    order = data.draw(st.permutations(range(len(chunk_partials))))
    combined = merge_all(chunk_partials[i] for i in order)
    for aggregation in AGGREGATIONS:
        assert combined.value(aggregation) == aggregate(aggregation, rows), aggregation
    assert combined == fold(rows)
