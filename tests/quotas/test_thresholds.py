"""Billing thresholds (R-T1 … R-T8): early invoices, never a unit billed twice or lost."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.clocks import clock_advance
from billing.invoicing import customer_credit_grant
from billing.models import CustomerCredit, Discount, Invoice
from billing.pricing import parse_pricing, price_usage, round_money
from core.models import OutboxEvent
from quotas import thresholds
from quotas.services import subscription_start
from tests.billing.factories import ClockFactory, CustomerFactory, OfferFactory
from tests.metering.factories import MeterFactory
from tests.quotas.factories import OfferServiceFactory, ServiceFactory

pytestmark = pytest.mark.django_db

APR_1 = datetime(2026, 4, 1, tzinfo=UTC)
MAY_1 = datetime(2026, 5, 1, tzinfo=UTC)
PER_UNIT = {"model": "per_unit", "unit_price": "1.00"}


def metered(pricing=PER_UNIT, *, fee="10.00", included=0, trial_days=0, tax="0", code="calls"):
    """An offer with one usage-based service ``code`` (monthly, UTC) and a subscription to it on
    a clock standing at April 1st."""
    meter = MeterFactory(event_name=code, aggregation="sum", property="n")
    service = ServiceFactory(code=code, group__kind="usage_based", meter=meter)
    offer = OfferFactory(
        code=f"plan-{code}",
        fixed_fee=Decimal(fee),
        trial_days=trial_days,
        tax_rate=Decimal(tax),
    )
    OfferServiceFactory(offer=offer, service=service, included=Decimal(included), pricing=pricing)
    clock = ClockFactory(now=APR_1)
    customer = CustomerFactory()
    sub = subscription_start(customer=customer, offer=offer, start=APR_1, clock=clock)
    return sub


def use(sub, n, *, at=None, send_id=[0]):  # noqa: B006 - a counter shared by the module
    """Move the clock to ``at`` and report ``n`` units used there, through ingestion."""
    from metering.services import event_ingest_batch

    clock = sub.clock
    if at is not None and at > clock.now:
        clock_advance(clock=clock, to=at)
    send_id[0] += 1
    result = event_ingest_batch(
        events=[
            {
                "id": f"t{send_id[0]}",
                "name": sub.offer.offer_services.get().service.meter.event_name,
                "customer": sub.customer.external_id,
                "timestamp": clock.now.isoformat(),
                "properties": {"n": str(n)},
            }
        ]
    )
    assert result.accepted == 1, result.rejected
    return thresholds.billing_thresholds_evaluate(subscription_id=sub.pk)


def invoices(sub, reason=None):
    qs = Invoice.objects.filter(subscription=sub).order_by("id")
    return list(qs if reason is None else qs.filter(reason=reason))


# --------------------------------------------------------------------------- R-T1


def test_monetary_threshold_issues_an_invoice_at_once_r_t1(api, django_capture_on_commit_callbacks):
    sub = metered()
    response = api.put(
        f"/api/v1/subscriptions/{sub.pk}/billing-thresholds",
        {"amount_gte": "100.00"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "amount_gte": "100",
        "reset_billing_cycle_anchor": False,
        "items": [],
    }
    use(sub, 80, at=APR_1 + timedelta(days=3))
    assert invoices(sub) == []  # 10 fee + 80 = 90 < 100
    # Through the API: the ingested batch queues the evaluation when it commits.
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/events",
            {
                "id": "over",
                "name": "calls",
                "customer": sub.customer.external_id,
                "timestamp": sub.clock.now.isoformat(),
                "properties": {"n": 15},
            },
            format="json",
        )
    assert response.json()["accepted"] == 1
    [invoice] = invoices(sub)
    assert (invoice.reason, invoice.total) == ("threshold", Decimal("105.00"))
    assert {(line.kind, line.amount) for line in invoice.lines.all()} == {
        ("fixed_fee", Decimal("10.00")),
        ("usage", Decimal("95.00")),
    }
    event = OutboxEvent.objects.get(type="billing_threshold.reached")
    assert event.payload["invoice"] == invoice.pk
    # Appears in the invoices API with its lines.
    body = api.get(f"/api/v1/invoices/{invoice.pk}").json()
    assert body["reason"] == "threshold" and body["total"] == "105.00"


def test_usage_threshold_per_item_counts_usage_since_the_last_invoice_r_t1():
    sub = metered()
    thresholds.billing_thresholds_set(
        subscription=sub, items=[{"service": "calls", "usage_gte": "50"}]
    )
    assert use(sub, 49, at=APR_1 + timedelta(days=1)) is None
    first = use(sub, 1)
    assert first is not None and first["crossed"][0]["usage"] == "50"
    # The next one needs 50 more since that invoice, not 50 in all.
    assert use(sub, 30, at=APR_1 + timedelta(days=2)) is None
    assert use(sub, 25) is not None
    assert [i.lines.get(kind="usage").quantity for i in invoices(sub)] == [50, 55]


# --------------------------------------------------------------------------- R-T2, R-T3


def test_thresholds_do_not_apply_during_a_trial_r_t2():
    sub = metered(trial_days=14)
    thresholds.billing_thresholds_set(subscription=sub, amount_gte="20")
    assert use(sub, 500, at=APR_1 + timedelta(days=2)) is None
    assert invoices(sub) == []
    # After the trial, usage counts from the trial's end.
    assert use(sub, 30, at=APR_1 + timedelta(days=15)) is not None
    assert invoices(sub)[0].lines.get(kind="usage").quantity == 30


def test_thresholds_are_not_evaluated_in_the_24_hours_before_the_end_r_t3():
    sub = metered()
    thresholds.billing_thresholds_set(subscription=sub, amount_gte="50")
    assert use(sub, 100, at=MAY_1 - timedelta(hours=23)) is None
    assert use(sub, 1, at=MAY_1 - timedelta(hours=1)) is None
    clock_advance(clock=sub.clock, to=MAY_1 + timedelta(minutes=1))
    # One invoice on May 1st: the period end's, with all of April.
    [invoice] = invoices(sub)
    assert (invoice.reason, invoice.total) == ("period_end", Decimal("111.00"))


def test_r_t3_also_before_a_requested_cancel():
    from quotas.services import subscription_cancel

    sub = metered()
    thresholds.billing_thresholds_set(subscription=sub, amount_gte="50")
    clock_advance(clock=sub.clock, to=APR_1 + timedelta(days=5))
    subscription_cancel(subscription=sub, at=APR_1 + timedelta(days=6))
    assert use(sub, 100, at=APR_1 + timedelta(days=5, hours=2)) is None


# --------------------------------------------------------------------------- R-T4, R-T6


def test_monetary_threshold_must_exceed_the_fixed_fees_r_t4(api):
    sub = metered(fee="10.00")
    url = f"/api/v1/subscriptions/{sub.pk}/billing-thresholds"
    for amount in ("10.00", "9.99", "0"):
        response = api.put(url, {"amount_gte": amount}, format="json")
        assert response.status_code in (400, 422)
        code = response.json()["error"]["code"]
        assert code in ("threshold_below_fixed_fees", "invalid_threshold", "invalid")
    response = api.put(url, {"amount_gte": "10.00"}, format="json")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "threshold_below_fixed_fees"
    assert response.json()["error"]["details"]["fixed_fees"] == "10.00"
    assert api.put(url, {"amount_gte": "10.01"}, format="json").status_code == 200


def test_one_monetary_threshold_per_subscription_one_usage_threshold_per_item_r_t6(api):
    sub = metered()
    url = f"/api/v1/subscriptions/{sub.pk}/billing-thresholds"
    twice = {
        "items": [{"service": "calls", "usage_gte": "5"}, {"service": "calls", "usage_gte": "9"}]
    }
    response = api.put(url, twice, format="json")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "duplicate_usage_threshold"
    # A PUT replaces: still one monetary threshold, the latest.
    api.put(url, {"amount_gte": "50"}, format="json")
    api.put(
        url, {"amount_gte": "60", "items": [{"service": "calls", "usage_gte": "5"}]}, format="json"
    )
    body = api.get(url).json()
    assert body == {
        "amount_gte": "60",
        "reset_billing_cycle_anchor": False,
        "items": [{"service": "calls", "usage_gte": "5"}],
    }
    from billing.models import BillingThreshold

    assert BillingThreshold.objects.filter(subscription=sub).count() == 1


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"amount_gte": "abc"}, 400, None),
        ({"amount_gte": "-5"}, 400, None),
        ({"items": [{"service": "nope", "usage_gte": "5"}]}, 400, "unknown_service"),
        ({"items": [{"service": "calls", "usage_gte": "0"}]}, 400, "invalid_threshold"),
        ({"items": [{"service": "calls"}]}, 400, None),
        ({"items": "calls"}, 400, None),
        ([], 400, None),
    ],
)
def test_bad_threshold_input_is_a_clean_error(body, status, code, api):
    sub = metered()
    response = api.put(f"/api/v1/subscriptions/{sub.pk}/billing-thresholds", body, format="json")
    assert response.status_code == status
    if code:
        assert response.json()["error"]["code"] == code
    from billing.models import BillingThreshold, UsageThreshold

    assert not BillingThreshold.objects.exists() and not UsageThreshold.objects.exists()


# --------------------------------------------------------------------------- R-T5


@pytest.mark.parametrize(
    "setup, fires",
    [
        ("nothing", True),  # 10 + 90 = 100 >= 100
        ("tax", True),  # a 20 % tax is not counted: still 100 before tax
        ("discount", False),  # 10 % off: 90
        ("credit", False),  # 5.00 of credit: 95
    ],
)
def test_the_compared_amount_excludes_tax_and_includes_discounts_and_credits_r_t5(setup, fires):
    sub = metered(tax="20" if setup == "tax" else "0")
    if setup == "discount":
        Discount.objects.create(name="10 %", subscription=sub, percent=Decimal(10))
    if setup == "credit":
        customer_credit_grant(
            customer=sub.customer, amount=Decimal(5), currency="USD", description="goodwill"
        )
    thresholds.billing_thresholds_set(subscription=sub, amount_gte="100")
    assert (use(sub, 90, at=APR_1 + timedelta(days=2)) is not None) is fires
    if setup == "tax":
        assert invoices(sub)[0].total == Decimal("120.00")  # the invoice itself is taxed


# --------------------------------------------------------------------------- R-T7


def test_the_period_end_invoice_bills_only_what_thresholds_did_not_r_t7():
    sub = metered()
    thresholds.billing_thresholds_set(subscription=sub, amount_gte="100")
    use(sub, 95, at=APR_1 + timedelta(days=3))  # 105 >= 100: slightly above is fine (R-T7)
    use(sub, 40, at=APR_1 + timedelta(days=10))
    use(sub, 70, at=APR_1 + timedelta(days=12))  # 110 since the first: a second invoice
    use(sub, 7, at=APR_1 + timedelta(days=20))
    clock_advance(clock=sub.clock, to=MAY_1)
    early = invoices(sub, "threshold")
    assert [i.total for i in early] == [Decimal("105.00"), Decimal("110.00")]
    [final] = invoices(sub, "period_end")
    assert [(line.kind, line.quantity) for line in final.lines.all()] == [("usage", Decimal(7))]
    assert final.total == Decimal("7.00")
    # 212 units + the fee, billed once in all.
    assert sum(i.total for i in invoices(sub)) == Decimal("222.00")


def test_reset_billing_cycle_anchor_starts_a_new_period_at_the_threshold_invoice():
    sub = metered()
    thresholds.billing_thresholds_set(
        subscription=sub, amount_gte="100", reset_billing_cycle_anchor=True
    )
    crossed_at = APR_1 + timedelta(days=15)
    use(sub, 100, at=crossed_at - timedelta(hours=1))
    clock_advance(clock=sub.clock, to=crossed_at)  # the clock's threshold job sees it
    sub.refresh_from_db()
    assert sub.billing_anchor == crossed_at
    assert (sub.current_period_start, sub.current_period_end) == (
        crossed_at,
        datetime(2026, 5, 16, tzinfo=UTC),
    )
    [invoice] = invoices(sub)
    # Half of April's fee (15 of 30 days) and the 100 units; the period closed there.
    assert invoice.lines.get(kind="fixed_fee").amount == Decimal("5.00")
    assert invoice.period_end == crossed_at
    clock_advance(clock=sub.clock, to=datetime(2026, 5, 16, 1, tzinfo=UTC))
    assert [i.total for i in invoices(sub)] == [Decimal("105.00"), Decimal("10.00")]


def test_evaluating_twice_issues_one_invoice():
    sub = metered()
    thresholds.billing_thresholds_set(subscription=sub, amount_gte="50")
    assert use(sub, 60, at=APR_1 + timedelta(days=1)) is not None
    assert thresholds.billing_thresholds_evaluate(subscription_id=sub.pk) is None
    clock_advance(clock=sub.clock, to=sub.clock.now)  # the clock's job evaluates again
    assert len(invoices(sub)) == 1


# --------------------------------------------------------------------------- R-T8


PRICINGS = [
    {"model": "per_unit", "unit_price": "0.37"},
    {"model": "package", "package_size": "10", "package_price": "5.00"},
    {
        "model": "graduated",
        "tiers": [
            {"up_to": "50", "unit_price": "1.10", "flat_fee": "2.00"},
            {"up_to": "200", "unit_price": "0.55"},
            {"up_to": None, "unit_price": "0.1234"},
        ],
    },
    {
        "model": "volume",
        "tiers": [
            {"up_to": "40", "unit_price": "1.00"},
            {"up_to": "150", "unit_price": "0.75", "flat_fee": "3.00"},
            {"up_to": None, "unit_price": "0.333"},
        ],
    },
]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    pricing=st.sampled_from(PRICINGS),
    included=st.sampled_from([0, 7, 25]),
    amount_gte=st.one_of(st.none(), st.integers(11, 120)),
    usage_gte=st.one_of(st.none(), st.integers(1, 80)),
    usages=st.lists(st.tuples(st.integers(1, 60), st.integers(0, 28 * 24)), max_size=10),
)
def test_all_invoices_of_a_period_add_up_to_the_price_of_its_usage_r_t7_r_t8(
    db, pricing, included, amount_gte, usage_gte, usages
):
    """Whatever the pricing model (R-T8) and thresholds, the period's invoices together bill
    the price of the period's total usage, rounded once: nothing twice, nothing lost (R-T7)."""
    with transaction.atomic():
        sub = metered(pricing, included=included, code="units")
        items = [] if usage_gte is None else [{"service": "units", "usage_gte": str(usage_gte)}]
        thresholds.billing_thresholds_set(subscription=sub, amount_gte=amount_gte, items=items)
        for quantity, hours in sorted(usages, key=lambda u: u[1]):
            use(sub, quantity, at=max(sub.clock.now, APR_1 + timedelta(hours=hours)))
        clock_advance(clock=sub.clock, to=MAY_1)
        total = sum(q for q, _ in usages)
        expected_usage = round_money(
            price_usage(parse_pricing(pricing), Decimal(total), Decimal(included)), "USD"
        )
        all_invoices = invoices(sub)
        usage_billed = sum(
            (line.amount for i in all_invoices for line in i.lines.exclude(service_code="")),
            Decimal(0),
        )
        assert usage_billed == expected_usage
        # A non-monotone price (volume) can make the period owe the customer: that part is
        # customer credit, not a negative invoice.
        owed = sum(CustomerCredit.objects.filter(amount__gt=0).values_list("amount", flat=True))
        assert sum(i.total for i in all_invoices) - owed == expected_usage + Decimal("10.00")
        # The period-end invoice exists only if thresholds left something to bill.
        assert sum(i.reason == "period_end" for i in all_invoices) <= 1
        transaction.set_rollback(True)
