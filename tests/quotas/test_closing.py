"""Period closing on a simulation clock and on real time (issue 5, R-Q1, R-Q2, R-Q4, R-L3, R-A5).

The shared office (R-Q2: 10 prints included, 5 TL per started block of 10, 1,500 TL a month)
runs three months on its clock: three invoices, each exact, and three resets.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.clocks import ClockJob, clock_advance, clock_jobs
from billing.models import Invoice, PeriodClose, SubscriptionStatus
from quotas import closing
from quotas.models import QuotaReset
from quotas.selectors import subscription_usage
from quotas.services import subscription_cancel, subscription_start
from tests.billing.factories import ClockFactory, CustomerFactory, OfferFactory
from tests.metering.factories import MeterFactory
from tests.quotas.factories import OfferServiceFactory, ServiceFactory
from tests.quotas.fixtures import NOV_1_ISTANBUL

pytestmark = pytest.mark.django_db

DEC_1 = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)  # 00:00 in Istanbul (UTC+3)
JAN_1 = datetime(2026, 12, 31, 21, 0, tzinfo=UTC)
FEB_1 = datetime(2027, 1, 31, 21, 0, tzinfo=UTC)


def _advance(clock, to):
    return clock_advance(clock=clock, to=to)


def _three_months(clock, sub, send, customer):
    """15 prints in November, 21 in December, 9 in January (R-Q2's examples)."""
    send(customer, "print", *[clock.now - timedelta(minutes=i) for i in range(15)])
    _advance(clock, DEC_1 + timedelta(days=4))
    send(customer, "print", *[clock.now - timedelta(minutes=i) for i in range(21)])
    _advance(clock, JAN_1 + timedelta(days=4))
    send(customer, "print", *[clock.now - timedelta(minutes=i) for i in range(9)])


def _period_invoices(sub):
    return list(Invoice.objects.filter(subscription=sub).order_by("period_start"))


def test_three_month_ends_give_three_exact_invoices_and_three_resets(
    office_subscription, tenant, clock, send
):
    sub = office_subscription
    _three_months(clock, sub, send, tenant)
    _advance(clock, FEB_1 + timedelta(hours=1))

    invoices = _period_invoices(sub)
    assert [(i.period_start, i.period_end) for i in invoices] == [
        (NOV_1_ISTANBUL, DEC_1),
        (DEC_1, JAN_1),
        (JAN_1, FEB_1),
    ]
    # R-Q2: 15 prints -> 5 TL, 21 -> 10 TL, 9 -> 0 TL, on top of the 1,500 TL fee.
    assert [i.total for i in invoices] == [Decimal("1505"), Decimal("1510"), Decimal("1500")]
    assert [i.reason for i in invoices] == ["period_end"] * 3
    assert all(i.status == "open" and i.number for i in invoices)
    usage = [i.lines.get(kind="usage") for i in invoices[:2]]
    assert [(line.quantity, line.amount) for line in usage] == [
        (Decimal(5), Decimal(5)),
        (Decimal(11), Decimal(10)),
    ]
    resets = QuotaReset.objects.filter(subscription=sub).order_by("window_start")
    assert [r.window_start for r in resets] == [DEC_1, JAN_1, FEB_1]
    sub.refresh_from_db()
    assert (sub.current_period_start, sub.current_period_end) == (
        FEB_1,
        datetime(2027, 2, 28, 21, 0, tzinfo=UTC),
    )
    # The new period starts from zero (R-Q1 usage-based reset).
    assert subscription_usage(subscription=sub).service("prints").used == 0


def test_advancing_twice_or_again_to_the_same_instant_runs_nothing_twice(
    office_subscription, tenant, clock, send
):
    sub = office_subscription
    _three_months(clock, sub, send, tenant)
    first = _advance(clock, FEB_1 + timedelta(hours=1))
    again = _advance(clock, FEB_1 + timedelta(hours=1))
    assert first.steps and again.steps == []
    assert len(_period_invoices(sub)) == 3
    assert PeriodClose.objects.filter(subscription=sub).count() == 3
    assert QuotaReset.objects.filter(subscription=sub).count() == 3
    # The closing step itself is idempotent too (the beat may run it while a clock does).
    assert closing.periods_close_due(clock=clock, at=clock.now).closes == []


def test_an_interrupted_advance_resumes_where_it_stopped(office_subscription, tenant, clock, send):
    sub = office_subscription
    _three_months(clock, sub, send, tenant)

    def fail_after_january(clock_, at):
        if at > JAN_1 + timedelta(days=10):
            raise RuntimeError("worker killed")
        return []

    with clock_jobs(ClockJob("crash", run=fail_after_january)), pytest.raises(RuntimeError):
        _advance(clock, FEB_1 + timedelta(hours=1))
    clock.refresh_from_db()
    # The failing step rolled back whole: the clock stands at the last finished step.
    assert clock.now == JAN_1 + timedelta(days=4)
    assert len(_period_invoices(sub)) == 2

    _advance(clock, FEB_1 + timedelta(hours=1))
    assert [i.total for i in _period_invoices(sub)] == [
        Decimal("1505"),
        Decimal("1510"),
        Decimal("1500"),
    ]


def test_the_advance_report_lists_what_ran_in_time_order(office_subscription, clock):
    result = _advance(clock, JAN_1 + timedelta(hours=1))
    assert [step["at"] for step in result.steps] == [DEC_1, JAN_1]
    first = {entry["type"] for entry in result.steps[0]["ran"]}
    assert first == {"period_close", "quota_reset"}
    close = next(e for e in result.steps[0]["ran"] if e["type"] == "period_close")
    assert close["total"] == "1500.00" or Decimal(close["total"]) == Decimal(1500)


def test_a_clock_never_goes_back(clock):
    from core.errors import DomainError

    with pytest.raises(DomainError) as exc:
        _advance(clock, clock.now - timedelta(seconds=1))
    assert exc.value.code == "clock_backwards"


def test_catch_up_after_downtime_rolls_each_period_once_oldest_first(db, send):
    """Real time: the beat was down three days; three daily periods close, in order."""
    meter = MeterFactory(event_name="call")
    calls = ServiceFactory(code="calls", group__kind="usage_based", meter=meter)
    offer = OfferFactory(code="daily", billing_interval="day", fixed_fee=Decimal("1.00"))
    OfferServiceFactory(
        offer=offer,
        service=calls,
        included=Decimal(2),
        reset_interval="day",
        pricing={"model": "per_unit", "unit_price": "0.50"},
    )
    customer = CustomerFactory()
    start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    sub = subscription_start(customer=customer, offer=offer, start=start)
    for day, count in enumerate((3, 5, 1)):
        at = start + timedelta(days=day, hours=6)
        send(customer, "call", *[at + timedelta(minutes=i) for i in range(count)], now=at)

    report = closing.periods_close_due(clock=None, at=start + timedelta(days=3, minutes=1))
    assert [c["period_start"] for c in report.closes] == [
        start,
        start + timedelta(days=1),
        start + timedelta(days=2),
    ]
    totals = [i.total for i in _period_invoices(sub)]
    # 1.00 fee + (3-2)x0.50, + (5-2)x0.50, + nothing over the 2 included.
    assert totals == [Decimal("1.50"), Decimal("2.50"), Decimal("1.00")]
    assert (
        closing.periods_close_due(clock=None, at=start + timedelta(days=3, minutes=2)).closes == []
    )


def test_a_seat_based_level_carries_over_the_period_end(db, send):
    """R-Q4: the level at a period's end is the level at the next one's start."""
    meter = MeterFactory(event_name="seat", aggregation="sum", property="delta")
    seats = ServiceFactory(code="seats", group__kind="seat_based", meter=meter)
    offer = OfferFactory(code="team", fixed_fee=Decimal("0"))
    OfferServiceFactory(
        offer=offer,
        service=seats,
        included=Decimal(3),
        pricing={"model": "per_unit", "unit_price": "4.00"},
    )
    clock = ClockFactory(now=datetime(2026, 1, 10, tzinfo=UTC))
    customer = CustomerFactory()
    sub = subscription_start(
        customer=customer, offer=offer, start=datetime(2026, 1, 1, tzinfo=UTC), clock=clock
    )
    send(customer, "seat", clock.now, properties={"delta": 5})
    clock_advance(clock=clock, to=datetime(2026, 2, 3, tzinfo=UTC))
    assert subscription_usage(subscription=sub).service("seats").used == 5
    jan = Invoice.objects.get(subscription=sub)
    assert jan.total == Decimal("8.00")  # (5 - 3) x 4.00
    assert not QuotaReset.objects.filter(subscription=sub).exists()


def test_trial_bills_nothing_and_ends_on_time(db, send):
    meter = MeterFactory(event_name="print2")
    prints = ServiceFactory(code="prints2", group__kind="usage_based", meter=meter)
    offer = OfferFactory(code="trial", fixed_fee=Decimal("30.00"), trial_days=10)
    OfferServiceFactory(
        offer=offer,
        service=prints,
        included=Decimal(0),
        pricing={"model": "per_unit", "unit_price": "1.00"},
    )
    clock = ClockFactory(now=datetime(2026, 4, 1, tzinfo=UTC))
    customer = CustomerFactory()
    sub = subscription_start(customer=customer, offer=offer, clock=clock)
    assert sub.status == SubscriptionStatus.TRIALING
    send(customer, "print2", clock.now)
    clock_advance(clock=clock, to=datetime(2026, 4, 11, 1, tzinfo=UTC))
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.ACTIVE
    send(customer, "print2", clock.now, clock.now)
    clock_advance(clock=clock, to=datetime(2026, 5, 1, 1, tzinfo=UTC))
    invoice = Invoice.objects.get(subscription=sub)
    fee = invoice.lines.get(kind="fixed_fee")
    # 20 of April's 30 days after the trial: 30.00 x 20/30; the trial's print is free.
    assert fee.amount == Decimal("20.00")
    assert invoice.lines.get(kind="usage").amount == Decimal("2.00")


def test_cancel_now_invoices_the_partial_period_and_ends(office_subscription, tenant, clock, send):
    send(tenant, "print", *[clock.now - timedelta(minutes=i) for i in range(12)])
    sub = subscription_cancel(subscription=office_subscription, at="now")
    assert sub.status == SubscriptionStatus.CANCELED and sub.ended_at == clock.now
    invoice = Invoice.objects.get(subscription=sub)
    assert invoice.period_end == clock.now
    usage = invoice.lines.get(kind="usage")
    assert usage.amount == Decimal(5)  # 12 prints: one started block over the 10
    fee = invoice.lines.get(kind="fixed_fee")
    assert Decimal(0) < fee.amount < Decimal(1500)  # the part of November served
    # Nothing more is due for it, ever.
    clock_advance(clock=clock, to=FEB_1)
    assert Invoice.objects.filter(subscription=sub).count() == 1


def test_cancel_at_period_end_closes_the_last_period(office_subscription, clock):
    subscription_cancel(subscription=office_subscription, at="period_end")
    clock_advance(clock=clock, to=JAN_1)
    office_subscription.refresh_from_db()
    assert office_subscription.status == SubscriptionStatus.CANCELED
    assert office_subscription.ended_at == DEC_1
    assert Invoice.objects.get(subscription=office_subscription).total == Decimal(1500)
