import factory

from metering.models import Meter


class MeterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Meter

    name = factory.Sequence(lambda n: f"Meter {n}")
    event_name = "api_call"
    aggregation = "count"
    unit = "calls"
