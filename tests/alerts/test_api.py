"""The Alerts contract of API.md: /api/v1/alerts, transitions, triggers; R-A4's 409."""

import pytest

from alerts.models import AlertStatus, StaffGroup, UsageAlert
from tests.billing.factories import CustomerFactory
from tests.metering.factories import MeterFactory

from .conftest import ingest

pytestmark = pytest.mark.django_db


def create(api, **body):
    return api.post("/api/v1/alerts", body, format="json")


def test_create_and_list_an_alert(api, meter, customer):
    StaffGroup.objects.create(name="sales", members="ana@kota.test")
    response = create(
        api,
        title="Big usage",
        meter=meter.pk,
        customer="cus_ext_1",
        threshold="1000",
        recurrence="every_period",
        actions={
            "email_customer": True,
            "customer_emails": ["me@acme.test"],
            "staff_group": "sales",
        },
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["title"] == "Big usage"
    assert body["meter"] == meter.pk
    assert body["customer"] == "cus_ext_1"
    assert body["threshold"] == "1000"
    assert body["recurrence"] == "every_period"
    assert body["status"] == "active"
    assert body["actions"] == {
        "webhook": True,
        "email_customer": True,
        "customer_emails": ["me@acme.test"],
        "staff_group": "sales",
        "remove_access": False,
    }
    listed = api.get("/api/v1/alerts").json()
    assert [a["id"] for a in listed["results"]] == [body["id"]]
    assert api.get(f"/api/v1/alerts/{body['id']}").json()["title"] == "Big usage"


def test_an_all_customers_alert_has_a_null_customer(api, meter):
    response = create(api, title="All", meter=meter.pk, customer=None, threshold="5")
    assert response.status_code == 201
    assert response.json()["customer"] is None
    assert response.json()["recurrence"] == "one_time"


@pytest.mark.parametrize(
    "body",
    [
        {"title": "x", "threshold": "5"},  # no meter
        {"title": "x", "meter": 999999, "threshold": "5"},
        {"title": "x", "meter": "METER", "customer": "nobody", "threshold": "5"},
        {"title": "x", "meter": "METER", "threshold": "0"},
        {"title": "x", "meter": "METER", "threshold": "-1"},
        {"title": "x", "meter": "METER", "threshold": "lots"},
        {"title": "x", "meter": "METER", "threshold": "5", "recurrence": "hourly"},
        {"title": "x", "meter": "METER", "threshold": "5", "actions": {"customer_emails": ["no"]}},
        {"title": "x", "meter": "METER", "threshold": "5", "actions": {"staff_group": "nope"}},
    ],
)
def test_bad_input_is_a_400_with_the_error_envelope(api, meter, customer, body):
    if body.get("meter") == "METER":
        body = {**body, "meter": meter.pk}
    response = create(api, **body)
    assert response.status_code == 400, response.json()
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_r_a4_the_26th_alert_for_a_meter_and_customer_is_a_409(api, meter, customer):
    for i in range(3):  # alerts for all customers don't count against a customer's 25
        assert create(api, title=f"all {i}", meter=meter.pk, threshold="5").status_code == 201
    for i in range(25):
        response = create(api, title=f"a{i}", meter=meter.pk, customer="cus_ext_1", threshold="5")
        assert response.status_code == 201
    response = create(api, title="26th", meter=meter.pk, customer="cus_ext_1", threshold="5")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "alert_limit_reached"
    assert error["details"] == {"limit": 25, "meter": meter.pk, "customer": "cus_ext_1"}
    # Another meter or another customer has its own 25.
    other_meter = MeterFactory()
    assert (
        create(
            api, title="m", meter=other_meter.pk, customer="cus_ext_1", threshold="5"
        ).status_code
        == 201
    )
    CustomerFactory(external_id="cus_2")
    assert (
        create(api, title="c", meter=meter.pk, customer="cus_2", threshold="5").status_code == 201
    )
    # An archived alert frees its slot.
    first = UsageAlert.objects.filter(customer=customer, meter=meter).order_by("id").first()
    assert api.post(f"/api/v1/alerts/{first.pk}/archive").status_code == 200
    assert (
        create(api, title="again", meter=meter.pk, customer="cus_ext_1", threshold="5").status_code
        == 201
    )
    assert (
        UsageAlert.objects.filter(customer=customer, meter=meter).exclude(status="archived").count()
        == 25
    )


def test_activate_deactivate_archive_and_archived_is_final(api, meter):
    alert_id = create(api, title="t", meter=meter.pk, threshold="5").json()["id"]
    assert api.post(f"/api/v1/alerts/{alert_id}/deactivate").json()["status"] == "inactive"
    assert api.post(f"/api/v1/alerts/{alert_id}/activate").json()["status"] == "active"
    assert api.post(f"/api/v1/alerts/{alert_id}/archive").json()["status"] == "archived"
    assert api.post(f"/api/v1/alerts/{alert_id}/archive").status_code == 200  # idempotent
    for verb in ("activate", "deactivate"):
        response = api.post(f"/api/v1/alerts/{alert_id}/{verb}")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "alert_archived"
    assert UsageAlert.objects.get(pk=alert_id).status == AlertStatus.ARCHIVED
    # Hidden from lists by default, visible when asked for.
    assert api.get("/api/v1/alerts").json()["results"] == []
    assert len(api.get("/api/v1/alerts?status=archived").json()["results"]) == 1
    assert len(api.get("/api/v1/alerts?include_archived=true").json()["results"]) == 1
    assert api.post("/api/v1/alerts/999999/activate").status_code == 404


def test_list_filters(api, meter, customer):
    other_meter = MeterFactory()
    create(api, title="a", meter=meter.pk, customer="cus_ext_1", threshold="5")
    create(api, title="b", meter=other_meter.pk, threshold="5")
    assert [a["title"] for a in api.get(f"/api/v1/alerts?meter={meter.pk}").json()["results"]] == [
        "a"
    ]
    assert [a["title"] for a in api.get("/api/v1/alerts?customer=cus_ext_1").json()["results"]] == [
        "a"
    ]
    assert api.get("/api/v1/alerts?meter=abc").status_code == 400


def test_triggers_list_filtered_by_alert_and_customer(api, meter, customer):
    alert_id = create(api, title="t", meter=meter.pk, threshold="2").json()["id"]
    other = CustomerFactory(external_id="cus_2")
    ingest(customer, 2)
    ingest(other, 3)
    body = api.get(f"/api/v1/alerts/triggers?alert={alert_id}").json()
    assert {(t["customer"], t["value"]) for t in body["results"]} == {
        ("cus_ext_1", "2"),
        ("cus_2", "3"),
    }
    rows = api.get("/api/v1/alerts/triggers?customer=cus_2").json()["results"]
    assert len(rows) == 1
    row = rows[0]
    assert {"alert", "customer", "value", "triggered_at"} <= set(row)
    assert row["alert"] == alert_id and row["threshold"] == "2"
    assert "next" in body


def test_the_api_needs_a_key(anon_api):
    assert anon_api.get("/api/v1/alerts").status_code == 401
