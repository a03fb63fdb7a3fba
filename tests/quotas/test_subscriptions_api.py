"""Subscriptions API (API.md "Customers and subscriptions"): create, list, read, cancel, usage."""

import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import Subscription
from quotas.models import UsageBalance
from tests.billing.factories import ClockFactory, CustomerFactory, OfferFactory
from tests.quotas.fixtures import NOV_1_ISTANBUL, NOW

pytestmark = pytest.mark.django_db


def test_create_a_subscription_with_its_first_period(office, tenant, clock, api):
    response = api.post(
        "/api/v1/subscriptions",
        {
            "customer": "cus_ofis",
            "offer": "shared-office",
            "start": "2026-11-01T00:00:00+03:00",
            "clock": clock.id,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["customer"], body["offer"], body["status"], body["clock"]) == (
        "cus_ofis",
        "shared-office",
        "active",
        clock.id,
    )
    assert body["current_period_start"] == "2026-10-31T21:00:00Z"
    assert body["current_period_end"] == "2026-11-30T21:00:00Z"
    assert api.get(f"/api/v1/subscriptions/{body['id']}").json() == body


def test_a_subscription_starts_with_the_usage_already_received(office, tenant, send, api):
    send(
        tenant,
        "print",
        datetime(2026, 11, 20, 9, tzinfo=UTC),
        datetime(2026, 11, 20, 9, 1, tzinfo=UTC),
        now=NOW,
    )
    response = api.post(
        "/api/v1/subscriptions",
        {"customer": "cus_ofis", "offer": "shared-office", "start": "2026-11-01T00:00:00+03:00"},
        format="json",
    )
    assert response.status_code == 201
    assert UsageBalance.objects.get().count == 2


def test_start_defaults_to_the_clock_now(office, tenant, clock, api):
    body = api.post(
        "/api/v1/subscriptions",
        {"customer": "cus_ofis", "offer": "shared-office", "clock": clock.id},
        format="json",
    ).json()
    assert body["started_at"] == "2026-11-21T12:00:00Z"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"customer": "cus_nobody", "offer": "shared-office"}, 400, "unknown_customer"),
        ({"customer": "cus_ofis", "offer": "nope"}, 400, "unknown_offer"),
        ({"customer": "cus_ofis", "offer": "shared-office", "clock": 9999}, 400, "unknown_clock"),
        (
            {"customer": "cus_ofis", "offer": "shared-office", "start": "yesterday"},
            400,
            "validation_error",
        ),
        ({"customer": "cus_ofis", "offer": "shared-office", "clock": "x"}, 400, "validation_error"),
        ({"offer": "shared-office"}, 400, "validation_error"),
        ({"customer": ["cus_ofis"], "offer": "shared-office"}, 400, "validation_error"),
    ],
)
def test_bad_subscription_input_is_a_clean_error(body, status, code, office, tenant, api):
    response = api.post("/api/v1/subscriptions", body, format="json")
    assert response.status_code == status, response.json()
    assert response.json()["error"]["code"] == code


def test_an_inactive_offer_is_not_sold(office, tenant, api):
    office.is_active = False
    office.save()
    response = api.post(
        "/api/v1/subscriptions", {"customer": "cus_ofis", "offer": "shared-office"}, format="json"
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "offer_inactive"


def test_list_filters(office, tenant, api):
    other = OfferFactory(code="other")
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for offer in (office, other):
        api.post(
            "/api/v1/subscriptions",
            {"customer": "cus_ofis", "offer": offer.code, "start": start.isoformat()},
            format="json",
        )
    api.post(
        "/api/v1/subscriptions",
        {"customer": CustomerFactory(external_id="cus_b").external_id, "offer": "other"},
        format="json",
    )

    def codes(query):
        return sorted(
            (s["customer"], s["offer"])
            for s in api.get(f"/api/v1/subscriptions{query}").json()["results"]
        )

    assert len(codes("")) == 3
    assert codes("?customer=cus_ofis") == [("cus_ofis", "other"), ("cus_ofis", "shared-office")]
    assert codes("?offer=other") == [("cus_b", "other"), ("cus_ofis", "other")]
    assert codes("?status=active&customer=cus_b") == [("cus_b", "other")]
    assert codes("?status=ended") == []
    bad = api.get("/api/v1/subscriptions?status=sleeping")
    assert bad.status_code == 400


def test_cancel_at_period_end_or_at_an_instant(office_subscription, api):
    url = f"/api/v1/subscriptions/{office_subscription.id}/cancel"
    response = api.post(url, {"at": "period_end"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["cancel_at"], body["canceled_at"], body["status"]) == (
        "2026-11-30T21:00:00Z",
        "2026-11-21T12:00:00Z",  # the subscription's clock
        "active",  # the period machinery ends it when the clock gets there
    )
    moved = api.post(url, {"at": "2026-11-25T10:00:00+03:00"}, format="json").json()
    assert moved["cancel_at"] == "2026-11-25T07:00:00Z"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"at": "2026-11-01T00:00:00Z"}, "cancel_at_in_past"),
        ({"at": "tomorrow"}, "validation_error"),
        ({"at": 12}, "validation_error"),
        ({}, "validation_error"),
    ],
)
def test_bad_cancel_requests(body, code, office_subscription, api):
    response = api.post(
        f"/api/v1/subscriptions/{office_subscription.id}/cancel", body, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_an_ended_subscription_cannot_be_canceled(office_subscription, api):
    Subscription.objects.filter(id=office_subscription.id).update(status="ended")
    response = api.post(
        f"/api/v1/subscriptions/{office_subscription.id}/cancel",
        {"at": "period_end"},
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "subscription_ended"


@pytest.mark.parametrize(
    "path",
    ["/api/v1/subscriptions/424242", "/api/v1/subscriptions/424242/usage"],
)
def test_unknown_subscription_is_404(path, api):
    response = api.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_subscription"


def test_usage_at_period_start_before_any_event(office, tenant, api):
    clock = ClockFactory(now=NOV_1_ISTANBUL)
    created = api.post(
        "/api/v1/subscriptions",
        {"customer": "cus_ofis", "offer": "shared-office", "clock": clock.id},
        format="json",
    ).json()
    body = api.get(f"/api/v1/subscriptions/{created['id']}/usage").json()
    prints = body["services"][0]
    assert (prints["used"], prints["remaining"], prints["overage_amount"]) == ("0", "10", "0.00")
    assert body["amount_due_so_far"] == "1500.00"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "customer": JSON | st.just("cus_ofis"),
        "offer": JSON | st.just("shared-office"),
        "start": JSON | st.just("2026-11-01T00:00:00Z"),
        "clock": JSON,
        "at": JSON | st.just("period_end"),
        "addon": JSON,
        "quantity": JSON,
    },
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=FIELDS | JSON, which=st.sampled_from(["", "/cancel", "/addons"]))
def test_api_bad_input_is_never_a_500(body, which, office_subscription, api):
    path = "/api/v1/subscriptions" + (f"/{office_subscription.id}{which}" if which else "")
    response = api.post(path, json.dumps(body), content_type="application/json")
    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"code", "message", "details"}
