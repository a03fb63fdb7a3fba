"""The operator console: the usage panel on a subscription, add-ons, balances (issue 4)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.models import PendingCharge
from quotas.models import AddOn, AddOnPurchase, UsageBalance
from quotas.services import addon_purchase, subscription_start
from tests.billing.factories import ClockFactory, CustomerFactory
from tests.quotas.fixtures import NOV_1_ISTANBUL

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, staff_user):
    client.force_login(staff_user)
    return client


def test_subscription_page_has_a_read_only_usage_panel(staff, office_subscription, tenant, send):
    send(tenant, "print", *[NOV_1_ISTANBUL + timedelta(hours=i) for i in range(15)])
    response = staff.get(f"/admin/billing/subscription/{office_subscription.id}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    panel = html[html.index("kota-usage-panel") :]
    row = panel[
        panel.index('data-service="prints"') : panel.index(
            "</tr>", panel.index('data-service="prints"')
        )
    ]
    for cell in (
        '<td class="num">10</td>',
        '<td class="num">15</td>',
        '<td class="num">0</td>',
        "5 · 5.00 TRY",
        "2026-12-01 00:00 +03",
    ):
        assert cell in row
    assert f'href="/my/subscriptions/{office_subscription.id}/"' in panel
    assert "<br>" not in panel[: panel.index("</table>")]
    # The panel comes first, before the subscription's own fields.
    assert html.index("kota-usage-panel") < html.index('name="billing_anchor_0"')


def test_add_on_admin_and_purchases(staff, office_subscription, office):
    office.level = 2
    office.save()
    service = office.offer_services.get(service__code="prints").service
    response = staff.post(
        "/admin/quotas/addon/add/",
        {
            "code": "more-prints",
            "name": "More prints",
            "service": service.id,
            "quantity": "100",
            "price": "50",
            "min_level": "1",
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert AddOn.objects.get().quantity == Decimal(100)
    addon_purchase(subscription=office_subscription, addon_code="more-prints", quantity=1)
    assert staff.get("/admin/quotas/addonpurchase/").status_code == 200
    change = staff.get(f"/admin/billing/subscription/{office_subscription.id}/change/")
    assert "More prints" in change.content.decode()


def test_balances_are_read_only_and_can_be_rebuilt(staff, office_subscription, tenant, send):
    send(tenant, "print", NOV_1_ISTANBUL + timedelta(days=1))
    assert staff.get("/admin/quotas/usagebalance/").status_code == 200
    UsageBalance.objects.update(count=99)
    response = staff.post(
        "/admin/billing/subscription/",
        {"action": "rebuild_balances", "_selected_action": [office_subscription.id]},
        follow=True,
    )
    assert response.status_code == 200
    assert UsageBalance.objects.get().count == 1


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_r_l6_operator_buys_an_add_on_from_the_subscription_page(staff, annual):
    """R-L5, R-L6 from the console: $400/year add-on, 6 of 12 months left -> 200.00."""
    subscription = subscription_start(
        customer=CustomerFactory(),
        offer=annual,
        start=datetime(2026, 1, 1, tzinfo=UTC),
        clock=ClockFactory(now=datetime(2026, 7, 1, tzinfo=UTC)),
    )
    change_url = f"/admin/billing/subscription/{subscription.id}/change/"
    buy_url = f"/admin/billing/subscription/{subscription.id}/buy-addon/"
    assert buy_url in staff.get(change_url).content.decode()

    page = staff.get(buy_url)
    assert page.status_code == 200
    assert '<option value="more-actions">More actions (more-actions)</option>' in (
        page.content.decode()
    )
    quote = staff.get(buy_url, {"addon": "more-actions", "quantity": 1}).content.decode()
    assert '<dd data-field="quote">200.00 USD</dd>' in quote
    assert not AddOnPurchase.objects.exists()  # showing the price buys nothing

    key = quote.split('name="idempotency_key" value="')[1].split('"')[0]
    form = {"addon": "more-actions", "quantity": 1, "idempotency_key": key}
    response = staff.post(buy_url, form, follow=True)
    assert response.redirect_chain[-1][0] == change_url
    purchase = AddOnPurchase.objects.get()
    assert (purchase.subscription, purchase.quantity) == (subscription, 1)
    assert purchase.charge.amount == Decimal("200.00")
    assert any("200.00 USD" in m for m in _messages(response))
    staff.post(buy_url, form)  # a double click buys once
    assert AddOnPurchase.objects.count() == PendingCharge.objects.count() == 1


def test_r_l5_console_refuses_an_add_on_below_its_level_with_a_message(
    staff, office_subscription, office
):
    AddOn.objects.create(
        code="more-prints",
        name="More prints",
        service=office.offer_services.get(service__code="prints").service,
        quantity=Decimal(100),
        price=Decimal(50),
        min_level=2,
    )
    buy_url = f"/admin/billing/subscription/{office_subscription.id}/buy-addon/"
    page = staff.get(buy_url)
    assert page.status_code == 200
    assert "may not buy any add-on" in " ".join(_messages(page))
    assert "more-prints" not in page.content.decode()

    response = staff.post(buy_url, {"addon": "more-prints", "quantity": 1}, follow=True)
    assert response.status_code == 200
    assert any("level 2 and above" in m for m in _messages(response))
    response = staff.post(buy_url, {"addon": "nope", "quantity": 0}, follow=True)
    assert response.status_code == 200
    assert any(m.startswith("Not bought") for m in _messages(response))
    assert not AddOnPurchase.objects.exists()


def test_only_staff_may_buy_add_ons_in_the_console(client, tenant, office_subscription):
    client.force_login(tenant.contacts.get().user)
    buy_url = f"/admin/billing/subscription/{office_subscription.id}/buy-addon/"
    response = client.post(buy_url, {"addon": "more-prints", "quantity": 1})
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert not AddOnPurchase.objects.exists()
