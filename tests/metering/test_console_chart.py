"""The console's meter chart (R-M7): several meters by day, week or month, from rollups."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from metering import selectors, services
from tests.billing.factories import CustomerFactory

from .conftest import NOW

pytestmark = pytest.mark.django_db

URL = "/admin/metering/meter/chart/"


@pytest.fixture
def meters(customer):
    calls = services.meter_create(name="API calls", event_name="api_call", unit="calls")
    tokens = services.meter_create(
        name="Tokens", event_name="llm", aggregation="sum", property="t", unit="tokens"
    )
    CustomerFactory(external_id="cus_other")
    events = []
    for day in range(5):
        at = NOW - timedelta(days=day, hours=1)
        for n in range(day + 1):
            events.append(("api_call", f"c{day}-{n}", "cus_ext_1", at, {}))
        events.append(("llm", f"t{day}", "cus_ext_1", at, {"t": 10 * day + 1}))
        events.append(("llm", f"o{day}", "cus_other", at, {"t": 1000}))
    services.event_ingest_batch(
        events=[
            {"name": name, "id": i, "customer": c, "timestamp": at.isoformat(), "properties": p}
            for name, i, c, at, p in events
        ],
        now=NOW,
    )
    return calls, tokens


def chart(admin_client, **params):
    response = admin_client.get(URL, params)
    assert response.status_code == 200
    return response


def test_the_chart_table_shows_meter_summaries_of_each_meter(admin_client, meters):
    calls, tokens = meters
    response = chart(
        admin_client,
        meters=[calls.pk, tokens.pk],
        start="2026-11-15",
        end="2026-11-21",
        window="day",
        timezone="Europe/Paris",
    )
    start = datetime(2026, 11, 14, 23, tzinfo=UTC)  # 15 November 00:00 in Paris
    end = datetime(2026, 11, 21, 23, tzinfo=UTC)
    expected = [
        selectors.meter_summaries(
            meter=m, start=start, end=end, window="day", tz="Europe/Paris"
        ).windows
        for m in meters
    ]
    rows = response.context["rows"]
    assert [r["label"] for r in rows] == [f"2026-11-{d}" for d in range(15, 22)]
    for i, row in enumerate(rows):
        assert row["values"] == [expected[0][i].value, expected[1][i].value]
    assert rows[-1]["values"] == [Decimal(1), Decimal(1 + 1000)]
    assert response.context["totals"] == [Decimal(15), Decimal(105 + 5000)]
    html = response.content.decode()
    assert 'id="meter-chart"' in html and 'id="meter-chart-table"' in html
    assert '<td class="num">5105</td>' in html
    data = response.context["chart_data"]
    assert [d["label"] for d in data["datasets"]] == ["API calls (calls)", "Tokens (tokens)"]
    assert data["datasets"][0]["data"][-5:] == [5.0, 4.0, 3.0, 2.0, 1.0]


def test_one_customer_by_week(admin_client, meters):
    _, tokens = meters
    response = chart(
        admin_client,
        meters=[tokens.pk],
        start="2026-11-01",
        end="2026-11-30",
        window="week",
        customer="cus_ext_1",
    )
    assert response.context["totals"] == [Decimal(1 + 11 + 21 + 31 + 41)]
    labels = [r["label"] for r in response.context["rows"]]
    assert labels == [
        "2026-11-01",
        "2026-11-02",
        "2026-11-09",
        "2026-11-16",
        "2026-11-23",
        "2026-11-30",
    ]
    assert "customer cus_ext_1" in response.content.decode()


def test_a_long_range_by_day_is_coarsened_not_slow(
    admin_client, meters, django_assert_max_num_queries
):
    calls, _ = meters
    with django_assert_max_num_queries(20):
        response = chart(
            admin_client, meters=[calls.pk], start="2015-01-01", end="2026-12-31", window="day"
        )
    assert response.context["chart"].window == "month"
    assert len(response.context["rows"]) == 144
    assert response.context["totals"] == [Decimal(15)]
    assert "shown by month instead" in response.content.decode()


def test_bad_input_is_reported_on_the_form(admin_client, meters):
    calls, _ = meters
    response = chart(
        admin_client,
        meters=[calls.pk],
        start="2026-11-10",
        end="2026-11-01",
        timezone="Mars/Olympus",
        customer="nobody",
    )
    errors = response.context["form"].errors
    assert set(errors) == {"end", "timezone", "customer"}
    assert response.context["chart"] is None
    assert "No customer" in response.content.decode()


def test_defaults_and_links(admin_client, meters):
    calls, _ = meters
    response = chart(admin_client)
    assert response.context["chart"].window == "day"
    assert len(response.context["rows"]) == 30
    assert URL in admin_client.get("/admin/metering/meter/").content.decode()
    detail = admin_client.get(f"/admin/metering/meter/{calls.pk}/chart/")
    assert detail.status_code == 302
    assert detail["Location"] == f"{URL}?meters={calls.pk}"


def test_the_chart_needs_a_console_login(client):
    assert client.get(URL).status_code == 302
