"""The worked examples of RULES.md end to end as invoice lines (issue 5): events and add-ons
through the API, the clock advanced through the API, the invoice read through the API."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from quotas.services import subscription_start
from tests.billing.factories import ClockFactory, CustomerFactory
from tests.quotas.test_usage_api import post_events

pytestmark = pytest.mark.django_db


def _advance_and_invoice(api, subscription, to):
    response = api.post(f"/api/v1/clocks/{subscription.clock_id}/advance", {"to": to.isoformat()})
    assert response.status_code == 200, response.json()
    listing = api.get(f"/api/v1/invoices?subscription={subscription.pk}").json()["results"]
    assert len(listing) == 1, listing
    return api.get(f"/api/v1/invoices/{listing[0]['id']}").json()


def _line(invoice, service):
    [line] = [line for line in invoice["lines"] if line["service"] == service]
    return line


@pytest.mark.parametrize(
    "prints, overage", [(9, "0"), (10, "0"), (15, "5.00"), (20, "5.00"), (21, "10.00")]
)
def test_r_q2_overage_on_the_period_invoice(
    api, office_subscription, tenant, clock, prints, overage
):
    """R-Q2: 10 prints included, 5 TL per started block of 10."""
    post_events(
        api,
        tenant,
        "print",
        [clock.now - timedelta(minutes=i) for i in range(prints)],
        [{}] * prints,
        prefix="p",
    )
    invoice = _advance_and_invoice(api, office_subscription, datetime(2026, 12, 1, tzinfo=UTC))
    usage = [line for line in invoice["lines"] if line["service"] == "prints"]
    if overage == "0":
        assert usage == []  # nothing over the quota: no usage line
        assert invoice["total"] == "1500.00"
    else:
        assert usage[0]["amount"] == overage
        assert invoice["total"] == str(Decimal("1500.00") + Decimal(overage))


def test_r_m6_250_tokens_100_free_050_a_unit_is_a_75_00_line(api, tokens_250):
    """R-M6: (250 - 100) x $0.50 = $75.00 on the cycle's invoice."""
    invoice = _advance_and_invoice(api, tokens_250, datetime(2026, 12, 1, 0, 1, tzinfo=UTC))
    line = _line(invoice, "tokens")
    assert (line["quantity"], line["unit_price"], line["amount"]) == ("150", "0.5", "75.00")
    assert invoice["total"] == "95.00"


def test_r_l6_add_on_bought_with_six_of_twelve_months_left_is_a_200_00_line(api, annual):
    """R-L6: a $400/year add-on bought with six months of the annual cycle left."""
    clock = ClockFactory(now=datetime(2026, 7, 1, tzinfo=UTC))
    sub = subscription_start(
        customer=CustomerFactory(),
        offer=annual,
        start=datetime(2026, 1, 1, tzinfo=UTC),
        clock=clock,
    )
    bought = api.post(
        f"/api/v1/subscriptions/{sub.pk}/addons",
        {"addon": "more-actions", "quantity": 1},
        format="json",
    )
    assert bought.status_code == 201, bought.json()
    invoice = _advance_and_invoice(api, sub, datetime(2027, 1, 1, 0, 1, tzinfo=UTC))
    addon = next(line for line in invoice["lines"] if "More actions" in line["description"])
    assert addon["amount"] == "200.00"
