"""POST/GET /api/v1/events (R-M8, R-M7) and meter values through the API (R-M2..R-M6)."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from metering import selectors
from metering.models import Event
from tests.billing.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0)


def post_events(api, body):
    return api.post("/api/v1/events", body, format="json")


def create_meter(api, **body):
    response = api.post("/api/v1/meters", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def meter_total(api, meter, now, customer=None):
    params = {
        "start": (now - timedelta(days=1)).isoformat(),
        "end": (now + timedelta(days=1)).isoformat(),
        "window": "day",
    }
    if customer:
        params["customer"] = customer
    response = api.get(f"/api/v1/meters/{meter['id']}/summaries", params)
    assert response.status_code == 200, response.json()
    return response.json()["total"]


def events_at(now, props_list, name="api_call", customer="cus_ext_1", prefix="e"):
    return [
        {
            "id": f"{prefix}{i}",
            "name": name,
            "customer": customer,
            "timestamp": (now - timedelta(minutes=len(props_list) - i)).isoformat(),
            "properties": props,
        }
        for i, props in enumerate(props_list)
    ]


def test_post_one_event(api, customer):
    response = post_events(
        api,
        {
            "id": "evt_123",
            "name": "api_call",
            "customer": "cus_ext_1",
            "properties": {"tokens": 120, "endpoint": "/v2/users"},
        },
    )
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert Event.objects.get().properties == {"tokens": 120, "endpoint": "/v2/users"}


def test_post_batch_with_duplicates_and_rejections_is_200(api, customer, now):
    batch = [{"id": f"evt_{i}", "name": "api_call", "customer": "cus_ext_1"} for i in range(5)]
    batch[1]["customer"] = "cus_unknown"
    batch[3] = {"id": "evt_0", "name": "api_call", "customer": "cus_ext_1"}
    response = post_events(api, {"events": batch})
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (3, 1)
    assert body["rejected"] == [
        {
            "index": 1,
            "id": "evt_1",
            "code": "unknown_customer",
            "message": "No customer 'cus_unknown'.",
        }
    ]


def test_batch_limits_through_the_api(api, customer):
    too_many = [{"id": f"e{i}", "name": "n", "customer": "cus_ext_1"} for i in range(1001)]
    response = post_events(api, {"events": too_many})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "batch_too_large"
    response = post_events(api, {"events": []})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "empty_batch"
    response = post_events(api, {"events": too_many[:1000]})
    assert response.status_code == 200
    assert response.json()["accepted"] == 1000


@pytest.mark.parametrize(
    "body, code",
    [
        ([{"id": "e1"}], "invalid_body"),
        ("just a string", "invalid_body"),
        ({"events": {"id": "e1"}}, "invalid_body"),
        ({"events": None}, "invalid_body"),
    ],
)
def test_malformed_bodies_are_400(api, body, code):
    response = post_events(api, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_unparseable_and_deeply_nested_json_are_400(api):
    for raw in ("{not json", "[" * 100_000 + "]" * 100_000, '{"id": 1' + "0" * 5000 + "}"):
        response = api.generic("POST", "/api/v1/events", raw, content_type="application/json")
        assert response.status_code == 400, raw[:20]
        assert response.json()["error"]["code"] == "malformed_request"
    # Parses (as an infinite float): refused per event, the batch still answers 200.
    raw = '{"id": "e", "name": "n", "customer": "c", "properties": {"v": 1e999999}}'
    response = api.generic("POST", "/api/v1/events", raw, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["rejected"][0]["code"] == "invalid_properties"
    response = api.generic("POST", "/api/v1/events", "id=1", content_type="text/plain")
    assert response.status_code == 415


def test_events_need_an_api_key(anon_api):
    response = anon_api.post("/api/v1/events", {"id": "e", "name": "n", "customer": "c"})
    assert response.status_code == 401


def test_r_m6_tokens_meter_sums_250_in_the_period(api, customer, now):
    """R-M6: meter "Tokens" sums `tokens`; usage of 250 in the period is the meter value
    250 that pricing turns into (250 - 100) x 0.50 = $75.00."""
    meter = create_meter(
        api,
        name="Tokens",
        event_name="llm_call",
        aggregation="sum",
        property="tokens",
        unit="tokens",
    )
    batch = events_at(now, [{"tokens": 100}, {"tokens": 120}, {"tokens": 30}], name="llm_call")
    assert post_events(api, {"events": batch}).json()["accepted"] == 3
    assert meter_total(api, meter, now) == "250"
    assert meter_total(api, meter, now, customer="cus_ext_1") == "250"


def test_r_m2_each_aggregation_through_ingestion(api, customer, now):
    """R-M2: count, sum, max (peak) and last (by event timestamp, not arrival order)."""
    meters = {
        agg: create_meter(
            api,
            name=agg,
            event_name="storage",
            aggregation=agg,
            property="" if agg == "count" else "gb",
        )
        for agg in ("count", "sum", "max", "last")
    }
    t = now - timedelta(hours=1)
    batch = [
        {
            "id": "s1",
            "name": "storage",
            "customer": "cus_ext_1",
            "timestamp": (t + timedelta(minutes=1)).isoformat(),
            "properties": {"gb": 10},
        },
        {
            "id": "s2",
            "name": "storage",
            "customer": "cus_ext_1",
            "timestamp": (t + timedelta(minutes=30)).isoformat(),
            "properties": {"gb": "42.5"},
        },
        {
            "id": "s3",
            "name": "storage",
            "customer": "cus_ext_1",
            "timestamp": (t + timedelta(minutes=20)).isoformat(),
            "properties": {"gb": 7},
        },
    ]
    post_events(api, {"events": batch})
    # Arrives last, happened first: it is neither the last value nor the peak.
    post_events(
        api,
        {
            "id": "s4",
            "name": "storage",
            "customer": "cus_ext_1",
            "timestamp": t.isoformat(),
            "properties": {"gb": 3},
        },
    )
    assert {agg: meter_total(api, m, now) for agg, m in meters.items()} == {
        "count": "4",
        "sum": "62.5",
        "max": "42.5",
        "last": "42.5",
    }


def test_r_m2_last_ties_on_timestamp_break_by_event_id(api, customer, now):
    meter = create_meter(api, name="Seats", event_name="seats", aggregation="last", property="n")
    at = (now - timedelta(minutes=5)).isoformat()
    post_events(
        api,
        {
            "id": "b",
            "name": "seats",
            "customer": "cus_ext_1",
            "timestamp": at,
            "properties": {"n": 2},
        },
    )
    post_events(
        api,
        {
            "id": "a",
            "name": "seats",
            "customer": "cus_ext_1",
            "timestamp": at,
            "properties": {"n": 1},
        },
    )
    assert meter_total(api, meter, now) == "2"


def test_r_m3_premium_users_endpoint_example(api, customer, now):
    """R-M3: count API calls where user_tier = "premium" AND endpoint = "/api/v2/users"."""
    meter = create_meter(
        api,
        name="Premium user calls",
        event_name="api_call",
        filter={
            "conjunction": "and",
            "clauses": [
                {"property": "user_tier", "operator": "equals", "value": "premium"},
                {"property": "endpoint", "operator": "equals", "value": "/api/v2/users"},
            ],
        },
    )
    batch = events_at(
        now,
        [
            {"user_tier": "premium", "endpoint": "/api/v2/users"},
            {"user_tier": "premium", "endpoint": "/api/v2/users"},
            {"user_tier": "premium", "endpoint": "/api/v2/orders"},
            {"user_tier": "free", "endpoint": "/api/v2/users"},
            {"endpoint": "/api/v2/users"},
        ],
    )
    post_events(api, {"events": batch})
    assert meter_total(api, meter, now) == "2"


def test_r_m3_post_or_put_or_delete_example(api, customer, now):
    """R-M3: count events where method = "POST" OR "PUT" OR "DELETE"."""
    meter = create_meter(
        api,
        name="Writes",
        event_name="api_call",
        filter={
            "conjunction": "or",
            "clauses": [
                {"property": "method", "operator": "equals", "value": m}
                for m in ("POST", "PUT", "DELETE")
            ],
        },
    )
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "post", "DELETE"]
    post_events(api, {"events": events_at(now, [{"method": m} for m in methods])})
    assert meter_total(api, meter, now) == "4"


def test_r_m3_nested_groups(api, customer, now):
    """R-M3: groups nest: tier = premium AND (method = POST OR tokens > 100)."""
    meter = create_meter(
        api,
        name="Nested",
        event_name="api_call",
        aggregation="sum",
        property="tokens",
        filter={
            "conjunction": "and",
            "clauses": [
                {"property": "tier", "operator": "equals", "value": "premium"},
                {
                    "conjunction": "or",
                    "clauses": [
                        {"property": "method", "operator": "equals", "value": "POST"},
                        {"property": "tokens", "operator": "greater_than", "value": 100},
                    ],
                },
            ],
        },
    )
    props = [
        {"tier": "premium", "method": "POST", "tokens": 1},
        {"tier": "premium", "method": "GET", "tokens": 150},
        {"tier": "premium", "method": "GET", "tokens": 50},
        {"tier": "free", "method": "POST", "tokens": 1000},
    ]
    post_events(api, {"events": events_at(now, props)})
    assert meter_total(api, meter, now) == "151"


def test_r_m4_missing_property_excludes_the_event(api, customer, now):
    """R-M4: an event lacking a property a condition needs is excluded, even for
    not_equals / does_not_contain; a sum meter also skips events without its property."""
    not_equals = create_meter(
        api,
        name="Not free",
        event_name="api_call",
        filter={
            "conjunction": "and",
            "clauses": [{"property": "tier", "operator": "not_equals", "value": "free"}],
        },
    )
    no_beta = create_meter(
        api,
        name="No beta",
        event_name="api_call",
        filter={
            "conjunction": "or",
            "clauses": [{"property": "path", "operator": "does_not_contain", "value": "beta"}],
        },
    )
    tokens = create_meter(
        api, name="Tokens", event_name="api_call", aggregation="sum", property="tokens"
    )
    props = [
        {"tier": "pro", "path": "/v1", "tokens": 5},
        {"tier": "free", "path": "/beta/x"},
        {"tokens": 7},
        {"tier": None, "path": None, "tokens": None},
        {"tokens": "not a number"},
    ]
    post_events(api, {"events": events_at(now, props)})
    assert meter_total(api, not_equals, now) == "1"
    assert meter_total(api, no_beta, now) == "1"
    assert meter_total(api, tokens, now) == "12"


def test_r_m5_several_meters_serve_from_one_event_stream(api, customer, now):
    """R-M5 (metering side): several meters may listen to the same events, each counting
    independently (the 10-meters-per-product limit is the catalog's, tested in quotas)."""
    calls = create_meter(api, name="Calls", event_name="api_call")
    tokens = create_meter(
        api, name="Tokens", event_name="api_call", aggregation="sum", property="tokens"
    )
    peak = create_meter(
        api, name="Peak", event_name="api_call", aggregation="max", property="tokens"
    )
    post_events(api, {"events": events_at(now, [{"tokens": 3}, {"tokens": 9}, {}])})
    assert [meter_total(api, m, now) for m in (calls, tokens, peak)] == ["3", "12", "9"]


def test_r_m7_events_table_lists_name_id_customer_timestamp_newest_first(api, customer, now):
    """R-M7: an events table with event name, event ID, customer ID and timestamp."""
    CustomerFactory(external_id="cus_2")
    post_events(api, {"events": events_at(now, [{"a": 1}, {"a": 2}])})
    post_events(
        api, {"events": events_at(now, [{"a": 3}], customer="cus_2", prefix="x", name="other")}
    )
    response = api.get("/api/v1/events")
    assert response.status_code == 200
    body = response.json()
    assert [e["id"] for e in body["results"]] == ["x0", "e1", "e0"]
    first = body["results"][0]
    assert set(first) >= {"id", "name", "customer", "timestamp", "properties"}
    assert (first["name"], first["customer"]) == ("other", "cus_2")
    assert [
        e["id"] for e in api.get("/api/v1/events", {"customer": "cus_ext_1"}).json()["results"]
    ] == ["e1", "e0"]
    assert [e["id"] for e in api.get("/api/v1/events", {"name": "other"}).json()["results"]] == [
        "x0"
    ]
    assert api.get("/api/v1/events", {"customer": "nobody"}).json()["results"] == []
    since = (now - timedelta(minutes=1, seconds=30)).isoformat()
    assert [e["id"] for e in api.get("/api/v1/events", {"since": since}).json()["results"]] == [
        "x0",
        "e1",
    ]
    until = (now - timedelta(minutes=1, seconds=30)).isoformat()
    assert [e["id"] for e in api.get("/api/v1/events", {"until": until}).json()["results"]] == [
        "e0"
    ]
    response = api.get("/api/v1/events", {"since": "yesterday"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_datetime"


def test_events_list_is_cursor_paginated(api, customer, now):
    post_events(api, {"events": events_at(now, [{"i": i} for i in range(7)])})
    seen, url = [], "/api/v1/events?page_size=3"
    while url:
        body = api.get(url).json()
        seen += [e["id"] for e in body["results"]]
        url = body["next"]
    assert seen == [f"e{i}" for i in reversed(range(7))]


def test_events_list_by_meter_shows_what_it_counts(api, customer, now):
    """?meter= lists the events the meter counts: its event name, filter and property."""
    meter = create_meter(
        api,
        name="Premium tokens",
        event_name="api_call",
        aggregation="sum",
        property="tokens",
        filter={
            "conjunction": "and",
            "clauses": [{"property": "tier", "operator": "equals", "value": "premium"}],
        },
    )
    props = [
        {"tier": "premium", "tokens": 1},
        {"tier": "free", "tokens": 1},
        {"tier": "premium"},
    ] * 4
    post_events(api, {"events": events_at(now, props)})
    post_events(
        api,
        {"events": events_at(now, [{"tier": "premium", "tokens": 1}], name="other", prefix="o")},
    )
    seen, url = [], f"/api/v1/events?meter={meter['id']}&page_size=2"
    while url:
        body = api.get(url).json()
        assert body["previous"] is None
        seen += [e["id"] for e in body["results"]]
        url = body["next"]
    assert seen == ["e9", "e6", "e3", "e0"]
    assert api.get("/api/v1/events", {"meter": 999999}).status_code == 404
    assert api.get("/api/v1/events", {"meter": "x"}).status_code == 400


def test_events_list_by_meter_bounds_the_work_per_page(api, customer, now, monkeypatch):
    """A rare match does not make one request scan the table: pages stop after scan_limit
    rows and `next` resumes after the last row examined."""
    from metering.api.pagination import EventCursorPagination

    monkeypatch.setattr(EventCursorPagination, "scan_limit", 4)
    monkeypatch.setattr(EventCursorPagination, "_chunk", 2)
    meter = create_meter(
        api,
        name="Rare",
        event_name="api_call",
        filter={
            "conjunction": "and",
            "clauses": [{"property": "rare", "operator": "equals", "value": True}],
        },
    )
    props = [{"rare": True}] + [{"rare": False}] * 9
    post_events(api, {"events": events_at(now, props)})
    pages, url = [], f"/api/v1/events?meter={meter['id']}"
    while url:
        body = api.get(url).json()
        pages.append([e["id"] for e in body["results"]])
        url = body["next"]
    assert pages == [[], [], ["e0"]]


def test_post_then_read_back_in_a_selector(api, customer, now):
    """The API and the selectors agree (the selectors are what other apps read)."""
    meter = create_meter(api, name="Tokens", event_name="llm", aggregation="sum", property="t")
    post_events(api, {"events": events_at(now, [{"t": 2}, {"t": "3.5"}], name="llm")})
    m = selectors.meter_get(meter_id=meter["id"])
    assert selectors.meter_value(
        meter=m,
        customer_id=customer.id,
        start=now - timedelta(hours=1),
        end=now + timedelta(hours=1),
    ) == Decimal("5.5")
    assert (
        json.loads(json.dumps(api.get(f"/api/v1/meters/{meter['id']}").json()))["backfill"][
            "status"
        ]
        == "done"
    )
