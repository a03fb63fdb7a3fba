"""The console's events explorer (R-M7): keyset pages newest first, filters, no COUNT(*)."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from metering import services
from tests.billing.factories import CustomerFactory

from .conftest import NOW

pytestmark = pytest.mark.django_db

URL = "/admin/metering/event/"


@pytest.fixture
def events(customer):
    """130 events: every third for cus_other; names alternate api_call / llm."""
    CustomerFactory(external_id="cus_other")
    services.event_ingest_batch(
        events=[
            {
                "id": f"evt_{i:03}",
                "name": "api_call" if i % 2 else "llm",
                "customer": "cus_other" if i % 3 == 0 else "cus_ext_1",
                "timestamp": (NOW - timedelta(minutes=130 - i)).isoformat(),
                "properties": {"tier": "premium" if i % 5 == 0 else "free", "n": i},
            }
            for i in range(130)
        ],
        now=NOW,
    )


def event_ids(response):
    return [event.event_id for event, _ in response.context["rows"]]


def all_pages(admin_client, params):
    """Every page's event ids, following "Older events", and the queries of each page."""
    pages, queries = [], []
    url = URL
    while url:
        with CaptureQueriesContext(connection) as captured:
            response = admin_client.get(url, params if url == URL else None)
        assert response.status_code == 200
        queries.extend(q["sql"] for q in captured.captured_queries)
        pages.append(event_ids(response))
        url = response.context["next_url"]
    return pages, queries


def test_pages_are_newest_first_without_duplicates_or_gaps_and_without_count(admin_client, events):
    pages, queries = all_pages(admin_client, {})
    assert [len(p) for p in pages] == [50, 50, 30]
    flat = [e for page in pages for e in page]
    assert flat == [f"evt_{i:03}" for i in reversed(range(130))]
    assert not [q for q in queries if "COUNT(" in q.upper()]
    assert not [q for q in queries if re.search(r"\bOFFSET\b", q.upper())]
    assert not [q for q in queries if "DISTINCT" in q.upper()]


def test_filters_by_customer_name_and_time(admin_client, events):
    params = {
        "customer": "cus_other",
        "name": "api_call",
        "since": (NOW - timedelta(minutes=100)).strftime("%Y-%m-%dT%H:%M"),
        "until": (NOW - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M"),
    }
    pages, _ = all_pages(admin_client, params)
    expected = [f"evt_{i:03}" for i in reversed(range(30, 120)) if i % 3 == 0 and i % 2]
    assert [e for page in pages for e in page] == expected


def test_a_meter_shows_only_what_it_counts_across_pages(admin_client, events):
    meter = services.meter_create(
        name="Premium calls",
        event_name="api_call",
        filter={
            "conjunction": "and",
            "clauses": [{"property": "tier", "operator": "equals", "value": "premium"}],
        },
    )
    response = admin_client.get(URL, {"meter": meter.pk, "page_size": 5})
    first = event_ids(response)
    pages, _ = all_pages(admin_client, {"meter": meter.pk, "page_size": 5})
    flat = [e for page in pages for e in page]
    assert first == flat[:5]
    assert flat == [f"evt_{i:03}" for i in reversed(range(130)) if i % 2 and i % 5 == 0]
    assert len(flat) == len(set(flat))


def test_exact_event_id_search_and_properties(admin_client, events):
    response = admin_client.get(URL, {"event_id": "evt_042"})
    assert event_ids(response) == ["evt_042"]
    html = response.content.decode()
    assert "<details>" in html and "&quot;n&quot;: 42" in html
    assert event_ids(admin_client.get(URL, {"event_id": "evt_04"})) == []


def test_unknown_customer_and_bad_cursor_are_explained(admin_client, events):
    response = admin_client.get(URL, {"customer": "nobody"})
    assert response.status_code == 200
    assert "No customer" in response.content.decode()
    response = admin_client.get(URL, {"cursor": "not-a-cursor"})
    assert response.status_code == 200
    assert "no longer valid" in response.content.decode()


def test_detail_page_and_permissions(admin_client, client, events):
    response = admin_client.get(URL, {"event_id": "evt_007"})
    event = response.context["rows"][0][0]
    detail = admin_client.get(f"{URL}{event.pk}/change/")
    assert detail.status_code == 200 and "evt_007" in detail.content.decode()
    assert client.get(URL).status_code == 302
