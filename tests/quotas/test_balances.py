"""Cached balances (the fast path) always equal a slow recomputation from raw events.

R-Q1 (usage-based windows reset, seat-based carry over), R-Q4 (a level goes up and down),
R-L3 (reset instants in the offer's zone), R-L7 (exact after every event).
"""

import itertools
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import Offer
from metering.aggregation import Partial
from metering.hooks import UsageDelta
from metering.selectors import meter_value_from_events
from metering.services import event_ingest_batch, meter_update
from quotas.balances import balance_partial, balances_rebuild, quota_targets, usage_listener
from quotas.models import UsageBalance
from quotas.selectors import quota_target, subscription_offer_services, subscription_usage
from quotas.services import subscription_start
from tests.billing.factories import CustomerFactory, OfferFactory
from tests.metering.factories import MeterFactory
from tests.quotas.factories import OfferServiceFactory, ServiceFactory
from tests.quotas.fixtures import NOW

pytestmark = pytest.mark.django_db

LA = "America/Los_Angeles"
# Unaligned on purpose: billing periods (and the first window) start mid-bucket.
ANCHOR = datetime(2026, 10, 20, 10, 7, 33, tzinfo=UTC)


def _catalog():
    """One offer, four meters on one event, one per aggregation and window kind."""
    meters = {
        "count": MeterFactory(name="calls", event_name="ev", aggregation="count"),
        "sum": MeterFactory(name="tokens", event_name="ev", aggregation="sum", property="v"),
        "max": MeterFactory(name="peak", event_name="ev", aggregation="max", property="v"),
        "last": MeterFactory(name="seats", event_name="ev", aggregation="last", property="v"),
    }
    offer = OfferFactory(code="mix", billing_interval="week", timezone=LA)
    layout = [
        ("daily-calls", "count", "usage_based", "day"),  # local midnights, DST on Nov 1
        ("monthly-tokens", "sum", "usage_based", "month"),  # Nov 1 00:00 PDT
        ("weekly-peak", "max", "usage_based", "billing_period"),  # unaligned anchor
        ("seats", "last", "seat_based", "billing_period"),  # one window, a level
    ]
    for code, meter, kind, reset in layout:
        service = ServiceFactory(code=code, group__kind=kind, meter=meters[meter])
        OfferServiceFactory(offer=offer, service=service, included=100, reset_interval=reset)
    return offer, meters


def _assert_balances_exact(subscription, horizon):
    """Every window's balance equals the reference computed from raw events."""
    for offer_service in subscription_offer_services(subscription):
        target = quota_target(subscription, offer_service)
        meter = offer_service.service.meter
        rows = {
            b.window_start: b
            for b in UsageBalance.objects.filter(
                subscription=subscription, offer_service=offer_service
            )
        }
        for window in target.windows_between(target.started_at, horizon):
            lo, hi = target.counted(window)
            expected = meter_value_from_events(
                meter=meter, customer_id=subscription.customer_id, start=lo, end=hi or horizon
            )
            got = balance_partial(rows.pop(window.start, None)).value(meter.aggregation)
            assert got == expected, (offer_service.service.code, window)
        assert not rows, f"balances for windows that do not exist: {list(rows)}"


def test_fast_path_equals_events_across_reset_boundaries_r_q1_r_l3(send):
    offer, _ = _catalog()
    customer = CustomerFactory()
    subscription = subscription_start(customer=customer, offer=offer, start=ANCHOR)
    # Around the start (mid-bucket), the Los Angeles month and DST change (Nov 1, 07:00 UTC
    # then 08:00 UTC midnights), daily midnights and weekly anchors at 10:07:33.
    moments = [
        ANCHOR - timedelta(minutes=3),  # before the start: never counts
        ANCHOR + timedelta(minutes=2),  # same 15-minute bucket, after the start
        datetime(2026, 11, 1, 6, 59, 59, tzinfo=UTC),
        datetime(2026, 11, 1, 7, 0, tzinfo=UTC),
        datetime(2026, 11, 2, 7, 59, tzinfo=UTC),
        datetime(2026, 11, 2, 8, 0, tzinfo=UTC),
        datetime(2026, 11, 3, 10, 7, 32, tzinfo=UTC),
        datetime(2026, 11, 3, 10, 7, 33, tzinfo=UTC),
        datetime(2026, 11, 3, 10, 14, tzinfo=UTC),
    ]
    for i, moment in enumerate(moments):
        send(customer, "ev", moment, properties={"v": 10 - 3 * i}, now=NOW)
    _assert_balances_exact(subscription, NOW + timedelta(days=1))


