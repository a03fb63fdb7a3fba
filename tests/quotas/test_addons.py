"""Add-ons: allowed from a plan level (R-L5), prorated when bought mid-cycle (R-L6)."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing.models import Offer, PendingCharge
from quotas.demo import demo_load
from quotas.models import AddOnPurchase
from quotas.selectors import subscription_active_addons, subscription_usage
from quotas.services import addon_purchase, subscription_start
from tests.billing.factories import ClockFactory, CustomerFactory

pytestmark = pytest.mark.django_db


def test_r_l6_400_a_year_with_six_of_twelve_months_left_charges_200(annual):
    """R-L6: an add-on of $400 a year bought with six months of the annual cycle left."""
    clock = ClockFactory(now=datetime(2026, 7, 1, tzinfo=UTC))
    subscription = subscription_start(
        customer=CustomerFactory(),
        offer=annual,
        start=datetime(2026, 1, 1, tzinfo=UTC),
        clock=clock,
    )
    purchase = addon_purchase(subscription=subscription, addon_code="more-actions", quantity=1)
    charge = purchase.charge
    assert charge.amount == Decimal("200.00")
    assert (charge.currency, charge.unit_price, charge.quantity) == ("USD", 400, 1)
    assert (charge.kind, charge.service_code, charge.invoiced_at) == ("addon", "actions", None)
    assert subscription_usage(subscription=subscription).amount_due_so_far == Decimal("210.00")


def test_r_l6_through_the_api(annual, api):
    clock = ClockFactory(now=datetime(2026, 7, 1, tzinfo=UTC))
    subscription = subscription_start(
        customer=CustomerFactory(),
        offer=annual,
        start=datetime(2026, 1, 1, tzinfo=UTC),
        clock=clock,
    )
    response = api.post(
        f"/api/v1/subscriptions/{subscription.id}/addons",
        {"addon": "more-actions", "quantity": 2},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["amount"], body["currency"], body["quantity"]) == ("400.00", "USD", "2")
    assert body["purchase"]["quantity"] == 2
    usage = api.get(f"/api/v1/subscriptions/{subscription.id}/usage").json()
    actions = usage["services"][0]
    assert (actions["included"], actions["addon_quantity"]) == ("2000", "1000")


def test_quota_rises_at_once_and_ends_with_the_purchase(annual):
    clock = ClockFactory(now=datetime(2026, 3, 10, tzinfo=UTC))
    subscription = subscription_start(
        customer=CustomerFactory(),
        offer=annual,
        start=datetime(2026, 1, 1, tzinfo=UTC),
        clock=clock,
    )
    purchase = addon_purchase(subscription=subscription, addon_code="more-actions", quantity=3)
    assert subscription_usage(subscription=subscription).service("actions").included == 2500
    assert subscription_active_addons(subscription=subscription) == [purchase]
    purchase.canceled_at = clock.now
    purchase.save()
    assert subscription_usage(subscription=subscription).service("actions").included == 1000
    assert subscription_active_addons(subscription=subscription) == []


def test_r_l5_lower_plans_cannot_buy_add_ons(api):
    demo_load()
    clock = ClockFactory(now=datetime(2026, 11, 20, tzinfo=UTC))
    subs = {}
    for plan in ("free", "unlimited", "business", "enterprise"):
        subs[plan] = subscription_start(
            customer=CustomerFactory(external_id=f"cus_{plan}"),
            offer=Offer.objects.get(code=plan),
            start=datetime(2026, 11, 1, 7, tzinfo=UTC),
            clock=clock,
        )
    for plan in ("free", "unlimited"):  # levels 0 and 1
        response = api.post(
            f"/api/v1/subscriptions/{subs[plan].id}/addons",
            {"addon": "more-actions", "quantity": 1},
            format="json",
        )
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "addon_not_allowed"
        assert error["details"]["min_level"] == 2
    for plan in ("business", "enterprise"):  # levels 2 and 4
        response = api.post(
            f"/api/v1/subscriptions/{subs[plan].id}/addons",
            {"addon": "more-actions", "quantity": 1},
            format="json",
        )
        assert response.status_code == 201, response.json()
    assert not AddOnPurchase.objects.filter(subscription__in=[subs["free"], subs["unlimited"]])
    # Business already has unlimited automations: more of them is refused, not sold.
    response = api.post(
        f"/api/v1/subscriptions/{subs['business'].id}/addons",
        {"addon": "more-automations", "quantity": 1},
        format="json",
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"]["reason"] == "unlimited"


def test_offers_list_their_available_add_ons(api):
    demo_load()
    offers = {o["code"]: o for o in api.get("/api/v1/offers?page_size=50").json()["results"]}
    assert offers["free"]["addons"] == []
    assert [a["code"] for a in offers["business"]["addons"]] == ["more-actions"]
    (addon,) = offers["enterprise"]["addons"]
    assert addon == {
        "code": "more-actions",
        "name": "More actions",
        "description": "10,000 more actions every month.",
        "service": "monthly-actions",
        "quantity": "10000",
        "price": "25.000000",
        "min_level": 2,
    }
    single = api.get("/api/v1/offers/business").json()
    assert [a["code"] for a in single["addons"]] == ["more-actions"]


def test_retrying_a_purchase_with_its_idempotency_key_buys_once(annual, api):
    clock = ClockFactory(now=datetime(2026, 7, 1, tzinfo=UTC))
    subscription = subscription_start(
        customer=CustomerFactory(),
        offer=annual,
        start=datetime(2026, 1, 1, tzinfo=UTC),
        clock=clock,
    )
    url = f"/api/v1/subscriptions/{subscription.id}/addons"
    first = api.post(url, {"addon": "more-actions"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = api.post(url, {"addon": "more-actions"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert AddOnPurchase.objects.count() == PendingCharge.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"addon": "nope", "quantity": 1}, 400, "unknown_addon"),
        ({"addon": "more-actions", "quantity": 0}, 400, "validation_error"),
        ({"addon": "more-actions", "quantity": "lots"}, 400, "validation_error"),
        ({"addon": "more-actions", "quantity": 10**12}, 400, "validation_error"),
        ({"quantity": 1}, 400, "validation_error"),
        ([], 400, "validation_error"),
    ],
)
def test_bad_purchases_are_refused_cleanly(body, status, code, annual, api):
    subscription = subscription_start(
        customer=CustomerFactory(), offer=annual, start=datetime(2026, 1, 1, tzinfo=UTC)
    )
    response = api.post(f"/api/v1/subscriptions/{subscription.id}/addons", body, format="json")
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_an_ended_subscription_cannot_buy(annual, api):
    subscription = subscription_start(
        customer=CustomerFactory(), offer=annual, start=datetime(2026, 1, 1, tzinfo=UTC)
    )
    subscription.status = "ended"
    subscription.save()
    response = api.post(
        f"/api/v1/subscriptions/{subscription.id}/addons", {"addon": "more-actions"}, format="json"
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "subscription_not_active"
    assert (
        api.post("/api/v1/subscriptions/999999/addons", {"addon": "x"}, format="json").status_code
        == 404
    )
