import factory

from quotas.models import OfferService, Service, ServiceGroup
from tests.billing.factories import OfferFactory
from tests.metering.factories import MeterFactory


class ServiceGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServiceGroup

    name = factory.Sequence(lambda n: f"Group {n}")
    kind = "usage_based"


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service

    code = factory.Sequence(lambda n: f"service-{n}")
    name = factory.Sequence(lambda n: f"Service {n}")
    group = factory.SubFactory(ServiceGroupFactory)
    meter = factory.Maybe(
        factory.LazyAttribute(lambda s: s.group.kind != "on_off"),
        yes_declaration=factory.SubFactory(MeterFactory),
        no_declaration=None,
    )


class OfferServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OfferService

    offer = factory.SubFactory(OfferFactory)
    service = factory.SubFactory(ServiceFactory)
    included = 10