def test_events_before_the_subscription_start_do_not_count(office, tenant, send, clock):
    start = datetime(2026, 11, 10, 9, 5, tzinfo=UTC)  # mid-bucket
    subscription = subscription_start(customer=tenant, offer=office, start=start, clock=clock)
    send(tenant, "print", start - timedelta(days=2), start - timedelta(minutes=1))
    send(tenant, "print", start, start + timedelta(minutes=1), start + timedelta(hours=5))
    assert subscription_usage(subscription=subscription).service("prints").used == 3


def test_a_back_dated_subscription_counts_events_already_received(office, tenant, send, clock):
    send(tenant, "print", *[datetime(2026, 11, 5, 9, i, tzinfo=UTC) for i in range(4)], now=NOW)
    start = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
    subscription = subscription_start(customer=tenant, offer=office, start=start, clock=clock)
    assert subscription_usage(subscription=subscription).service("prints").used == 4


def test_listener_lands_each_delta_on_the_right_subscriptions_only(office, send):
    other_meter = MeterFactory(event_name="scan")
    scans = ServiceFactory(code="scans", group__kind="usage_based", meter=other_meter)
    OfferServiceFactory(offer=office, service=scans, included=5)
    first, second, stranger = CustomerFactory(), CustomerFactory(), CustomerFactory()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    subs = [subscription_start(customer=c, offer=office, start=start) for c in (first, second)]
    twice = subscription_start(customer=first, offer=OfferFactory(), start=start)
    OfferServiceFactory(
        offer=twice.offer,
        service=office.offer_services.get(service__code="prints").service,
        included=1,
        reset_interval="day",
    )
    # Targets: one row per (subscription, metered service): the join is not crossed.
    targets = quota_targets(customer_ids=[first.id], meter_ids=[other_meter.id])
    assert [(t.subscription_id, t.meter_id) for t in targets] == [(subs[0].id, other_meter.id)]

    prints_meter = office.offer_services.get(service__code="prints").service.meter_id
    bucket = datetime(2026, 11, 3, 10, 15, tzinfo=UTC)
    usage_listener(
        [
            UsageDelta(prints_meter, first.id, bucket, Partial(count=3)),
            UsageDelta(other_meter.id, second.id, bucket, Partial(count=2)),
            UsageDelta(prints_meter, stranger.id, bucket, Partial(count=7)),
        ]
    )
    got = {
        (b.subscription_id, b.offer_service.service.code): b.count
        for b in UsageBalance.objects.select_related("offer_service__service")
    }
    assert got == {(subs[0].id, "prints"): 3, (twice.id, "prints"): 3, (subs[1].id, "scans"): 2}


def test_listener_merges_partials_like_the_aggregation():
    meter = MeterFactory(aggregation="last", property="v", event_name="lvl")
    service = ServiceFactory(group__kind="seat_based", meter=meter)
    offer_service = OfferServiceFactory(service=service, included=None)
    customer = CustomerFactory()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    subscription = subscription_start(customer=customer, offer=offer_service.offer, start=start)
    t1, t2 = start + timedelta(hours=1), start + timedelta(hours=2)
    a = Partial.of_event(t2, "b", Decimal("4"))
    b = Partial.of_event(t2, "a", Decimal("9"))  # same instant, smaller key: not the last
    c = Partial.of_event(t1, "z", Decimal("100"))
    for partial in (a, b, c):
        bucket = datetime(2026, 11, 1, 1, tzinfo=UTC)
        usage_listener([UsageDelta(meter.id, customer.id, bucket, partial)])
    row = UsageBalance.objects.get(subscription=subscription)
    assert balance_partial(row) == a + b + c
    assert (row.count, row.total, row.maximum, row.last_value) == (3, 113, 100, 4)


