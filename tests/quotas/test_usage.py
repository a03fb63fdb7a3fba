"""Usage of a subscription: R-Q1..R-Q4 quotas, R-L1..R-L3 limits and resets, R-L7 exactness."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.charges import pending_charge_add
from billing.models import Offer
from quotas.demo import demo_load
from quotas.models import AddOn
from quotas.selectors import entitlement_check, subscription_billable_usage, subscription_usage
from quotas.services import addon_purchase, subscription_start
from tests.billing.factories import ClockFactory, ContactFactory, CustomerFactory, OfferFactory
from tests.metering.factories import MeterFactory
from tests.quotas.factories import OfferServiceFactory, ServiceFactory
from tests.quotas.fixtures import NOV_1_ISTANBUL, service_card

pytestmark = pytest.mark.django_db

LA = "America/Los_Angeles"


@pytest.mark.parametrize(
    ("prints", "overage"),
    [(9, "0.00"), (10, "0.00"), (15, "5.00"), (20, "5.00"), (21, "10.00")],
)
def test_r_q2_package_overage_through_ingestion_usage_api_and_page(
    prints, overage, office_subscription, tenant, send, api, client
):
    """R-Q2: 10 prints included, every started block of 10 more costs 5 TL."""
    at = NOV_1_ISTANBUL + timedelta(days=4)
    send(tenant, "print", *[at + timedelta(minutes=i) for i in range(prints)])

    body = api.get(f"/api/v1/subscriptions/{office_subscription.id}/usage").json()
    service = next(s for s in body["services"] if s["service"] == "prints")
    over = max(0, prints - 10)
    assert service == {
        "service": "prints",
        "name": "Printing",
        "kind": "usage_based",
        "included": "10",
        "used": str(prints),
        "remaining": str(max(0, 10 - prints)),
        "overage_quantity": str(over),
        "overage_amount": overage,
        "resets_at": "2026-11-30T21:00:00Z",  # Dec 1 00:00 in Istanbul
        "has_access": True,
        "unit": "prints",
        "reset_interval": "billing_period",
        "limit_behaviour": "overage",
        "addon_quantity": "0",
    }
    assert body["period"] == {"start": "2026-10-31T21:00:00Z", "end": "2026-11-30T21:00:00Z"}
    assert body["currency"] == "TRY"
    assert body["amount_due_so_far"] == str(Decimal("1500.00") + Decimal(overage))

    client.login(username="sahip@ofis.test", password="pw-ofis-123")
    card = service_card(
        client.get(f"/my/subscriptions/{office_subscription.id}/").content.decode(), "prints"
    )
    assert f'<strong data-field="used">{prints}</strong>' in card
    assert f'data-field="overage">{overage} TRY' in card
    assert f'data-field="remaining">{max(0, 10 - prints)}<' in card


def test_amount_due_so_far_adds_fixed_fee_overage_and_pending_charges(
    office_subscription, tenant, send
):
    send(tenant, "print", *[NOV_1_ISTANBUL + timedelta(hours=i) for i in range(15)])
    pending_charge_add(
        subscription=office_subscription,
        description="Key card",
        unit_price=Decimal("12.345"),
        amount=Decimal("12.345"),
        at=NOV_1_ISTANBUL,
        idempotency_key="card-1",
    )
    usage = subscription_usage(subscription=office_subscription)
    assert usage.fixed_fee == Decimal("1500.00")
    assert usage.pending_charges == Decimal("12.35")  # rounded once, when recorded
    assert usage.amount_due_so_far == Decimal("1517.35")


def test_no_fixed_fee_is_due_during_a_trial(office, tenant, clock):
    office.trial_days = 30
    office.save()
    subscription = subscription_start(
        customer=tenant, offer=office, start=NOV_1_ISTANBUL, clock=clock
    )
    assert subscription_usage(subscription=subscription).amount_due_so_far == Decimal("0.00")


def test_on_off_features_report_access_only(office_subscription, api):
    body = api.get(f"/api/v1/subscriptions/{office_subscription.id}/usage").json()
    support = next(s for s in body["services"] if s["service"] == "support")
    assert support["included"] is True
    assert (support["used"], support["remaining"], support["resets_at"]) == (None, None, None)
    assert support["has_access"] is True


def _daily_offer(behaviour="overage", pricing=None, tz="Europe/Istanbul", included=10):
    meter = MeterFactory(event_name="call")
    service = ServiceFactory(code="calls", group__kind="usage_based", meter=meter)
    offer = OfferFactory(timezone=tz)
    OfferServiceFactory(
        offer=offer,
        service=service,
        included=included,
        reset_interval="day",
        limit_behaviour=behaviour,
        pricing=pricing,
    )
    return offer


def test_daily_quota_resets_at_local_midnight_of_the_offer_zone_r_q1(send):
    offer = _daily_offer(tz="Europe/Istanbul")  # UTC+3: midnight is 21:00 UTC
    clock = ClockFactory(now=datetime(2026, 11, 10, 20, 59, tzinfo=UTC))
    customer = CustomerFactory()
    subscription = subscription_start(
        customer=customer, offer=offer, start=datetime(2026, 11, 1, tzinfo=UTC), clock=clock
    )
    send(customer, "call", *[datetime(2026, 11, 10, 20, 58, i, tzinfo=UTC) for i in range(7)])
    calls = subscription_usage(subscription=subscription).service("calls")
    assert (calls.used, calls.remaining) == (7, 3)
    assert calls.resets_at == datetime(2026, 11, 10, 21, 0, tzinfo=UTC)

    clock.now = datetime(2026, 11, 10, 21, 0, tzinfo=UTC)  # 00:00 on Nov 11 in Istanbul
    clock.save()
    send(customer, "call", clock.now)
    calls = subscription_usage(subscription=subscription).service("calls")
    assert (calls.used, calls.remaining) == (1, 9)
    assert calls.resets_at == datetime(2026, 11, 11, 21, 0, tzinfo=UTC)


def test_monthly_limit_resets_on_the_1st_at_midnight_pacific_in_winter_r_l3(send, api):
    """R-L3: the 1st of the month at 00:00 in UTC-8 (Los Angeles in winter): 08:00 UTC."""
    demo_load()
    clock = ClockFactory(now=datetime(2026, 11, 30, 23, 0, tzinfo=UTC))
    customer = CustomerFactory(external_id="cus_free")
    free = Offer.objects.get(code="free")
    subscription = subscription_start(
        customer=customer, offer=free, start=datetime(2026, 11, 1, 7, 0, tzinfo=UTC), clock=clock
    )
    send(customer, "action_run", *[datetime(2026, 11, 30, 22, 0, i, tzinfo=UTC) for i in range(50)])
    send(customer, "action_run", *[datetime(2026, 11, 30, 22, 1, i, tzinfo=UTC) for i in range(50)])
    actions = subscription_usage(subscription=subscription).service("monthly-actions")
    assert (actions.used, actions.included, actions.has_access) == (100, 100, False)
    assert actions.resets_at == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)

    clock.now = datetime(2026, 12, 1, 7, 59, 59, tzinfo=UTC)  # Nov 30, 23:59:59 PST
    clock.save()
    assert (
        api.get("/api/v1/customers/cus_free/entitlements/monthly-actions").json()["has_access"]
        is False
    )
    clock.now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # Dec 1, 00:00 PST
    clock.save()
    body = api.get("/api/v1/customers/cus_free/entitlements/monthly-actions").json()
    assert body == {
        "has_access": True,
        "used": "0",
        "limit": "100",
        "remaining": "100",
        "resets_at": "2027-01-01T08:00:00Z",
        "service": "monthly-actions",
        "kind": "usage_based",
        "subscription": subscription.id,
    }


def _seat_offer(aggregation="last", prop="active"):
    meter = MeterFactory(event_name="automation_state", aggregation=aggregation, property=prop)
    service = ServiceFactory(code="automations", group__kind="seat_based", meter=meter)
    offer = OfferFactory(timezone=LA)
    OfferServiceFactory(offer=offer, service=service, included=5, limit_behaviour="block")
    return offer


@pytest.mark.parametrize(
    ("aggregation", "prop", "values"),
    [
        ("last", "active", [3, 5, 2]),  # the level itself is reported
        ("sum", "delta", [3, 2, -3]),  # +/- deltas add up to the level
    ],
)
def test_seat_level_carries_over_the_period_end_and_can_go_down_r_q4(
    aggregation, prop, values, send
):
    offer = _seat_offer(aggregation, prop)
    start = datetime(2026, 11, 1, 7, 0, tzinfo=UTC)  # Nov 1 00:00 PDT
    clock = ClockFactory(now=datetime(2026, 11, 20, tzinfo=UTC))
    customer = CustomerFactory()
    subscription = subscription_start(customer=customer, offer=offer, start=start, clock=clock)
    send(
        customer,
        "automation_state",
        datetime(2026, 11, 10, tzinfo=UTC),
        properties={prop: values[0]},
    )
    send(
        customer,
        "automation_state",
        datetime(2026, 11, 20, tzinfo=UTC),
        properties={prop: values[1]},
    )
    november = subscription_usage(subscription=subscription)
    level = november.service("automations")
    assert (level.used, level.remaining, level.resets_at, level.has_access) == (5, 0, None, False)

    clock.now = november.period_end  # the next billing period starts with the same level
    clock.save()
    december = subscription_usage(subscription=subscription)
    assert december.period_start == november.period_end == datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert december.service("automations").used == 5

    clock.now += timedelta(hours=2)
    clock.save()
    send(customer, "automation_state", clock.now - timedelta(hours=1), properties={prop: values[2]})
    level = subscription_usage(subscription=subscription).service("automations")
    assert (level.used, level.remaining, level.has_access) == (2, 3, True)
    # Billing a closed period reads the level at its end.
    billed = subscription_billable_usage(
        subscription=subscription,
        period_start=november.period_start,
        period_end=november.period_end,
    )
    assert [(b.service_code, b.quantity) for b in billed] == [("automations", 5)]


def test_block_denies_at_the_quota_until_reset_or_add_on_r_l2(send, api):
    offer = _daily_offer(behaviour="block", tz="UTC", included=3)
    offer.level = 2
    offer.save()
    service = offer.offer_services.get().service
    AddOn.objects.create(
        code="more-calls",
        name="More calls",
        service=service,
        quantity=2,
        price=Decimal("6"),
        min_level=2,
    )
    clock = ClockFactory(now=datetime(2026, 11, 10, 12, tzinfo=UTC))
    customer = CustomerFactory(external_id="cus_block")
    subscription = subscription_start(
        customer=customer, offer=offer, start=datetime(2026, 11, 1, tzinfo=UTC), clock=clock
    )
    url = "/api/v1/customers/cus_block/entitlements/calls"
    send(customer, "call", *[clock.now - timedelta(minutes=i) for i in range(1, 3)])
    assert api.get(url).json()["has_access"] is True  # 2 of 3
    send(customer, "call", clock.now)
    body = api.get(url).json()
    assert (body["has_access"], body["used"], body["limit"], body["remaining"]) == (
        False,
        "3",
        "3",
        "0",
    )

    addon_purchase(subscription=subscription, addon_code="more-calls", quantity=1)
    body = api.get(url).json()
    assert (body["has_access"], body["limit"], body["remaining"]) == (True, "5", "2")
    send(customer, "call", clock.now, clock.now)
    assert api.get(url).json()["has_access"] is False  # at the raised quota

    clock.now = datetime(2026, 11, 11, tzinfo=UTC)  # the daily reset
    clock.save()
    body = api.get(url).json()
    assert (body["has_access"], body["used"], body["limit"]) == (True, "0", "5")


@pytest.mark.parametrize("behaviour", ["notify", "overage"])
def test_notify_and_overage_keep_access_past_the_quota(behaviour, send):
    offer = _daily_offer(behaviour=behaviour, included=1)
    customer = CustomerFactory()
    clock = ClockFactory(now=datetime(2026, 11, 10, 12, tzinfo=UTC))
    subscription = subscription_start(
        customer=customer, offer=offer, start=datetime(2026, 11, 1, tzinfo=UTC), clock=clock
    )
    send(customer, "call", clock.now, clock.now)
    calls = subscription_usage(subscription=subscription).service("calls")
    assert (calls.used, calls.overage_quantity, calls.has_access) == (2, 1, True)


@pytest.mark.parametrize(
    ("plan", "actions", "automations"),
    [
        ("free", "100", "5"),
        ("unlimited", "1000", "500"),
        ("business", "10000", None),
        ("business-plus", "25000", None),
        ("enterprise", "250000", None),
    ],
)
def test_r_l1_plan_limits_including_unlimited(plan, actions, automations, api, send):
    demo_load()
    customer = CustomerFactory(external_id=f"cus_{plan}")
    offer = Offer.objects.get(code=plan)
    clock = ClockFactory(now=datetime(2026, 11, 20, tzinfo=UTC))
    subscription = subscription_start(
        customer=customer, offer=offer, start=datetime(2026, 11, 1, 7, tzinfo=UTC), clock=clock
    )
    send(customer, "automation_state", clock.now - timedelta(hours=1), properties={"active": 4})
    body = api.get(f"/api/v1/subscriptions/{subscription.id}/usage").json()
    by_code = {s["service"]: s for s in body["services"]}
    assert by_code["monthly-actions"]["included"] == actions
    assert by_code["monthly-actions"]["kind"] == "usage_based"
    assert by_code["active-automations"]["included"] == automations
    assert by_code["active-automations"]["kind"] == "seat_based"
    assert by_code["active-automations"]["used"] == "4"
    if automations is None:  # unlimited: always access, nothing remaining to count
        assert by_code["active-automations"]["remaining"] is None
        assert by_code["active-automations"]["has_access"] is True
    entitlement = api.get(f"/api/v1/customers/cus_{plan}/entitlements/active-automations").json()
    assert (entitlement["limit"], entitlement["has_access"]) == (automations, True)


def test_r_l7_usage_is_exact_after_every_event(send, client, django_user_model):
    """R-L7 beyond: no refresh every ten uses; the page and the API move with each event."""
    demo_load()
    clock = ClockFactory(now=datetime(2026, 11, 20, tzinfo=UTC))
    customer = CustomerFactory(external_id="cus_flow")
    user = django_user_model.objects.create_user("ops@flow.test", password="pw-flow-123")
    ContactFactory(customer=customer, email="ops@flow.test", role="admin", user=user)
    business = subscription_start(
        customer=customer,
        offer=Offer.objects.get(code="business"),
        start=datetime(2026, 11, 1, 7, tzinfo=UTC),
        clock=clock,
    )
    client.login(username="ops@flow.test", password="pw-flow-123")
    for i in range(1, 13):
        send(customer, "action_run", clock.now - timedelta(seconds=i))
        assert subscription_usage(subscription=business).service("monthly-actions").used == i
        assert (
            entitlement_check(
                customer_external_id="cus_flow", service_code="monthly-actions"
            ).remaining
            == 10_000 - i
        )
        card = service_card(
            client.get(f"/my/subscriptions/{business.id}/").content.decode(), "monthly-actions"
        )
        assert f'<strong data-field="used">{i}</strong> actions used / ' in card
        assert '<strong data-field="allowed">10,000</strong> available this month' in card


def test_billable_usage_prices_each_daily_window_inside_the_period(send):
    """A 10-a-day quota on a monthly invoice: 3 days of 15 bill 3 x 5, not 45 - 10."""
    offer = _daily_offer(pricing={"model": "per_unit", "unit_price": "0.50"}, tz="UTC")
    customer = CustomerFactory()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    subscription = subscription_start(customer=customer, offer=offer, start=start)
    for day in (2, 3, 4):
        send(
            customer,
            "call",
            *[datetime(2026, 11, day, 9, i, tzinfo=UTC) for i in range(15)],
            now=datetime(2026, 11, 21, tzinfo=UTC),
        )
    (billed,) = subscription_billable_usage(
        subscription=subscription, period_start=start, period_end=datetime(2026, 12, 1, tzinfo=UTC)
    )
    assert (billed.service_code, billed.quantity, billed.billable_quantity) == ("calls", 45, 15)
    assert (billed.amount, billed.unit_price, billed.pricing_model) == (
        Decimal("7.5"),
        Decimal("0.50"),
        "per_unit",
    )


def test_a_window_straddling_the_period_bills_only_its_increment(send):
    """Weekly quota (Mon-Mon), monthly invoice: the week of Nov 30 spans two invoices."""
    meter = MeterFactory(event_name="call")
    service = ServiceFactory(code="calls", group__kind="usage_based", meter=meter)
    offer = OfferFactory(timezone="UTC")
    OfferServiceFactory(
        offer=offer,
        service=service,
        included=10,
        reset_interval="week",
        pricing={"model": "per_unit", "unit_price": "1"},
    )
    customer = CustomerFactory()
    nov = datetime(2026, 11, 1, tzinfo=UTC)
    dec = datetime(2026, 12, 1, tzinfo=UTC)
    jan = datetime(2027, 1, 1, tzinfo=UTC)
    subscription = subscription_start(customer=customer, offer=offer, start=nov)
    later = datetime(2026, 12, 20, tzinfo=UTC)
    send(
        customer, "call", *[datetime(2026, 11, 30, 10, i, tzinfo=UTC) for i in range(12)], now=later
    )
    send(customer, "call", *[datetime(2026, 12, 1, 10, i, tzinfo=UTC) for i in range(5)], now=later)
    (november,) = subscription_billable_usage(
        subscription=subscription, period_start=nov, period_end=dec
    )
    (december,) = subscription_billable_usage(
        subscription=subscription, period_start=dec, period_end=jan
    )
    assert (november.quantity, november.billable_quantity, november.amount) == (12, 2, 2)
    assert (december.quantity, december.billable_quantity, december.amount) == (5, 5, 5)


def test_on_off_services_are_not_billable_usage(office_subscription):
    billed = subscription_billable_usage(
        subscription=office_subscription,
        period_start=office_subscription.current_period_start,
        period_end=office_subscription.current_period_end,
    )
    assert [b.service_code for b in billed] == ["prints"]
    assert (billed[0].quantity, billed[0].amount, billed[0].pricing_model) == (0, 0, "package")
