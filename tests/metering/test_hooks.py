"""metering.hooks: what the apps above (quotas, alerts) receive from ingestion."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from metering import hooks, services
from metering.aggregation import Partial
from metering.hooks import UsageDelta, listeners
from metering.models import MeterRollup

from .conftest import NOW

pytestmark = pytest.mark.django_db


def ev(i, ts, **props):
    return {
        "id": f"e{i}",
        "name": "api_call",
        "customer": "cus_ext_1",
        "timestamp": ts,
        "properties": props,
    }


def test_usage_listeners_receive_exactly_the_accepted_deltas(customer):
    """One delta per (meter, customer, 15-minute bucket), built only from events that were
    accepted (not duplicates, not rejected) and that the meter counts (R-M3, R-M4)."""
    calls = services.meter_create(name="Calls", event_name="api_call")
    tokens = services.meter_create(
        name="Premium tokens",
        event_name="api_call",
        aggregation="sum",
        property="tokens",
        filter={
            "conjunction": "and",
            "clauses": [{"property": "tier", "operator": "equals", "value": "premium"}],
        },
    )
    services.meter_create(name="Other", event_name="other_event")
    archived = services.meter_create(name="Old", event_name="api_call")
    services.meter_archive(meter=archived)
    services.event_ingest_batch(events=[ev(0, "2026-11-21T11:50:00Z", tokens=1)], now=NOW)

    received = []
    with listeners(usage=[received.append]):
        services.event_ingest_batch(
            events=[
                ev(0, "2026-11-21T11:50:00Z", tokens=1000),  # duplicate of a stored event
                ev(1, "2026-11-21T11:01:00Z", tier="premium", tokens=5),
                ev(2, "2026-11-21T11:14:59Z", tier="premium", tokens=7),
                ev(3, "2026-11-21T11:15:00Z", tier="free", tokens=100),
                ev(4, "2026-11-21T11:20:00Z", tier="premium"),  # no tokens: counted by Calls only
                ev(5, "2026-11-21T11:02:00Z", tier="premium", tokens=1) | {"customer": "nobody"},
                ev(1, "2026-11-21T11:03:00Z", tier="premium", tokens=50),  # duplicate in batch
            ],
            now=NOW,
        )
    assert len(received) == 1
    at = lambda h, m: datetime(2026, 11, 21, h, m, tzinfo=UTC)  # noqa: E731
    assert received[0] == [
        UsageDelta(calls.id, customer.id, at(11, 0), Partial(count=2)),
        UsageDelta(calls.id, customer.id, at(11, 15), Partial(count=2)),
        UsageDelta(
            tokens.id,
            customer.id,
            at(11, 0),
            Partial(2, Decimal(12), Decimal(7), at(11, 14).replace(second=59), "e2", Decimal(7)),
        ),
    ]


def test_deltas_add_up_to_the_rollups(customer):
    meter = services.meter_create(
        name="Tokens", event_name="api_call", aggregation="sum", property="t"
    )
    total = []
    with listeners(usage=[lambda deltas: total.extend(d.partial.total for d in deltas)]):
        for batch in range(3):
            services.event_ingest_batch(
                events=[
                    ev(batch * 10 + i, f"2026-11-21T1{i}:00:00Z", t=i + batch) for i in range(2)
                ],
                now=NOW,
            )
    day = MeterRollup.objects.get(meter=meter, granularity=86400)
    assert sum(total) == day.total == Decimal(9)


def test_listeners_are_not_called_for_batches_that_count_nothing(customer):
    services.meter_create(name="Calls", event_name="api_call")
    received = []
    with listeners(usage=[received.append]):
        services.event_ingest_batch(
            events=[ev(1, "2026-11-21T11:00:00Z") | {"name": "unmetered"}], now=NOW
        )
        services.event_ingest_batch(
            events=[ev(2, "2026-11-21T11:00:00Z") | {"customer": "nobody"}], now=NOW
        )
    assert received == []


def test_registration_is_idempotent_ordered_and_scoped():
    order = []

    def first(deltas):
        order.append("first")

    def second(deltas):
        order.append("second")

    with listeners():
        hooks.register_usage_listener(first)
        hooks.register_usage_listener(second)
        hooks.register_usage_listener(first)
        hooks.register_meter_rebuild_listener(first)
        hooks.register_meter_rebuild_listener(first)
        hooks.emit_usage([UsageDelta(1, 1, NOW, Partial(count=1))])
        hooks.emit_usage([])  # nothing to tell
        hooks.emit_meter_rebuilt(1)
        assert order == ["first", "second", "first"]
        hooks.unregister_usage_listener(first)
        hooks.emit_usage([UsageDelta(1, 1, NOW, Partial(count=1))])
        assert order[-1] == "second"
    hooks.emit_usage([UsageDelta(1, 1, NOW, Partial(count=1))])
    hooks.emit_meter_rebuilt(1)
    assert order == ["first", "second", "first", "second"]