def test_rebuild_recomputes_the_same_balances(send):
    offer, _ = _catalog()
    customer = CustomerFactory()
    subscription = subscription_start(customer=customer, offer=offer, start=ANCHOR)
    for day in range(0, 30, 3):
        send(
            customer, "ev", ANCHOR + timedelta(days=day, hours=day), properties={"v": day}, now=NOW
        )
    before = set(UsageBalance.objects.values_list("offer_service_id", "window_start", "count"))
    UsageBalance.objects.all().delete()
    assert balances_rebuild(subscription_id=subscription.id) == len(before)
    after = set(UsageBalance.objects.values_list("offer_service_id", "window_start", "count"))
    assert after == before
    _assert_balances_exact(subscription, NOW + timedelta(days=1))


def test_a_meter_back_fill_recomputes_its_balances(
    office, tenant, send, clock, django_capture_on_commit_callbacks
):
    subscription = subscription_start(
        customer=tenant, offer=office, start=datetime(2026, 11, 1, tzinfo=UTC), clock=clock
    )
    at = datetime(2026, 11, 5, 9, tzinfo=UTC)
    send(tenant, "print", at, properties={"color": True})
    send(tenant, "print", at, at, properties={"color": False})
    assert subscription_usage(subscription=subscription).service("prints").used == 3
    meter = office.offer_services.get(service__code="prints").service.meter
    with django_capture_on_commit_callbacks(execute=True):
        meter_update(
            meter=meter,
            filter={
                "conjunction": "and",
                "clauses": [{"property": "color", "operator": "equals", "value": True}],
            },
        )
    assert subscription_usage(subscription=subscription).service("prints").used == 1


EVENT = st.tuples(
    st.integers(min_value=0, max_value=33 * 24 * 3600),  # seconds after NOW - 33 days
    st.decimals(min_value=-500, max_value=500, places=2),
    st.integers(min_value=0, max_value=2),  # which batch
)
_examples = itertools.count()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(events=st.lists(EVENT, min_size=1, max_size=25), start_offset=st.integers(0, 10 * 86400))
def test_random_events_across_boundaries_fast_path_equals_events(events, start_offset):
    """Random events in random batches: every window's balance = meter_value_from_events."""
    offer = Offer.objects.filter(code="mix").first() or _catalog()[0]
    n = next(_examples)
    customer = CustomerFactory(external_id=f"cus_h{n}")
    origin = NOW - timedelta(days=33)
    start = origin + timedelta(seconds=start_offset)
    subscription = subscription_start(customer=customer, offer=offer, start=start)
    for batch in range(3):
        payload = [
            {
                "id": f"h{n}-{i}",
                "name": "ev",
                "customer": customer.external_id,
                "timestamp": (origin + timedelta(seconds=offset)).isoformat(),
                "properties": {"v": str(value)},
            }
            for i, (offset, value, which) in enumerate(events)
            if which == batch
        ]
        if payload:
            assert event_ingest_batch(events=payload, now=NOW).accepted == len(payload)
    _assert_balances_exact(subscription, NOW + timedelta(days=1))


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_ingests_lose_no_update(office):
    """Four writers hammer one bucket: the upsert merges atomically (PostgreSQL)."""
    customer = CustomerFactory(external_id="cus_busy")
    start = datetime(2026, 11, 1, tzinfo=UTC)
    subscription = subscription_start(customer=customer, offer=office, start=start)
    at = datetime(2026, 11, 20, 10, 1, tzinfo=UTC)
    errors = []

    def writer(worker: int) -> None:
        try:
            for batch in range(10):
                events = [
                    {
                        "id": f"w{worker}-{batch}-{i}",
                        "name": "print",
                        "customer": "cus_busy",
                        "timestamp": (at + timedelta(seconds=i)).isoformat(),
                    }
                    for i in range(20)
                ]
                event_ingest_batch(events=events, now=NOW)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    row = UsageBalance.objects.get(subscription=subscription)
    assert row.count == 4 * 10 * 20
