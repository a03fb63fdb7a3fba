"""The meter form's filter (R-M3): the structured editor submits the API.md JSON, which the
console validates with Meter.clean / parse_filter."""

import json

import pytest

from metering.forms import FilterEditorWidget
from metering.models import Meter

from .factories import NESTED_FILTER

pytestmark = pytest.mark.django_db


def add_meter(admin_client, filter_json):
    return admin_client.post(
        "/admin/metering/meter/add/",
        {"name": "Calls", "event_name": "api_call", "aggregation": "count", "filter": filter_json},
    )


def test_a_valid_nested_filter_is_stored_as_json(admin_client):
    response = add_meter(admin_client, json.dumps(NESTED_FILTER))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Meter.objects.get().filter == NESTED_FILTER


def test_a_malformed_filter_is_refused_naming_the_clause(admin_client):
    bad = {
        "conjunction": "and",
        "clauses": [
            {"property": "tier", "operator": "equals", "value": "premium"},
            {"conjunction": "or", "clauses": [{"property": "n", "operator": "is", "value": 1}]},
        ],
    }
    response = add_meter(admin_client, json.dumps(bad))
    assert response.status_code == 200
    assert not Meter.objects.exists()
    errors = response.context["adminform"].form.errors["filter"]
    assert errors == ["clauses[1].clauses[0].operator: " + errors[0].split(": ", 1)[1]]
    assert "clauses[1].clauses[0].operator" in response.content.decode()


def test_no_filter_is_null(admin_client):
    assert add_meter(admin_client, "null").status_code == 302
    assert Meter.objects.get().filter is None


def test_the_form_carries_the_editor_and_explains_values(admin_client):
    html = admin_client.get("/admin/metering/meter/add/").content.decode()
    assert "data-filter-editor" in html
    assert "metering/filter_editor.js" in html
    assert "double quotes" in html
    assert FilterEditorWidget.template_name == "metering/widgets/filter_editor.html"
