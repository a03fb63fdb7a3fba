"""Property test (both databases): usage read from rollups equals usage computed from raw
events, for random events (duplicates, late arrivals, unknown customers), random meters (all
four aggregations, filters, created before or after the events, redefined) and random windows
(local midnights in Los Angeles and Kolkata, arbitrary second-precision bounds). R-M2..R-M4."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering import selectors, services
from metering.models import Event, Meter, MeterRollup
from tests.billing.factories import CustomerFactory

from .conftest import NOW

pytestmark = pytest.mark.django_db

MAX_AGE = timedelta(days=35)
CUSTOMERS = ["c0", "c1", "c2"]
ZONES = ["America/Los_Angeles", "Asia/Kolkata", "UTC"]

numbers = st.one_of(
    st.integers(-1000, 10**6),
    st.decimals(-1000, 10**6, places=3, allow_nan=False).map(str),
    st.sampled_from([0.1, 0.2, 2.5, -0.5, 1e-7, 12345.678]),
    st.sampled_from(["n/a", True, None, [1]]),  # not numeric: excluded from sum/max/last
)
properties = st.fixed_dictionaries(
    {"v": st.one_of(st.integers(-1000, 10**6), numbers)},
    optional={
        "w": numbers,
        "k": st.sampled_from(["x", "y", "xyz", 5]),
        "tag": st.sampled_from(["promo", "pro", "", "basic"]),
        "n": st.fixed_dictionaries({}, optional={"v": numbers}),
    },
)
# Offsets from NOW: mostly the last hours (so batches share buckets and merge in SQL), often
# exactly on bucket boundaries, sometimes anywhere in the accepted range.
offsets = st.one_of(
    st.integers(-6 * 3600, 300).map(lambda s: timedelta(seconds=s)),
    st.integers(-24, 0).map(lambda q: timedelta(minutes=15 * q)),
    st.integers(-2 * 86400, 300).map(lambda s: timedelta(seconds=s)),
    st.integers(-MAX_AGE.days * 86400, 300).map(lambda s: timedelta(seconds=s)),
    st.integers(-MAX_AGE.days * 86400 * 10**6, 0).map(lambda us: timedelta(microseconds=us)),
)
events = st.builds(
    lambda i, name, customer, offset, props: {
        "id": f"e{i}",
        "name": name,
        "customer": customer,
        "timestamp": (NOW + offset).isoformat(),
        "properties": props,
    },
    st.integers(0, 60),
    st.sampled_from(["a", "b"]),
    st.sampled_from([*CUSTOMERS, "unknown"]),
    offsets,
    properties,
)
conditions = st.sampled_from(
    [
        {"property": "k", "operator": "equals", "value": "x"},
        {"property": "k", "operator": "not_equals", "value": "x"},
        {"property": "v", "operator": "greater_than", "value": 5},
        {"property": "v", "operator": "less_than_or_equals", "value": "100"},
        {"property": "tag", "operator": "contains", "value": "pro"},
        {"property": "tag", "operator": "does_not_contain", "value": "o"},
        {"property": "n.v", "operator": "greater_than_or_equals", "value": 0},
    ]
)
filters = st.one_of(
    st.none(),
    st.none(),
    st.builds(
        lambda conj, clauses: {"conjunction": conj, "clauses": clauses},
        st.sampled_from(["and", "or"]),
        st.lists(
            st.one_of(
                conditions,
                st.builds(
                    lambda c: {"conjunction": "or", "clauses": c},
                    st.lists(conditions, min_size=1, max_size=2),
                ),
            ),
            min_size=1,
            max_size=3,
        ),
    ),
)
meters = st.builds(
    lambda name, agg, prop, f: {
        "name": "m",
        "event_name": name,
        "aggregation": agg,
        "property": "" if agg == "count" else prop,
        "filter": f,
    },
    st.sampled_from(["a", "b"]),
    st.sampled_from(["count", "sum", "max", "last"]),
    st.sampled_from(["v", "w", "n.v"]),
    filters,
)


def local_midnight_window(draw):
    tz = ZoneInfo(draw(st.sampled_from(ZONES)))
    back = draw(st.one_of(st.integers(0, 2), st.integers(0, 36)))
    day = (NOW - timedelta(days=back)).astimezone(tz).date()
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    length = draw(st.integers(1, 40))
    end_day = day + timedelta(days=length)
    return start, datetime(end_day.year, end_day.month, end_day.day, tzinfo=tz)


def arbitrary_window(draw):
    back = draw(st.one_of(st.integers(0, 86400), st.integers(0, (MAX_AGE.days + 1) * 86400)))
    a = NOW + timedelta(seconds=600 - back)
    b = a + timedelta(seconds=draw(st.one_of(st.integers(0, 86400), st.integers(0, 40 * 86400))))
    return a, b


@pytest.fixture
def customers(db):
    return {c: CustomerFactory(external_id=c).id for c in CUSTOMERS}


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_rollups_equal_raw_events(customers, data):
    MeterRollup.objects.all().delete()
    Meter.objects.all().delete()
    Event.objects.all().delete()
    draw = data.draw

    before = [services.meter_create(**m) for m in draw(st.lists(meters, max_size=3), "before")]
    batches = draw(st.lists(st.lists(events, min_size=1, max_size=25), min_size=2, max_size=4))
    for batch in batches[:-1]:
        services.event_ingest_batch(events=batch, now=NOW)
    # Meters created after some events: built by the back-fill, chunk by chunk.
    after = [services.meter_create(**m) for m in draw(st.lists(meters, max_size=2), "after")]
    if before and draw(st.booleans(), "redefine"):
        redefined = draw(meters, "redefinition")
        before[0] = services.meter_update(
            meter=before[0], **{k: redefined[k] for k in ("aggregation", "property", "filter")}
        )
        after.append(before.pop(0))
    services.event_ingest_batch(events=batches[-1], now=NOW)  # while the back-fill is pending
    for meter in after:
        services.meter_backfill_run(
            meter_id=meter.id, generation=meter.generation, chunk_size=draw(st.integers(1, 10))
        )
        meter.refresh_from_db()
        assert meter.backfill_status == "done"

    windows = [
        local_midnight_window(draw),
        arbitrary_window(draw),
        (NOW - MAX_AGE - timedelta(days=1), NOW + timedelta(hours=1)),
    ]
    for meter in before + after:
        for customer in (customers[draw(st.sampled_from(CUSTOMERS))], None):
            for start, end in windows:
                fast = selectors.meter_value(
                    meter=meter, customer_id=customer, start=start, end=end
                )
                slow = selectors.meter_value_from_events(
                    meter=meter, customer_id=customer, start=start, end=end
                )
                assert fast == slow, (meter.aggregation, meter.filter, customer, start, end)

    if before + after:
        meter = draw(st.sampled_from(before + after))
        tz = draw(st.sampled_from(ZONES))
        start, _ = local_midnight_window(draw)
        summary = selectors.meter_summaries(
            meter=meter, start=start, end=start + timedelta(days=5), window="day", tz=tz
        )
        for w in summary.windows:
            assert w.value == selectors.meter_value_from_events(
                meter=meter, customer_id=None, start=w.start, end=w.end
            )
