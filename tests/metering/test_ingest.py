"""Event ingestion (R-M8): validation per event, duplicates, time limits, one transaction."""

from datetime import timedelta
from decimal import Decimal

import pytest

from billing.models import Subscription
from core.errors import DomainError, InvalidInput
from metering import selectors, services
from metering.hooks import listeners
from metering.models import Event, MeterRollup
from tests.billing.factories import ClockFactory, CustomerFactory, OfferFactory

from .conftest import NOW

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def ev(i, **fields):
    return {"id": f"evt_{i}", "name": "api_call", "customer": "cus_ext_1", **fields}


def ingest(events, now=NOW):
    return services.event_ingest_batch(events=events, now=now)


def count_meter():
    return services.meter_create(name="API calls", event_name="api_call", unit="calls")


def value(meter, customer_id=None, start=NOW - 40 * DAY, end=NOW + DAY):
    return selectors.meter_value(meter=meter, customer_id=customer_id, start=start, end=end)


def test_r_m8_event_is_stored_with_its_id_customer_timestamp_and_properties(customer):
    """R-M8: an event carries its own ID, a customer, a timestamp and properties."""
    result = ingest(
        [ev(1, timestamp="2026-11-21T10:00:00+02:00", properties={"tokens": 120, "x": [1]})]
    )
    assert (result.accepted, result.duplicates, result.rejected) == (1, 0, [])
    event = Event.objects.get()
    assert event.event_id == "evt_1"
    assert event.customer == customer
    assert event.timestamp.isoformat() == "2026-11-21T08:00:00+00:00"
    assert event.properties == {"tokens": 120, "x": [1]}


def test_r_m8_duplicate_in_the_same_batch_is_counted_once(customer):
    meter = count_meter()
    result = ingest([ev(1), ev(2), ev(1), ev(1, properties={"other": True})])
    assert (result.accepted, result.duplicates, result.rejected) == (2, 2, [])
    assert Event.objects.count() == 2
    assert value(meter) == 2


def test_r_m8_duplicate_in_a_later_batch_is_acknowledged_never_counted(customer):
    meter = count_meter()
    ingest([ev(1), ev(2)], now=NOW - 30 * DAY)
    # Months later (well, 30 days) the client retries the whole batch plus one new event.
    result = ingest([ev(1), ev(2), ev(3)])
    assert (result.accepted, result.duplicates) == (1, 2)
    assert value(meter) == 3


def test_r_m8_a_retry_refused_on_content_is_still_a_duplicate_when_its_id_is_known(customer):
    """A repeat of a stored id is acknowledged as a duplicate even if the retry would now be
    refused (its timestamp aged past the limit), so clients can retry safely."""
    ingest([ev(1, timestamp=(NOW - 30 * DAY).isoformat())], now=NOW - 30 * DAY)
    result = ingest(
        [ev(1, timestamp=(NOW - 30 * DAY).isoformat()), ev(2, customer="nobody")],
        now=NOW + 10 * DAY,
    )
    assert result.accepted == 0
    assert result.duplicates == 1
    assert [r["code"] for r in result.rejected] == ["unknown_customer"]


def test_duplicates_ignore_rejected_first_copies(customer):
    """The first *valid* copy of an id is the one stored; a refused copy of an accepted id
    is acknowledged as a duplicate."""
    meter = count_meter()
    result = ingest([ev(1, customer="nobody"), ev(1), ev(2, properties=[1]), ev(2)])
    assert (result.accepted, result.duplicates, result.rejected) == (2, 2, [])
    assert value(meter) == 2


