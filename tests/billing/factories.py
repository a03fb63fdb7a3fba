from datetime import UTC, datetime
from decimal import Decimal

import factory

from billing.models import Clock, ContactRole, Customer, CustomerContact, Offer


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    external_id = factory.Sequence(lambda n: f"cus_{n}")
    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.LazyAttribute(lambda c: f"{c.external_id}@example.test")


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomerContact

    customer = factory.SubFactory(CustomerFactory)
    email = factory.Sequence(lambda n: f"person{n}@example.test")
    role = ContactRole.OWNER


class OfferFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Offer

    code = factory.Sequence(lambda n: f"offer-{n}")
    name = factory.Sequence(lambda n: f"Offer {n}")
    currency = "USD"
    fixed_fee = Decimal("10.00")
    billing_interval = "month"
    timezone = "UTC"


class ClockFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Clock

    name = factory.Sequence(lambda n: f"clock {n}")
    now = datetime(2026, 1, 1, tzinfo=UTC)
