"""Usage end to end through the HTTP API: POST /api/v1/events, then
GET /api/v1/subscriptions/{id}/usage (and the customer page) price it (R-M6, R-Q2)."""

from datetime import timedelta
from decimal import Decimal

import pytest

from tests.quotas.fixtures import NOV_1_ISTANBUL, service_card

pytestmark = pytest.mark.django_db


def post_events(api, customer, name, timestamps, properties, *, prefix):
    """One event per (timestamp, properties) pair, through POST /api/v1/events."""
    events = [
        {
            "id": f"{prefix}-{i}",
            "name": name,
            "customer": customer.external_id,
            "timestamp": ts.isoformat(),
            "properties": props,
        }
        for i, (ts, props) in enumerate(zip(timestamps, properties, strict=True))
    ]
    response = api.post("/api/v1/events", {"events": events}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["accepted"] == len(events), response.json()


def service_usage(api, subscription, code):
    response = api.get(f"/api/v1/subscriptions/{subscription.id}/usage")
    assert response.status_code == 200, response.json()
    return response.json(), next(s for s in response.json()["services"] if s["service"] == code)


def test_r_m6_tokens_250_used_100_free_050_a_unit_is_75_through_the_api(api, tokens_250):
    """R-M6: free 100 units a cycle, $0.50 a unit, 250 used -> (250 - 100) x 0.50 = $75.00,
    with the events posted to the API and the amount read back from the usage endpoint."""
    body, usage = service_usage(api, tokens_250, "tokens")
    assert (usage["included"], usage["used"]) == ("100", "250")
    assert (usage["overage_quantity"], usage["overage_amount"]) == ("150", "75.00")
    assert body["amount_due_so_far"] == "95.00"  # + the $20.00 fixed fee


def test_r_q2_examples_through_post_events_usage_api_and_customer_page(
    api, client, office_subscription, tenant
):
    """R-Q2 end to end, with no shortcut past the HTTP endpoint (the `send` fixture calls
    ingestion directly): 10 prints included, every started block of 10 more costs 5 TL.
    One subscription grows through the examples 9 -> 0, 10 -> 0, 15 -> 5, 20 -> 5,
    21 -> 10 TL; after each batch the usage endpoint and the customer page agree."""
    client.login(username="sahip@ofis.test", password="pw-ofis-123")
    page = f"/my/subscriptions/{office_subscription.id}/"
    at = NOV_1_ISTANBUL + timedelta(days=4)
    sent = 0
    for prints, overage in [(9, "0.00"), (10, "0.00"), (15, "5.00"), (20, "5.00"), (21, "10.00")]:
        new = range(sent, prints)
        post_events(
            api,
            tenant,
            "print",
            [at + timedelta(minutes=i) for i in new],
            [{} for _ in new],
            prefix=f"print-to-{prints}",
        )
        sent = prints

        body, usage = service_usage(api, office_subscription, "prints")
        assert (usage["used"], usage["overage_amount"]) == (str(prints), overage)
        assert usage["overage_quantity"] == str(max(0, prints - 10))
        assert body["amount_due_so_far"] == str(Decimal("1500.00") + Decimal(overage))

        card = service_card(client.get(page).content.decode(), "prints")
        assert f'<strong data-field="used">{prints}</strong>' in card
        assert f'data-field="overage">{overage} TRY' in card