@pytest.mark.parametrize(
    "event, code",
    [
        ("not an object", "invalid_event"),
        ({"name": "api_call", "customer": "cus_ext_1"}, "invalid_id"),
        (ev(1) | {"id": 17}, "invalid_id"),
        (ev(1) | {"id": ""}, "invalid_id"),
        (ev(1) | {"id": "x" * 256}, "invalid_id"),
        (ev(1) | {"id": "a\x00b"}, "invalid_id"),
        (ev(1) | {"id": "\ud800"}, "invalid_id"),
        (ev(1) | {"name": None}, "invalid_name"),
        (ev(1) | {"name": ""}, "invalid_name"),
        (ev(1) | {"customer": 5}, "invalid_customer"),
        (ev(1) | {"customer": "nobody"}, "unknown_customer"),
        (ev(1) | {"timestamp": "2026-11-21T10:00:00"}, "invalid_timestamp"),
        (ev(1) | {"timestamp": "2026-11-21"}, "invalid_timestamp"),
        (ev(1) | {"timestamp": "yesterday"}, "invalid_timestamp"),
        (ev(1) | {"timestamp": 1763719200}, "invalid_timestamp"),
        (ev(1) | {"timestamp": "0001-01-01T00:00:00+14:00"}, "invalid_timestamp"),
        (ev(1) | {"properties": [1, 2]}, "invalid_properties"),
        (ev(1) | {"properties": "x"}, "invalid_properties"),
        (ev(1) | {"properties": {"v": float("inf")}}, "invalid_properties"),
        (ev(1) | {"properties": {"v": float("nan")}}, "invalid_properties"),
        (ev(1) | {"properties": {"v": "a\x00"}}, "invalid_properties"),
        (ev(1) | {"properties": {"v": "\udc00"}}, "invalid_properties"),
        (ev(1) | {"properties": {"blob": "x" * (64 * 1024)}}, "invalid_properties"),
    ],
)
def test_invalid_events_are_rejected_one_by_one(customer, event, code):
    meter = count_meter()
    result = ingest([ev(100), event, ev(101)])
    assert result.accepted == 2
    assert result.duplicates == 0
    assert len(result.rejected) == 1
    rejection = result.rejected[0]
    assert rejection["index"] == 1
    assert rejection["code"] == code
    assert rejection["message"]
    assert Event.objects.count() == 2  # never half-stored
    assert value(meter) == 2


def test_properties_limits_are_inclusive(customer):
    """64 KiB of serialized JSON and 8 levels of nesting are allowed; one more is not."""
    blob = "x" * (64 * 1024 - len('{"b":""}'))
    # The properties object is level 1.
    nested = {"l2": {"l3": {"l4": {"l5": {"l6": {"l7": {"l8": {"leaf": 1}}}}}}}}
    too_deep = {"l2": {"l3": {"l4": {"l5": {"l6": {"l7": {"l8": {"l9": {"leaf": 1}}}}}}}}}
    list_deep = {"a": [[[[[[[1]]]]]]]}
    result = ingest(
        [
            ev(1, properties={"b": blob}),
            ev(2, properties={"b": blob + "x"}),
            ev(3, properties=nested),
            ev(4, properties=too_deep),
            ev(5, properties=list_deep),
            ev(6, properties={"a": [[[[[[[[1]]]]]]]]}),
            ev(7, properties={"s": "{{{{{{{{{{[[[[[["}),
            ev(8, properties={"é": "ü" * 100, "literal": "\\u0000"}),
        ]
    )
    assert result.accepted == 5
    assert [(r["id"], r["code"]) for r in result.rejected] == [
        ("evt_2", "invalid_properties"),
        ("evt_4", "invalid_properties"),
        ("evt_6", "invalid_properties"),
    ]
    assert Event.objects.get(event_id="evt_8").properties["literal"] == "\\u0000"


def test_timestamp_defaults_to_now_and_limits_are_five_minutes_ahead_and_max_age(
    customer, settings
):
    settings.KOTA_EVENT_MAX_AGE_DAYS = 35
    result = ingest(
        [
            ev(1),
            ev(2, timestamp=(NOW + timedelta(minutes=5)).isoformat()),
            ev(3, timestamp=(NOW + timedelta(minutes=5, microseconds=1)).isoformat()),
            ev(4, timestamp=(NOW - 35 * DAY).isoformat()),
            ev(5, timestamp=(NOW - 35 * DAY - timedelta(seconds=1)).isoformat()),
            ev(6, timestamp="2026-11-21T12:03:00Z"),
        ]
    )
    assert result.accepted == 4
    assert [(r["id"], r["code"]) for r in result.rejected] == [
        ("evt_3", "timestamp_in_future"),
        ("evt_5", "timestamp_too_old"),
    ]
    assert Event.objects.get(event_id="evt_1").timestamp == NOW


def test_max_age_follows_the_setting(customer, settings):
    settings.KOTA_EVENT_MAX_AGE_DAYS = 2
    result = ingest(
        [ev(1, timestamp=(NOW - 3 * DAY).isoformat()), ev(2, timestamp=(NOW - DAY).isoformat())]
    )
    assert result.accepted == 1
    assert result.rejected[0]["code"] == "timestamp_too_old"


