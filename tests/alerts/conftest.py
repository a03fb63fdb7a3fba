import itertools
from datetime import datetime
from decimal import Decimal

import pytest

from billing.models import ContactRole
from metering.services import event_ingest_batch
from quotas.models import OfferService
from quotas.services import subscription_start
from tests.billing.factories import ContactFactory, CustomerFactory, OfferFactory
from tests.metering.factories import MeterFactory
from tests.quotas.factories import ServiceFactory, ServiceGroupFactory

_ids = itertools.count(1)


def ingest(customer, count=1, *, name="api_call", at: datetime | None = None, properties=None):
    """Send ``count`` events in one batch, as the API does; returns the ingest result."""
    events = []
    for _ in range(count):
        event = {"id": f"evt_{next(_ids)}", "name": name, "customer": customer.external_id}
        if at is not None:
            event["timestamp"] = at.isoformat()
        if properties is not None:
            event["properties"] = properties
        events.append(event)
    result = event_ingest_batch(events=events)
    assert result.accepted == count, result.rejected
    return result


@pytest.fixture
def meter(db):
    return MeterFactory(name="API calls", event_name="api_call", aggregation="count", unit="calls")


@pytest.fixture
def customer(db):
    customer = CustomerFactory(external_id="cus_ext_1", name="Acme")
    ContactFactory(customer=customer, email="owner@acme.test", role=ContactRole.OWNER)
    ContactFactory(customer=customer, email="admin@acme.test", role=ContactRole.ADMIN)
    ContactFactory(customer=customer, email="member@acme.test", role=ContactRole.MEMBER)
    return customer


def quota_offer(
    meter,
    *,
    included="100",
    limit_behaviour="overage",
    reset_interval="month",
    timezone="UTC",
    service_code="actions",
):
    offer = OfferFactory(code=f"offer-{service_code}", name="Business", timezone=timezone)
    service = ServiceFactory(
        code=service_code,
        name="Actions",
        group=ServiceGroupFactory(kind="usage_based"),
        meter=meter,
    )
    offer_service = OfferService.objects.create(
        offer=offer,
        service=service,
        included=Decimal(included),
        reset_interval=reset_interval,
        limit_behaviour=limit_behaviour,
    )
    return offer, offer_service


def subscribe(customer, offer, *, start=None, clock=None):
    return subscription_start(customer=customer, offer=offer, start=start, clock=clock)
