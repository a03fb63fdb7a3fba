from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from billing.models import Customer, CustomerContact, Offer
from metering.models import Meter
from quotas.models import OfferService
from tests.billing.factories import CustomerFactory, OfferFactory
from tests.quotas.factories import ServiceFactory

pytestmark = pytest.mark.django_db


def _violates(**kwargs):
    with pytest.raises(IntegrityError), transaction.atomic():
        kwargs.pop("model").objects.create(**kwargs)


def test_customer_external_id_is_unique():
    Customer.objects.create(external_id="a", name="A")
    _violates(model=Customer, external_id="a", name="B")


def test_negative_tax_rate_is_refused_by_the_database():
    _violates(model=Customer, external_id="t", name="T", tax_rate=Decimal("-1"))


def test_offer_checks():
    _violates(model=Offer, code="neg", name="N", currency="USD", fixed_fee=Decimal("-1"))
    _violates(model=Offer, code="cur", name="N", currency="usd")


def test_contact_email_unique_per_customer():
    customer = CustomerFactory()
    CustomerContact.objects.create(customer=customer, email="a@b.test")
    _violates(model=CustomerContact, customer=customer, email="a@b.test")


def test_meter_needs_a_property_unless_it_counts():
    _violates(model=Meter, name="Tokens", event_name="llm", aggregation="sum", property="")


def test_offer_service_unique_and_non_negative():
    offer = OfferFactory()
    service = ServiceFactory()
    OfferService.objects.create(offer=offer, service=service, included=1)
    _violates(model=OfferService, offer=offer, service=service, included=2)
    _violates(model=OfferService, offer=offer, service=ServiceFactory(), included=-1)
