"""GET /api/v1/customers/{external_id}/entitlements/{service_code}: the hot path (API.md)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.models import SubscriptionStatus
from quotas.models import AddOn, AddOnPurchase
from quotas.selectors import entitlement_check
from quotas.services import subscription_start
from tests.billing.factories import ClockFactory, CustomerFactory, OfferFactory
from tests.quotas.factories import OfferServiceFactory, ServiceFactory
from tests.quotas.fixtures import NOV_1_ISTANBUL

pytestmark = pytest.mark.django_db

URL = "/api/v1/customers/{}/entitlements/{}"


def test_entitlement_reports_the_current_window(office_subscription, tenant, send, api):
    send(tenant, "print", *[NOV_1_ISTANBUL + timedelta(hours=i) for i in range(4)])
    response = api.get(URL.format("cus_ofis", "prints"))
    assert response.status_code == 200
    assert response.json() == {
        "has_access": True,
        "used": "4",
        "limit": "10",
        "remaining": "6",
        "resets_at": "2026-11-30T21:00:00Z",
        "service": "prints",
        "kind": "usage_based",
        "subscription": office_subscription.id,
    }


def test_on_off_entitlement_is_the_switch(office_subscription, office, api):
    body = api.get(URL.format("cus_ofis", "support")).json()
    assert (body["has_access"], body["used"], body["limit"], body["resets_at"]) == (
        True,
        None,
        None,
        None,
    )
    office.offer_services.filter(service__code="support").update(enabled=False)
    assert api.get(URL.format("cus_ofis", "support")).json()["has_access"] is False


@pytest.mark.parametrize(
    ("customer", "service", "code"),
    [
        ("cus_nobody", "prints", "unknown_customer"),
        ("cus_ofis", "teleport", "unknown_service"),
        ("cus_other", "prints", "no_subscription"),
    ],
)
def test_entitlement_errors_are_404_with_a_code(customer, service, code, office_subscription, api):
    CustomerFactory(external_id="cus_other")
    response = api.get(URL.format(customer, service))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == code


def test_ended_future_and_canceled_subscriptions_give_no_entitlement(office, tenant, api):
    clock = ClockFactory(now=datetime(2026, 11, 20, tzinfo=UTC))
    future = subscription_start(
        customer=tenant, offer=office, start=datetime(2026, 12, 5, tzinfo=UTC), clock=clock
    )
    assert api.get(URL.format("cus_ofis", "prints")).json()["error"]["code"] == "no_subscription"
    clock.now = datetime(2026, 12, 6, tzinfo=UTC)
    clock.save()
    assert api.get(URL.format("cus_ofis", "prints")).status_code == 200
    future.status = SubscriptionStatus.CANCELED
    future.save()
    assert api.get(URL.format("cus_ofis", "prints")).status_code == 404


def test_the_entitlement_check_is_two_indexed_queries(
    office_subscription, tenant, send, django_assert_max_num_queries
):
    """No aggregation over events or rollups: the subscription row, then the balance row."""
    addon = AddOn.objects.create(
        code="more-prints",
        name="More prints",
        service=office_subscription.offer.offer_services.get(service__code="prints").service,
        quantity=Decimal(5),
        price=Decimal("10"),
    )
    AddOnPurchase.objects.create(
        subscription=office_subscription, addon=addon, quantity=2, purchased_at=NOV_1_ISTANBUL
    )
    send(tenant, "print", NOV_1_ISTANBUL + timedelta(days=1))
    with django_assert_max_num_queries(2) as captured:
        entitlement = entitlement_check(customer_external_id="cus_ofis", service_code="prints")
    assert (entitlement.used, entitlement.limit, entitlement.remaining) == (1, 20, 19)
    sql = " ".join(q["sql"] for q in captured.captured_queries).lower()
    assert "metering_event" not in sql and "metering_meterrollup" not in sql


def test_the_entitlement_endpoint_stays_lean(
    office_subscription, api, django_assert_max_num_queries
):
    with django_assert_max_num_queries(3):  # the API key, the subscription, the balance
        assert api.get(URL.format("cus_ofis", "prints")).status_code == 200


def test_the_most_recent_live_subscription_answers(tenant, api, send):
    first_offer, second_offer = OfferFactory(), OfferFactory()
    service = ServiceFactory(code="calls", group__kind="usage_based")
    OfferServiceFactory(offer=first_offer, service=service, included=1)
    OfferServiceFactory(offer=second_offer, service=service, included=50)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    subscription_start(customer=tenant, offer=first_offer, start=start)
    newer = subscription_start(customer=tenant, offer=second_offer, start=start + timedelta(days=2))
    body = api.get(URL.format("cus_ofis", "calls")).json()
    assert (body["subscription"], body["limit"]) == (newer.id, "50")


def test_entitlements_need_operator_credentials(office_subscription, anon_api):
    assert anon_api.get(URL.format("cus_ofis", "prints")).status_code == 401
