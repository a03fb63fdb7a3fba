"""Shared quotas fixtures; tests.quotas.fixtures.py and browser tests import them."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from metering.services import event_ingest_batch
from quotas.models import AddOn
from quotas.services import subscription_start
from tests.billing.factories import ClockFactory, ContactFactory, CustomerFactory, OfferFactory
from tests.metering.factories import MeterFactory
from tests.quotas.factories import OfferServiceFactory, ServiceFactory

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
# 2026-11-01 00:00 in Istanbul (UTC+3): the shared office's first billing period.
NOV_1_ISTANBUL = datetime(2026, 10, 31, 21, 0, tzinfo=UTC)


def service_card(html: str, code: str) -> str:
    """The HTML of one service's card on the customer's subscription page."""
    start = html.index(f'data-service="{code}"')
    return html[start : html.index("</article>", start)]


class Sender:
    """Sends events through metering's ingestion, as POST /api/v1/events does."""

    def __init__(self):
        self.sent = 0

    def __call__(self, customer, name, *timestamps, properties=None, now=None):
        events = []
        for ts in timestamps:
            self.sent += 1
            events.append(
                {
                    "id": f"evt_{self.sent}",
                    "name": name,
                    "customer": customer.external_id,
                    "timestamp": ts.isoformat(),
                    "properties": properties or {},
                }
            )
        result = event_ingest_batch(events=events, now=now)
        assert result.accepted == len(events), result.rejected
        return result


@pytest.fixture
def send():
    return Sender()


@pytest.fixture
def clock(db):
    return ClockFactory(name="November", now=NOW)


@pytest.fixture
def office(db):
    """R-Q2: a shared office; 10 prints included, every started block of 10 costs 5 TL."""
    meter = MeterFactory(name="Prints", event_name="print", unit="prints")
    prints = ServiceFactory(code="prints", name="Printing", group__kind="usage_based", meter=meter)
    support = ServiceFactory(code="support", name="24/7 support", group__kind="on_off")
    offer = OfferFactory(
        code="shared-office",
        name="Shared office",
        currency="TRY",
        fixed_fee=Decimal("1500.00"),
        timezone="Europe/Istanbul",
    )
    OfferServiceFactory(
        offer=offer,
        service=prints,
        included=Decimal(10),
        reset_interval="billing_period",
        limit_behaviour="overage",
        pricing={"model": "package", "package_size": "10", "package_price": "5.00"},
    )
    OfferServiceFactory(offer=offer, service=support, included=None, enabled=True)
    return offer


@pytest.fixture
def tenant(db, django_user_model):
    """A customer with an owner who can log into the customer pages."""
    customer = CustomerFactory(external_id="cus_ofis", name="Ofis Ltd")
    user = django_user_model.objects.create_user("sahip@ofis.test", password="pw-ofis-123")
    ContactFactory(customer=customer, email="sahip@ofis.test", role="owner", user=user)
    return customer


@pytest.fixture
def office_subscription(office, tenant, clock):
    return subscription_start(customer=tenant, offer=office, start=NOV_1_ISTANBUL, clock=clock)


@pytest.fixture
def annual(db):
    """An annual plan of level 2 with a monthly-actions quota and a $400/year add-on."""
    service = ServiceFactory(code="actions", name="Actions", group__kind="usage_based")
    offer = OfferFactory(code="annual", billing_interval="year", timezone="UTC", level=2)
    OfferServiceFactory(offer=offer, service=service, included=1000, reset_interval="month")
    AddOn.objects.create(
        code="more-actions",
        name="More actions",
        service=service,
        quantity=Decimal(500),
        price=Decimal("400.00"),
        min_level=2,
    )
    return offer


@pytest.fixture
def tokens_250(db, api):
    """R-M6: an AI plan with 100 free tokens a cycle at $0.50 a unit (and a $20.00 fee), on a
    clock at Nov 21st, and 250 tokens posted in November through POST /api/v1/events.
    Returns the subscription."""
    from tests.quotas.test_usage_api import post_events

    meter = MeterFactory(
        name="Tokens", event_name="llm_request", aggregation="sum", property="tokens"
    )
    tokens = ServiceFactory(code="tokens", group__kind="usage_based", meter=meter)
    offer = OfferFactory(
        code="ai-starter", currency="USD", fixed_fee=Decimal("20.00"), timezone="UTC"
    )
    OfferServiceFactory(
        offer=offer,
        service=tokens,
        included=Decimal(100),
        reset_interval="billing_period",
        limit_behaviour="overage",
        pricing={"model": "per_unit", "unit_price": "0.50"},
    )
    customer = CustomerFactory(external_id="cus_acme")
    subscription = subscription_start(
        customer=customer,
        offer=offer,
        start=datetime(2026, 11, 1, tzinfo=UTC),
        clock=ClockFactory(now=datetime(2026, 11, 21, 12, tzinfo=UTC)),
    )
    at = datetime(2026, 11, 10, 9, tzinfo=UTC)
    post_events(
        api,
        customer,
        "llm_request",
        [at, at + timedelta(hours=1), at + timedelta(hours=2)],
        [{"tokens": 100}, {"tokens": 120}, {"tokens": 30}],
        prefix="llm",
    )
    return subscription
