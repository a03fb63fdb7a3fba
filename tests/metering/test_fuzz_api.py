"""Fuzz: arbitrary JSON (wrong types, huge numbers, NaN, nested junk, lone surrogates) never
makes the events or meters endpoints answer 500 ("never a 500 for bad input", API.md)."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering.models import Event

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["\ud800", "a\x00b", "", " ", "1e999999", "-0", "9" * 400]),
)
junk = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=25,
)
timestamps = st.one_of(
    st.sampled_from(
        [
            "2026-11-21T10:00:00Z",
            "2026-11-21T10:00:00",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "2026-02-30T00:00:00Z",
            "now",
        ]
    ),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    junk,
)
events = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=300), junk),
        "name": st.one_of(st.sampled_from(["api_call", "llm"]), junk),
        "customer": st.one_of(st.just("cus_ext_1"), junk),
        "timestamp": timestamps,
        "properties": st.one_of(st.dictionaries(st.text(max_size=8), junk, max_size=5), junk),
        "events": junk,
    },
)
bodies = st.one_of(
    junk,
    events,
    st.fixed_dictionaries(
        {"events": st.one_of(st.lists(st.one_of(events, junk), max_size=8), junk)}
    ),
)


def dumps(body) -> str:
    """JSON text; NaN and infinities come out as the non-standard tokens a client might send."""
    return json.dumps(body, allow_nan=True)


@pytest.fixture
def metered(customer, api):
    response = api.post(
        "/api/v1/meters",
        {
            "name": "Tokens",
            "event_name": "api_call",
            "aggregation": "sum",
            "property": "tokens",
            "filter": {
                "conjunction": "and",
                "clauses": [{"property": "k", "operator": "contains", "value": "x"}],
            },
        },
        format="json",
    )
    assert response.status_code == 201
    api.meter_id = response.json()["id"]
    return api


@FUZZ
@given(body=bodies)
def test_events_endpoint_never_answers_500(metered, body):
    response = metered.generic(
        "POST", "/api/v1/events", dumps(body), content_type="application/json"
    )
    assert response.status_code in (200, 400, 413), response.content[:500]
    payload = response.json()
    if response.status_code == 200:
        sent = len(body["events"]) if isinstance(body, dict) and "events" in body else 1
        assert payload["accepted"] + payload["duplicates"] + len(payload["rejected"]) == sent
    else:
        assert payload["error"]["code"]


@settings(FUZZ, max_examples=50)
@given(
    text=st.one_of(
        st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
    )
)
def test_events_endpoint_survives_non_json(metered, text):
    response = metered.generic("POST", "/api/v1/events", text, content_type="application/json")
    assert response.status_code in (200, 400), response.content[:500]


@settings(FUZZ, max_examples=40)
@given(events=st.lists(events, min_size=1, max_size=5))
def test_stored_events_can_be_listed(metered, events):
    """Whatever was accepted reads back through the list endpoint."""
    metered.generic(
        "POST", "/api/v1/events", dumps({"events": events}), content_type="application/json"
    )
    response = metered.get("/api/v1/events", {"page_size": 1000})
    assert response.status_code == 200
    assert len(response.json()["results"]) == Event.objects.count()
    for params in (
        {"meter": metered.meter_id},
        {"name": "api_call", "since": "2026-01-01T00:00:00Z"},
    ):
        assert metered.get("/api/v1/events", params).status_code == 200


@settings(FUZZ, max_examples=50)
@given(
    body=st.one_of(
        junk,
        st.dictionaries(
            st.sampled_from(["name", "event_name", "aggregation", "property", "unit", "filter"]),
            junk,
        ),
    )
)
def test_meters_endpoint_never_answers_500(api, body):
    response = api.generic("POST", "/api/v1/meters", dumps(body), content_type="application/json")
    assert response.status_code in (201, 400), response.content[:500]


url_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)  # URL-encodable
query_values = st.one_of(
    url_text,
    timestamps.filter(lambda t: isinstance(t, str)).filter(lambda t: t.isascii()),
    st.sampled_from(["a\x00b", "-1", "0", "99999999999999999999999", "1.5"]),
)


@settings(FUZZ, max_examples=50)
@given(
    params=st.dictionaries(
        st.sampled_from(["start", "end", "window", "timezone", "customer"]), query_values
    )
)
def test_summaries_never_answer_500(metered, params):
    response = metered.get(f"/api/v1/meters/{metered.meter_id}/summaries", params)
    assert response.status_code in (200, 400, 404), response.content[:500]


@settings(FUZZ, max_examples=50)
@given(
    params=st.dictionaries(
        st.sampled_from(["customer", "name", "meter", "since", "until", "cursor", "page_size"]),
        query_values,
    )
)
def test_events_list_never_answers_500(metered, params):
    response = metered.get("/api/v1/events", params)
    assert response.status_code in (200, 400, 404), response.content[:500]
