"""The metering console in Debian's Chromium: meter chart, events explorer, filter editor
(R-M7, R-M3)."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from metering import services
from metering.models import Meter
from tests.billing.factories import CustomerFactory
from tests.metering.factories import NESTED_FILTER

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def console(page, live_server, django_user_model):
    django_user_model.objects.create_superuser("ops", "ops@kota.test", "console-pass-1")
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("input[name=username]", "ops")
    page.fill("input[name=password]", "console-pass-1")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    return page


def ingest(events):
    services.event_ingest_batch(
        events=[
            {"name": n, "id": i, "customer": c, "timestamp": at.isoformat(), "properties": p}
            for n, i, c, at, p in events
        ],
        now=NOW,
    )


def test_chart_draws_several_meters(console, live_server):
    CustomerFactory(external_id="cus_a")
    services.meter_create(name="API calls", event_name="api_call", unit="calls")
    services.meter_create(name="Tokens", event_name="llm", aggregation="sum", property="t")
    ingest(
        [("api_call", f"c{d}", "cus_a", NOW - timedelta(days=d), {}) for d in range(3)]
        + [("llm", f"t{d}", "cus_a", NOW - timedelta(days=d), {"t": 7}) for d in range(3)]
    )
    page = console
    page.goto(f"{live_server.url}/admin/metering/meter/")
    page.get_by_role("link", name="Usage chart").click()
    page.wait_for_url("**/admin/metering/meter/chart/**")
    page.select_option("select[name=meters]", label=["API calls", "Tokens"])
    page.fill("input[name=start]", "2026-11-15")
    page.fill("input[name=end]", "2026-11-21")
    page.click("button:has-text('Show')")
    page.wait_for_selector("#meter-chart-table tbody tr")
    page.wait_for_function("() => window.Chart && Chart.getChart('meter-chart')")
    labels = page.evaluate("() => Chart.getChart('meter-chart').data.datasets.map(d => d.label)")
    assert labels == ["API calls (calls)", "Tokens"]
    box = page.locator("#meter-chart").bounding_box()
    assert box["width"] > 300 and box["height"] > 100
    last_row = page.locator("#meter-chart-table tbody tr").last
    assert last_row.locator("td").all_inner_texts() == ["1", "7"]


def test_events_explorer_filters_by_customer_and_pages(console, live_server):
    CustomerFactory(external_id="cus_a")
    CustomerFactory(external_id="cus_b")
    ingest(
        [
            (
                "api_call",
                f"evt_{i:03}",
                "cus_a" if i % 2 else "cus_b",
                NOW - timedelta(minutes=i),
                {"i": i},
            )
            for i in range(120)
        ]
    )
    page = console
    page.goto(f"{live_server.url}/admin/metering/event/")
    page.fill("input[name=customer]", "cus_a")
    page.click("button:has-text('Filter')")
    page.wait_for_url("**customer=cus_a**")
    rows = page.locator("#event-explorer tbody tr")
    first_page = rows.evaluate_all("rows => rows.map(r => r.dataset.eventId)")
    assert len(first_page) == 50
    assert set(rows.locator("td:nth-child(3)").all_inner_texts()) == {"cus_a"}
    rows.first.locator("summary").click()
    assert '"i": 119' in rows.first.locator("pre").inner_text()
    page.get_by_role("link", name="Older events").click()
    page.wait_for_url("**cursor=**")
    second_page = page.locator("#event-explorer tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.eventId)"
    )
    assert len(second_page) == 10
    assert not set(first_page) & set(second_page)
    assert page.locator("a[rel=next]").count() == 0


def test_filter_editor_builds_a_nested_filter(console, live_server):
    page = console
    page.goto(f"{live_server.url}/admin/metering/meter/add/")
    page.fill("input[name=name]", "Premium writes")
    page.fill("input[name=event_name]", "api_call")
    assert page.locator("textarea[name=filter]").is_hidden()
    root = ".kota-filter-tree > .kota-filter-group"
    root_header = f"{root} > .kota-filter-group-header"

    def fill_last(scope, prop, operator, value):
        row = page.locator(f"{scope} > .kota-filter-clauses > .kota-filter-condition").last
        row.locator("[data-field=property]").fill(prop)
        row.locator("[data-field=operator]").select_option(operator)
        row.locator("[data-field=value]").fill(value)

    page.click(f"{root_header} [data-action=add-condition]")
    fill_last(root, "user_tier", "equals", "premium")
    page.click(f"{root_header} [data-action=add-group]")
    group = f"{root} > .kota-filter-clauses > .kota-filter-group"
    page.select_option(f"{group} > .kota-filter-group-header [data-field=conjunction]", "or")
    fill_last(group, "method", "equals", "POST")
    page.click(f"{group} > .kota-filter-group-header [data-action=add-condition]")
    fill_last(group, "tokens", "greater_than_or_equals", "10")
    page.click(f"{root_header} [data-action=add-condition]")
    fill_last(root, "code", "not_equals", '"42"')
    page.click(f"{root_header} [data-action=add-condition]")
    page.locator(f"{root} > .kota-filter-clauses > .kota-filter-condition").last.get_by_role(
        "button", name="Remove"
    ).click()
    page.locator("button[name=_save], input[name=_save]").first.click()
    page.wait_for_url(f"{live_server.url}/admin/metering/meter/")

    meter = Meter.objects.get()
    assert meter.filter == {
        **NESTED_FILTER,
        "clauses": [
            *NESTED_FILTER["clauses"],
            {"property": "code", "operator": "not_equals", "value": "42"},
        ],
    }

    # Reopened, the editor shows the same tree; the raw JSON is one click away.
    page.goto(f"{live_server.url}/admin/metering/meter/{meter.pk}/change/")
    values = page.locator("[data-field=value]").evaluate_all("els => els.map(e => e.value)")
    assert values == ["premium", "POST", "10", '"42"']
    page.click("[data-filter-raw-toggle]")
    raw = json.loads(page.locator("textarea[name=filter]").input_value())
    assert raw == meter.filter


def test_filter_editor_shows_the_server_error_for_a_bad_filter(console, live_server):
    page = console
    page.goto(f"{live_server.url}/admin/metering/meter/add/")
    page.fill("input[name=name]", "Bad")
    page.fill("input[name=event_name]", "api_call")
    page.click(".kota-filter-group-header [data-action=add-group]")
    page.locator(".kota-filter-group .kota-filter-group [data-field=property]").fill("")
    page.locator("button[name=_save], input[name=_save]").first.click()
    page.wait_for_load_state()
    assert "clauses[0].clauses[0].property" in page.content()
    assert not Meter.objects.exists()