def test_now_is_the_customers_simulation_clock(customer):
    """R-A5 (beyond): a customer living on a simulation clock sends events at the clock's
    time: defaults and limits follow the clock, other customers follow real time."""
    clock = ClockFactory(now=NOW + 60 * DAY)
    start = clock.now - DAY
    Subscription.objects.create(
        customer=customer,
        offer=OfferFactory(),
        clock=clock,
        billing_anchor=start,
        started_at=start,
        current_period_start=start,
        current_period_end=start + 30 * DAY,
    )
    CustomerFactory(external_id="real_time")
    result = ingest(
        [
            ev(1),
            ev(2, timestamp=(clock.now + timedelta(minutes=4)).isoformat()),
            ev(3, customer="real_time", timestamp=(clock.now - DAY).isoformat()),
            ev(4, customer="real_time"),
        ]
    )
    assert result.accepted == 3
    assert [(r["id"], r["code"]) for r in result.rejected] == [("evt_3", "timestamp_in_future")]
    assert Event.objects.get(event_id="evt_1").timestamp == clock.now
    assert Event.objects.get(event_id="evt_4").timestamp == NOW


def test_an_ended_subscription_does_not_carry_its_clock(customer):
    clock = ClockFactory(now=NOW + 60 * DAY)
    Subscription.objects.create(
        customer=customer,
        offer=OfferFactory(),
        clock=clock,
        status="ended",
        billing_anchor=NOW,
        started_at=NOW,
        current_period_start=NOW,
        current_period_end=NOW + DAY,
    )
    ingest([ev(1)])
    assert Event.objects.get().timestamp == NOW


def test_batch_size_limits(customer):
    with pytest.raises(InvalidInput) as empty:
        ingest([])
    assert empty.value.code == "empty_batch"
    with pytest.raises(DomainError) as big:
        ingest([ev(i) for i in range(1001)])
    assert (big.value.code, big.value.status) == ("batch_too_large", 413)
    assert ingest([ev(i) for i in range(1000)]).accepted == 1000


def test_a_failing_listener_rolls_back_the_whole_batch(customer):
    """Events and rollups are written in one transaction with the listeners."""
    meter = count_meter()

    def boom(deltas):
        raise RuntimeError("listener failed")

    with listeners(usage=[boom]), pytest.raises(RuntimeError):
        ingest([ev(1), ev(2)])
    assert Event.objects.count() == 0
    assert MeterRollup.objects.count() == 0
    assert ingest([ev(1)]).accepted == 1
    assert value(meter) == 1


def test_archived_meters_stop_counting(customer):
    meter = count_meter()
    ingest([ev(1), ev(2)])
    services.meter_archive(meter=meter)
    ingest([ev(3)])
    assert value(meter) == 2
    assert (
        selectors.meter_value_from_events(
            meter=meter, customer_id=None, start=NOW - DAY, end=NOW + DAY
        )
        == 2
    )
    # Reads with raw edges (not on a quarter hour) do not count the later event either.
    assert value(meter, start=NOW - timedelta(seconds=7), end=NOW + timedelta(seconds=7)) == 2


def test_late_events_land_in_their_bucket(customer):
    meter = services.meter_create(
        name="Tokens", event_name="api_call", aggregation="sum", property="tokens"
    )
    ingest([ev(1, properties={"tokens": 5})])
    ingest([ev(2, timestamp=(NOW - 20 * DAY).isoformat(), properties={"tokens": 7})])
    assert value(meter, start=NOW - 21 * DAY, end=NOW - 19 * DAY) == 7
    assert value(meter, start=NOW - DAY, end=NOW + DAY) == 5
    assert value(meter) == 12
    buckets = set(MeterRollup.objects.values_list("granularity", "bucket_start"))
    late = NOW - 20 * DAY
    assert {(900, late), (3600, late), (86400, late.replace(hour=0))} <= buckets


def test_rollups_are_exact_decimals(customer):
    """R-M2 sum: decimal values add exactly (no binary floats), on SQLite too."""
    meter = services.meter_create(
        name="Storage", event_name="api_call", aggregation="sum", property="gb"
    )
    ingest([ev(i, properties={"gb": "0.1"}) for i in range(3)])
    ingest(
        [
            ev(10, properties={"gb": 0.2}),
            ev(11, properties={"gb": "12345678901234567890.000000001"}),
        ]
    )
    assert value(meter) == Decimal("12345678901234567890.500000001")
    day = MeterRollup.objects.get(granularity=86400)
    assert day.total == Decimal("12345678901234567890.500000001")
