"""/api/v1/meters: CRUD, validation (R-M1, R-M3), archive, back-fill, summaries (R-M7)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from metering import services
from metering.models import Meter
from tests.billing.factories import CustomerFactory

from .conftest import NOW

pytestmark = pytest.mark.django_db


def create(api, **body):
    return api.post("/api/v1/meters", body, format="json")


def error(response):
    return response.status_code, response.json()["error"]["code"]


@pytest.mark.parametrize(
    "name, event_name, aggregation, prop, unit",
    [
        ("Tokens", "llm_call", "sum", "tokens", "tokens"),
        ("API calls", "api_call", "count", "", "calls"),
        ("Storage", "storage", "max", "gb", "GB"),
        ("Compute hours", "compute", "last", "usage.hours", "hours"),
    ],
)
def test_r_m1_meter_has_name_event_aggregation_property_and_unit(
    api, name, event_name, aggregation, prop, unit
):
    """R-M1: name, event name, aggregation, property (not for count) and unit label."""
    response = create(
        api, name=name, event_name=event_name, aggregation=aggregation, property=prop, unit=unit
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert {k: body[k] for k in ("name", "event_name", "aggregation", "property", "unit")} == {
        "name": name,
        "event_name": event_name,
        "aggregation": aggregation,
        "property": prop,
        "unit": unit,
    }
    assert body["status"] == "active"
    assert body["filter"] is None
    assert body["backfill"]["status"] == "done"  # no stored event to count yet
    assert api.get(f"/api/v1/meters/{body['id']}").json() == body


def test_r_m1_property_required_unless_count(api):
    for agg in ("sum", "max", "last"):
        assert error(create(api, name="x", event_name="e", aggregation=agg)) == (
            400,
            "property_required",
        )
    assert error(create(api, name="x", event_name="e", aggregation="count", property="p")) == (
        400,
        "property_not_allowed",
    )
    assert error(create(api, name="x", event_name="e", aggregation="median", property="p")) == (
        400,
        "validation_error",
    )
    assert error(create(api, event_name="e")) == (400, "validation_error")
    assert error(create(api, name="x", event_name="   ")) == (400, "validation_error")
    assert Meter.objects.count() == 0


def test_r_m3_filter_is_validated_with_the_path_of_the_bad_clause(api):
    bad = {
        "conjunction": "and",
        "clauses": [
            {"property": "tier", "operator": "equals", "value": "premium"},
            {"conjunction": "or", "clauses": [{"property": "m", "operator": "like", "value": "x"}]},
        ],
    }
    response = create(api, name="x", event_name="e", filter=bad)
    assert response.status_code == 400
    err = response.json()["error"]
    assert err["code"] == "invalid_filter"
    assert err["details"] == {"path": "clauses[1].clauses[0].operator"}
    for junk in (
        "x",
        [1],
        {"property": "a", "operator": "equals", "value": 1},
        {"conjunction": "xor", "clauses": []},
    ):
        assert error(create(api, name="x", event_name="e", filter=junk)) == (400, "invalid_filter")


def test_r_m3_filter_with_every_operator_is_stored_normalised(api):
    ops = [
        "equals",
        "not_equals",
        "greater_than",
        "greater_than_or_equals",
        "less_than",
        "less_than_or_equals",
        "contains",
        "does_not_contain",
    ]
    f = {
        "conjunction": "or",
        "clauses": [{"property": "p", "operator": op, "value": 1} for op in ops],
    }
    response = create(api, name="x", event_name="e", filter=f)
    assert response.status_code == 201
    assert response.json()["filter"] == f
    assert create(api, name="y", event_name="e", filter={}).json()["filter"] is None


def test_list_hides_archived_meters_unless_asked(api):
    a = create(api, name="A", event_name="a").json()
    create(api, name="B", event_name="b")
    response = api.post(f"/api/v1/meters/{a['id']}/archive")
    assert response.status_code == 200
    assert response.json()["status"] == "archived"
    assert response.json()["archived_at"]
    # Archiving again is harmless.
    assert api.post(f"/api/v1/meters/{a['id']}/archive").status_code == 200
    names = lambda params: [m["name"] for m in api.get("/api/v1/meters", params).json()["results"]]  # noqa: E731
    assert names({}) == ["B"]
    assert names({"status": "archived"}) == ["A"]
    assert names({"status": "all"}) == ["A", "B"]
    assert error(api.get("/api/v1/meters", {"status": "nope"})) == (400, "invalid_status")
    assert error(api.patch(f"/api/v1/meters/{a['id']}", {"name": "A2"}, format="json")) == (
        409,
        "meter_archived",
    )
    assert api.get("/api/v1/meters/999999").status_code == 404
    assert api.post("/api/v1/meters/999999/archive").status_code == 404


def test_patch_name_and_unit_keeps_rollups(api, customer):
    meter = services.meter_create(name="Calls", event_name="api_call")
    services.event_ingest_batch(
        events=[{"id": "e1", "name": "api_call", "customer": "cus_ext_1"}], now=NOW
    )
    response = api.patch(
        f"/api/v1/meters/{meter.id}", {"name": "Requests", "unit": "req"}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["unit"]) == ("Requests", "req")
    meter.refresh_from_db()
    assert meter.generation == 1
    assert meter.backfill_status == "done"


def test_patch_validates_like_create(api):
    meter = services.meter_create(name="Tokens", event_name="llm", aggregation="sum", property="t")
    url = f"/api/v1/meters/{meter.id}"
    assert error(api.patch(url, {"property": ""}, format="json")) == (400, "property_required")
    assert error(api.patch(url, {"filter": {"conjunction": "and"}}, format="json")) == (
        400,
        "invalid_filter",
    )
    # Switching to count drops the property.
    response = api.patch(url, {"aggregation": "count"}, format="json")
    assert response.status_code == 200
    assert (response.json()["aggregation"], response.json()["property"]) == ("count", "")


def test_changing_what_a_meter_counts_back_fills_after_commit(
    api, customer, django_capture_on_commit_callbacks
):
    """Creating or redefining a meter re-builds its rollups from stored events, in a Celery
    task started after the transaction commits; progress is on the meter."""
    services.event_ingest_batch(
        events=[
            {"id": f"e{i}", "name": "api_call", "customer": "cus_ext_1", "properties": {"t": i}}
            for i in range(5)
        ],
        now=NOW,
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = create(api, name="Calls", event_name="api_call")
    assert response.status_code == 201
    assert response.json()["backfill"] == {
        "status": "pending",
        "processed": 0,
        "total": 0,
        "percent": 0,
        "finished_at": None,
    }
    assert len(callbacks) == 1
    callbacks[0]()  # Celery runs eagerly in tests
    body = api.get(f"/api/v1/meters/{response.json()['id']}").json()
    assert body["backfill"]["status"] == "done"
    assert (
        body["backfill"]["processed"],
        body["backfill"]["total"],
        body["backfill"]["percent"],
    ) == (5, 5, 100)
    assert summary_total(api, body["id"]) == "5"

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api.patch(
            f"/api/v1/meters/{body['id']}",
            {"aggregation": "sum", "property": "t"},
            format="json",
        )
    assert len(callbacks) == 1
    assert response.json()["backfill"]["status"] == "pending"
    assert api.get(f"/api/v1/meters/{body['id']}").json()["backfill"]["status"] == "done"
    assert summary_total(api, body["id"]) == "10"


def summary_total(api, meter_id, **params):
    params = {
        "start": (NOW - timedelta(days=1)).isoformat(),
        "end": (NOW + timedelta(days=1)).isoformat(),
        **params,
    }
    response = api.get(f"/api/v1/meters/{meter_id}/summaries", params)
    assert response.status_code == 200, response.json()
    return response.json()["total"]


# ------------------------------------------------------------------------------ summaries


@pytest.fixture
def tokens(customer):
    """A sum meter with events for two customers around Los Angeles and Kolkata midnights."""
    CustomerFactory(external_id="cus_2")
    meter = services.meter_create(name="Tokens", event_name="llm", aggregation="sum", property="t")
    stamps = [
        ("cus_ext_1", "2026-11-19T07:59:59Z", 1),  # 23:59:59 on the 18th in LA
        ("cus_ext_1", "2026-11-19T08:00:00Z", 2),  # 00:00 on the 19th in LA
        ("cus_ext_1", "2026-11-19T18:29:00Z", 4),  # 23:59 on the 19th in Kolkata
        ("cus_2", "2026-11-19T18:30:00Z", 8),  # 00:00 on the 20th in Kolkata
        ("cus_2", "2026-11-20T12:00:00Z", 16),
    ]
    services.event_ingest_batch(
        events=[
            {"id": f"t{i}", "name": "llm", "customer": c, "timestamp": ts, "properties": {"t": v}}
            for i, (c, ts, v) in enumerate(stamps)
        ],
        now=NOW,
    )
    return meter


def summaries(api, meter, **params):
    return api.get(f"/api/v1/meters/{meter.id}/summaries", params)


def test_r_m7_daily_summaries_in_los_angeles(api, tokens):
    la = ZoneInfo("America/Los_Angeles")
    response = summaries(
        api,
        tokens,
        start=datetime(2026, 11, 18, tzinfo=la).isoformat(),
        end=datetime(2026, 11, 21, tzinfo=la).isoformat(),
        window="day",
        timezone="America/Los_Angeles",
    )
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "data": [
            {
                "start": "2026-11-18T08:00:00+00:00",
                "end": "2026-11-19T08:00:00+00:00",
                "value": "1",
            },
            {
                "start": "2026-11-19T08:00:00+00:00",
                "end": "2026-11-20T08:00:00+00:00",
                "value": "14",
            },
            {
                "start": "2026-11-20T08:00:00+00:00",
                "end": "2026-11-21T08:00:00+00:00",
                "value": "16",
            },
        ],
        "total": "31",
    }


def test_r_m7_daily_summaries_in_kolkata_per_customer(api, tokens):
    ist = ZoneInfo("Asia/Kolkata")
    params = {
        "start": datetime(2026, 11, 19, tzinfo=ist).isoformat(),
        "end": datetime(2026, 11, 21, tzinfo=ist).isoformat(),
        "timezone": "Asia/Kolkata",
    }
    assert [w["value"] for w in summaries(api, tokens, **params).json()["data"]] == ["7", "24"]
    one = summaries(api, tokens, customer="cus_ext_1", **params).json()
    assert [w["value"] for w in one["data"]] == ["7", "0"]
    assert one["total"] == "7"
    assert summaries(api, tokens, customer="nobody", **params).status_code == 404


def test_r_m7_weekly_and_monthly_summaries(api, tokens):
    week = summaries(
        api,
        tokens,
        start="2026-11-01T00:00:00Z",
        end="2026-12-01T00:00:00Z",
        window="week",
    ).json()
    # Mondays: Nov 2, 9, 16, 23, 30.
    assert [w["start"][:10] for w in week["data"]] == [
        "2026-11-01",
        "2026-11-02",
        "2026-11-09",
        "2026-11-16",
        "2026-11-23",
        "2026-11-30",
    ]
    assert [w["value"] for w in week["data"]] == ["0", "0", "0", "31", "0", "0"]
    month = summaries(
        api, tokens, start="2026-10-15T00:00:00Z", end="2026-12-15T00:00:00Z", window="month"
    ).json()
    assert [(w["start"][:10], w["value"]) for w in month["data"]] == [
        ("2026-10-15", "0"),
        ("2026-11-01", "31"),
        ("2026-12-01", "0"),
    ]


def test_summaries_of_max_and_last_over_all_customers(api, tokens):
    peak = services.meter_create(name="Peak", event_name="llm", aggregation="max", property="t")
    last = services.meter_create(name="Last", event_name="llm", aggregation="last", property="t")
    services.event_ingest_batch(
        events=[
            {
                "id": "late",
                "name": "llm",
                "customer": "cus_ext_1",
                "timestamp": "2026-11-19T09:00:00Z",
                "properties": {"t": 3},
            },
            {
                "id": "new",
                "name": "llm",
                "customer": "cus_2",
                "timestamp": "2026-11-20T13:00:00Z",
                "properties": {"t": 5},
            },
        ],
        now=NOW,
    )
    params = {"start": "2026-11-19T00:00:00Z", "end": "2026-11-21T00:00:00Z", "window": "day"}
    # The late event (09:00, 3) is neither the peak nor the latest of its day.
    assert [w["value"] for w in summaries(api, peak, **params).json()["data"]] == ["8", "16"]
    body = summaries(api, last, **params).json()
    assert [w["value"] for w in body["data"]] == ["8", "5"]
    assert body["total"] == "5"
    # No value yet: null, not zero.
    empty = summaries(api, peak, start="2026-11-01T00:00:00Z", end="2026-11-02T00:00:00Z").json()
    assert empty == {
        "data": [
            {
                "start": "2026-11-01T00:00:00+00:00",
                "end": "2026-11-02T00:00:00+00:00",
                "value": None,
            }
        ],
        "total": None,
    }


def test_summaries_with_second_precision_bounds(api, tokens):
    body = summaries(
        api,
        tokens,
        start="2026-11-19T07:59:58Z",
        end="2026-11-19T08:00:00.000001Z",
        window="hour",
    ).json()
    assert body["total"] == "3"
    assert [(w["start"], w["value"]) for w in body["data"]] == [
        ("2026-11-19T07:59:58+00:00", "1"),
        ("2026-11-19T08:00:00+00:00", "2"),
    ]


@pytest.mark.parametrize(
    "params, status, code",
    [
        ({"end": "2026-11-20T00:00:00Z"}, 400, "missing_parameter"),
        ({"start": "2026-11-19T00:00:00Z"}, 400, "missing_parameter"),
        ({"start": "2026-11-19T00:00:00", "end": "2026-11-20T00:00:00Z"}, 400, "naive_datetime"),
        ({"start": "soon", "end": "2026-11-20T00:00:00Z"}, 400, "invalid_datetime"),
        ({"start": "2026-11-20T00:00:00Z", "end": "2026-11-19T00:00:00Z"}, 400, "invalid_range"),
        (
            {"start": "2026-11-19T00:00:00Z", "end": "2026-11-20T00:00:00Z", "window": "minute"},
            400,
            "invalid_window",
        ),
        (
            {
                "start": "2026-11-19T00:00:00Z",
                "end": "2026-11-20T00:00:00Z",
                "timezone": "Mars/Base",
            },
            400,
            "invalid_timezone",
        ),
        (
            {
                "start": "2026-11-19T00:00:00Z",
                "end": "2026-11-20T00:00:00Z",
                "timezone": "UTC-08:00",
            },
            400,
            "invalid_timezone",
        ),
        (
            {"start": "2020-01-01T00:00:00Z", "end": "2026-11-20T00:00:00Z", "window": "hour"},
            400,
            "too_many_windows",
        ),
        (
            {
                "start": "0001-01-01T00:00:00+00:00",
                "end": "0001-01-05T00:00:00+00:00",
                "timezone": "America/Los_Angeles",
            },
            400,
            "invalid_range",
        ),
    ],
)
def test_summaries_validate_their_parameters(api, tokens, params, status, code):
    assert error(summaries(api, tokens, **params)) == (status, code)


def test_summaries_plus_in_a_query_string_offset(api, tokens):
    """An unencoded `+05:30` arrives as a space; it is read as the offset it was."""
    response = api.get(
        f"/api/v1/meters/{tokens.id}/summaries?start=2026-11-19T00:00:00+05:30&end=2026-11-21T00:00:00+05:30"
    )
    assert response.status_code == 200
    assert (
        response.json()["data"][0]["start"]
        == datetime(2026, 11, 18, 18, 30, tzinfo=UTC).isoformat()
    )
