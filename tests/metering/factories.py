import factory

from metering.models import Meter


class MeterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Meter

    name = factory.Sequence(lambda n: f"Meter {n}")
    event_name = "api_call"
    aggregation = "count"
    unit = "calls"


# A filter with a nested OR group and a number value (R-M3), as the API and console take it.
NESTED_FILTER = {
    "conjunction": "and",
    "clauses": [
        {"property": "user_tier", "operator": "equals", "value": "premium"},
        {
            "conjunction": "or",
            "clauses": [
                {"property": "method", "operator": "equals", "value": "POST"},
                {"property": "tokens", "operator": "greater_than_or_equals", "value": 10},
            ],
        },
    ],
}
