"""Simulation clocks through the API and the console (R-A5), billing thresholds in the console
(R-T4, R-T6) and the period logs."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.models import BillingThreshold, Clock, Invoice, UsageThreshold
from tests.quotas.fixtures import NOV_1_ISTANBUL

pytestmark = pytest.mark.django_db

DEC_1 = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)


def test_create_list_read_and_advance_a_clock_through_the_api(api, office, tenant):
    response = api.post("/api/v1/clocks", {"name": "Preview", "now": "2026-11-21T12:00:00Z"})
    assert response.status_code == 201, response.json()
    clock = response.json()
    assert clock["name"] == "Preview" and clock["now"].startswith("2026-11-21T12:00:00")
    sub = api.post(
        "/api/v1/subscriptions",
        {
            "customer": tenant.external_id,
            "offer": office.code,
            "start": NOV_1_ISTANBUL.isoformat(),
            "clock": clock["id"],
        },
        format="json",
    )
    assert sub.status_code == 201, sub.json()
    assert api.get("/api/v1/clocks").json()["results"][0]["subscriptions"] == 1

    response = api.post(f"/api/v1/clocks/{clock['id']}/advance", {"to": "2026-12-02T00:00:00Z"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["clock"]["now"].startswith("2026-12-02T00:00:00")
    assert body["advanced_from"].startswith("2026-11-21T12:00:00")
    [step] = body["steps"]
    assert step["at"].startswith("2026-11-30T21:00:00")  # December 1st in Istanbul
    close = next(e for e in step["ran"] if e["type"] == "period_close")
    assert close["job"] == "period_close" and Decimal(close["total"]) == Decimal(1500)
    invoice = Invoice.objects.get(subscription_id=sub.json()["id"])
    assert invoice.number == close["number"]

    # Advancing again to the same instant runs nothing; going back is refused.
    again = api.post(f"/api/v1/clocks/{clock['id']}/advance", {"to": "2026-12-02T00:00:00Z"})
    assert again.json()["steps"] == []
    back = api.post(f"/api/v1/clocks/{clock['id']}/advance", {"to": "2026-12-01T00:00:00Z"})
    assert back.status_code == 422 and back.json()["error"]["code"] == "clock_backwards"


@pytest.mark.parametrize(
    "path, body, status",
    [
        ("/api/v1/clocks", {"name": ""}, 400),
        ("/api/v1/clocks", {"name": "x", "now": "yesterday"}, 400),
        ("/api/v1/clocks/999999/advance", {"to": "2027-01-01T00:00:00Z"}, 404),
        ("/api/v1/clocks/{id}/advance", {"to": "not a date"}, 400),
        ("/api/v1/clocks/{id}/advance", {}, 400),
        ("/api/v1/clocks/{id}/advance", [], 400),
    ],
)
def test_bad_clock_input_is_a_clean_error(api, clock, path, body, status):
    response = api.post(path.format(id=clock.pk), body, format="json")
    assert response.status_code == status
    assert "code" in response.json()["error"]
    assert Clock.objects.get(pk=clock.pk).now == clock.now


def test_the_console_advances_a_clock_and_shows_what_ran(client, staff_user, office_subscription):
    clock = office_subscription.clock
    client.force_login(staff_user)
    url = f"/admin/billing/clock/{clock.pk}/advance/"
    page = client.get(url)
    assert page.status_code == 200 and b"+ 31 days" in page.content
    response = client.post(url, {"step": "31 days"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "closed, invoice" in html and "quota reset" in html
    clock.refresh_from_db()
    assert clock.now == datetime(2026, 11, 21, 12, tzinfo=UTC) + timedelta(days=31)
    assert Invoice.objects.filter(subscription=office_subscription).count() == 1
    bad = client.post(url, {"to": "2020-01-01T00:00:00+00:00"})
    assert "Not advanced" in bad.content.decode() or b"only moves forward" in bad.content
    assert client.get("/admin/billing/periodclose/").status_code == 200
    assert client.get("/admin/quotas/quotareset/").status_code == 200


def test_the_console_sets_billing_thresholds_through_the_same_rules(
    client, staff_user, office_subscription
):
    client.force_login(staff_user)
    url = f"/admin/billing/subscription/{office_subscription.pk}/billing-thresholds/"
    page = client.get(url)
    assert page.status_code == 200 and b"usage_prints" in page.content
    # R-T4: not above the 1,500 TL fee.
    refused = client.post(url, {"amount_gte": "1500"}, follow=True)
    assert "Not saved" in refused.content.decode()
    assert not BillingThreshold.objects.exists()
    saved = client.post(url, {"amount_gte": "2000", "usage_prints": "50"})
    assert saved.status_code == 302
    assert BillingThreshold.objects.get().amount_gte == Decimal(2000)
    assert UsageThreshold.objects.get().usage_gte == Decimal(50)
    # Emptying the fields removes them.
    client.post(url, {"amount_gte": "", "usage_prints": ""})
    assert not BillingThreshold.objects.exists() and not UsageThreshold.objects.exists()
