"""The customer subscription page in Debian's Chromium (R-Q2, R-Q3, R-L5, R-L6, R-L7)."""

from datetime import timedelta
from decimal import Decimal

import pytest

from quotas.models import AddOn, AddOnPurchase
from quotas.services import subscription_start
from tests.billing.factories import CustomerFactory
from tests.quotas.fixtures import NOV_1_ISTANBUL, clock, office, office_subscription, tenant

# Fixtures shared with tests/quotas (pytest finds them through these names).
__all__ = ["clock", "office", "office_subscription", "tenant"]

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _send_prints(api, count, first=0):
    events = [
        {
            "id": f"print-{first + i}",
            "name": "print",
            "customer": "cus_ofis",
            "timestamp": (NOV_1_ISTANBUL + timedelta(days=2, minutes=first + i)).isoformat(),
        }
        for i in range(count)
    ]
    response = api.post("/api/v1/events", {"events": events}, format="json")
    assert response.status_code == 200 and response.json()["accepted"] == count, response.json()


def _login(page, live_server):
    page.goto(f"{live_server.url}/")
    page.wait_for_url("**/accounts/login/**")
    page.fill("#id_username", "sahip@ofis.test")
    page.fill("#id_password", "pw-ofis-123")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/my/")


def _field(page, service, field):
    return page.locator(f'[data-service="{service}"] [data-field="{field}"]').first.inner_text()


def test_page_follows_events_sent_through_the_api_r_q2(page, live_server, api, office_subscription):
    _send_prints(api, 15)
    _login(page, live_server)
    page.click(f'[data-subscription="{office_subscription.id}"]')
    page.wait_for_url(f"**/my/subscriptions/{office_subscription.id}/")
    assert _field(page, "prints", "used") == "15"
    assert _field(page, "prints", "remaining") == "0"
    assert _field(page, "prints", "overage").startswith("5.00 TRY")
    assert _field(page, "prints", "resets-at") == "Dec 1, 2026, 00:00 +03"
    assert page.locator('[data-field="amount-due"]').inner_text() == "1,505.00 TRY"

    _send_prints(api, 6, first=15)  # 21 prints: two started blocks of 10
    page.reload()
    assert _field(page, "prints", "used") == "21"
    assert _field(page, "prints", "overage").startswith("10.00 TRY")


def test_another_customers_page_is_refused(page, live_server, office, office_subscription):
    other = subscription_start(customer=CustomerFactory(), offer=office, start=NOV_1_ISTANBUL)
    _login(page, live_server)
    response = page.goto(f"{live_server.url}/my/subscriptions/{other.id}/")
    assert response.status == 404
    response = page.goto(f"{live_server.url}/api/v1/subscriptions/{other.id}/usage")
    assert response.status == 403


def test_phone_sized_page_and_buying_an_add_on(
    browser, live_server, api, office, office_subscription
):
    office.level = 2
    office.save()
    AddOn.objects.create(
        code="more-prints",
        name="More prints",
        service=office.offer_services.get(service__code="prints").service,
        quantity=Decimal(100),
        price=Decimal("300.00"),
        min_level=2,
    )
    _send_prints(api, 12)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        _login(page, live_server)
        page.goto(f"{live_server.url}/my/subscriptions/{office_subscription.id}/")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert page.locator('[data-service="prints"] .progress').is_visible()
        page.click('[data-addon="more-prints"] a.button')
        quote = page.locator('[data-field="quote"]').inner_text()
        assert quote.endswith("TRY") and Decimal(quote.split()[0].replace(",", "")) < 300
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.click('[data-action="confirm"]')
        page.wait_for_url(f"**/my/subscriptions/{office_subscription.id}/")
        assert "will be on your next invoice" in page.locator(".messages").inner_text()
        assert _field(page, "prints", "included").startswith("110")
        assert _field(page, "prints", "remaining") == "98"
        assert AddOnPurchase.objects.get().charge.amount == Decimal(
            quote.split()[0].replace(",", "")
        )
    finally:
        context.close()
