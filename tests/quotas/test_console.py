"""The operator console: the usage panel on a subscription, add-ons, balances (issue 4)."""

from datetime import timedelta
from decimal import Decimal

import pytest

from quotas.models import AddOn, UsageBalance
from quotas.services import addon_purchase
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
        "<td>10</td>",
        "<td>15</td>",
        "<td>0</td>",
        "5 · 5.00 TRY",
        "2026-12-01 00:00 +03",
    ):
        assert cell in row
    assert f'href="/my/subscriptions/{office_subscription.id}/"' in panel
    assert "<br>" not in panel[: panel.index("</table>")]


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
