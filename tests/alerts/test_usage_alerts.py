"""Usage alerts: thresholds (R-A1), post-creation usage only (R-A3), windows and recurrence,
the sweep, simulation clocks (R-A5)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alerts.models import AlertTrigger, Recurrence
from alerts.services import alerts_evaluate, usage_alert_create, usage_listener
from core.models import OutboxEvent
from metering.hooks import listeners, unregister_usage_listener
from tests.billing.factories import ClockFactory, CustomerFactory

from .conftest import ingest, quota_offer, subscribe

pytestmark = pytest.mark.django_db


def alert(meter, customer=None, threshold="3", **kwargs):
    return usage_alert_create(
        title="Heavy use", meter=meter, customer=customer, threshold=Decimal(threshold), **kwargs
    )


def test_r_a1_fires_when_usage_reaches_the_threshold_exactly(meter, customer):
    rule = alert(meter, customer, threshold="3")
    ingest(customer, 2)
    assert not AlertTrigger.objects.exists()  # one below: nothing
    ingest(customer, 1)
    trigger = AlertTrigger.objects.get()
    assert (trigger.alert, trigger.customer, trigger.value) == (rule, customer, Decimal(3))
    assert OutboxEvent.objects.filter(type="alert.triggered").count() == 1


def test_r_a1_an_all_customers_alert_fires_per_customer(meter, customer):
    other = CustomerFactory()
    alert(meter, None, threshold="2")
    ingest(customer, 2)
    ingest(other, 1)
    assert list(AlertTrigger.objects.values_list("customer", flat=True)) == [customer.pk]
    ingest(other, 1)
    assert set(AlertTrigger.objects.values_list("customer", flat=True)) == {customer.pk, other.pk}


def test_r_a1_a_specific_customers_alert_ignores_other_customers(meter, customer):
    alert(meter, customer, threshold="1")
    ingest(CustomerFactory(), 5)
    assert not AlertTrigger.objects.exists()


def test_r_a3_usage_before_the_alert_was_created_does_not_count(meter, customer):
    ingest(customer, 5)  # already past 3 before the alert exists
    rule = alert(meter, customer, threshold="3")
    assert alerts_evaluate() == {"triggers": 0, "quota_firings": 0}
    ingest(customer, 2)
    assert not AlertTrigger.objects.exists()
    ingest(customer, 1)
    assert AlertTrigger.objects.get(alert=rule).value == Decimal(3)


def test_a_jump_past_the_threshold_fires_once_and_further_usage_does_not_refire(meter, customer):
    alert(meter, customer, threshold="3")
    ingest(customer, 10)
    ingest(customer, 10)
    assert AlertTrigger.objects.get().value == Decimal(10)


def test_sum_meter_thresholds_use_the_aggregated_property(customer):
    from tests.metering.factories import MeterFactory

    tokens = MeterFactory(name="Tokens", event_name="llm", aggregation="sum", property="tokens")
    alert(tokens, customer, threshold="1000")
    ingest(customer, 1, name="llm", properties={"tokens": 999})
    assert not AlertTrigger.objects.exists()
    ingest(customer, 1, name="llm", properties={"tokens": 1})
    assert AlertTrigger.objects.get().value == Decimal(1000)


def test_inactive_alerts_do_not_fire_and_fire_once_reactivated(meter, customer):
    from alerts.services import usage_alert_activate, usage_alert_deactivate

    rule = usage_alert_deactivate(alert=alert(meter, customer, threshold="2"))
    ingest(customer, 3)
    assert not AlertTrigger.objects.exists()
    usage_alert_activate(alert=rule)
    alerts_evaluate()
    assert AlertTrigger.objects.get().value == Decimal(3)


def test_the_sweep_repairs_what_ingest_missed_and_is_idempotent(meter, customer):
    alert(meter, customer, threshold="3")
    with listeners():
        unregister_usage_listener(usage_listener)
        ingest(customer, 4)
    assert not AlertTrigger.objects.exists()
    assert alerts_evaluate() == {"triggers": 1, "quota_firings": 0}
    assert alerts_evaluate() == {"triggers": 0, "quota_firings": 0}
    assert alerts_evaluate(customer_ids=[customer.pk]) == {"triggers": 0, "quota_firings": 0}
    assert AlertTrigger.objects.get().value == Decimal(4)


def test_the_listener_costs_one_query_when_no_alert_concerns_the_batch(meter, customer):
    from metering.hooks import UsageDelta

    alert(meter, CustomerFactory(), threshold="3")  # another customer's alert
    deltas = [UsageDelta(meter.pk, customer.pk, _quarter(), _partial(5))]
    with CaptureQueriesContext(connection) as queries:
        usage_listener(deltas)
    assert len(queries) == 1


def _quarter():
    from django.utils import timezone

    now = timezone.now()
    return now.replace(minute=now.minute // 15 * 15, second=0, microsecond=0)


def _partial(n):
    from metering.aggregation import Partial

    return Partial(count=n)


# --------------------------------------------------------------------------- windows, R-A5


@pytest.fixture
def clock(db):
    from datetime import UTC, datetime

    return ClockFactory(now=datetime(2026, 1, 1, tzinfo=UTC))


def advance(clock, **delta):
    clock.now += timedelta(**delta)
    clock.save(update_fields=["now", "updated_at"])


def test_every_period_fires_once_per_billing_period_and_rearms_in_the_next(meter, customer, clock):
    offer, _ = quota_offer(meter, included="1000")
    subscribe(customer, offer, clock=clock)
    monthly = alert(meter, customer, threshold="2", recurrence=Recurrence.EVERY_PERIOD)
    once = alert(meter, customer, threshold="2", recurrence=Recurrence.ONE_TIME)

    ingest(customer, 2)
    ingest(customer, 2)
    assert AlertTrigger.objects.filter(alert=monthly).count() == 1
    assert AlertTrigger.objects.filter(alert=once).count() == 1

    advance(clock, days=31, hours=1)  # 2026-02-01 01:00: the next billing period
    ingest(customer, 1)
    assert AlertTrigger.objects.filter(alert=monthly).count() == 1  # 1 this period: below 2
    ingest(customer, 1)
    february = AlertTrigger.objects.filter(alert=monthly).order_by("window_start")
    assert [t.window_start.date().isoformat() for t in february] == ["2026-01-01", "2026-02-01"]
    assert february[1].value == Decimal(2)
    assert february[1].triggered_at == clock.now  # the clock's time, not real time (R-A5)
    assert AlertTrigger.objects.filter(alert=once).count() == 1  # one_time: once, ever


def test_r_a5_under_a_clock_only_usage_after_creation_on_its_time_line_counts(
    meter, customer, clock
):
    offer, _ = quota_offer(meter, included="1000")
    subscribe(customer, offer, clock=clock)
    ingest(customer, 5)  # stamped 2026-01-01 00:00 (the clock's now)
    advance(clock, hours=1)
    rule = alert(meter, customer, threshold="3")
    ingest(customer, 2)
    assert not AlertTrigger.objects.exists()
    ingest(customer, 1)
    assert AlertTrigger.objects.get(alert=rule).value == Decimal(3)


def test_r_a5_clock_machinery_evaluates_at_the_clocks_new_time(meter, customer, clock):
    offer, _ = quota_offer(meter, included="1000")
    subscribe(customer, offer, clock=clock)
    rule = alert(meter, customer, threshold="2", recurrence=Recurrence.EVERY_PERIOD)
    with listeners():
        unregister_usage_listener(usage_listener)
        ingest(customer, 2)
    advance(clock, days=3)
    assert alerts_evaluate(customer_ids=[customer.pk], at=clock.now)["triggers"] == 1
    trigger = AlertTrigger.objects.get(alert=rule)
    assert trigger.triggered_at == clock.now
    assert trigger.window_start.isoformat() == "2026-01-01T00:00:00+00:00"


def test_a_customer_without_subscription_uses_calendar_months_in_utc(meter, customer):
    rule = alert(meter, customer, threshold="1", recurrence=Recurrence.EVERY_PERIOD)
    ingest(customer, 1)
    trigger = AlertTrigger.objects.get(alert=rule)
    assert trigger.window_start.day == 1 and trigger.window_start.hour == 0
    assert trigger.window_end.month % 12 == (trigger.window_start.month + 1) % 12


def test_a_sum_meter_with_negative_values_before_the_alert_still_fires(customer):
    """The day-rollup bound must hold for levels (negative values), R-A3: 1 - 10 before the
    alert, then +1 three times: 3 since creation, although the whole day sums to -6."""
    from tests.metering.factories import MeterFactory

    seats = MeterFactory(name="Seats", event_name="seat", aggregation="sum", property="delta")
    ingest(customer, 1, name="seat", properties={"delta": 1})
    ingest(customer, 1, name="seat", properties={"delta": -10})
    rule = alert(seats, customer, threshold="3")
    for _ in range(2):
        ingest(customer, 1, name="seat", properties={"delta": 1})
    assert not AlertTrigger.objects.exists()
    ingest(customer, 1, name="seat", properties={"delta": 1})
    assert AlertTrigger.objects.get(alert=rule).value == Decimal(3)
