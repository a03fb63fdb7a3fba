import pytest

from billing.models import Offer
from quotas.models import OfferService, ServiceGroup
from tests.metering.factories import MeterFactory
from tests.quotas.factories import ServiceFactory, ServiceGroupFactory

pytestmark = pytest.mark.django_db


def test_service_groups_have_exactly_three_kinds_r_q1(api):
    for kind in ("on_off", "seat_based", "usage_based"):
        response = api.post("/api/v1/service-groups", {"name": kind, "kind": kind}, format="json")
        assert response.status_code == 201, response.json()
    bad = api.post("/api/v1/service-groups", {"name": "x", "kind": "hybrid"}, format="json")
    assert bad.status_code == 400
    assert "kind" in bad.json()["error"]["details"]
    kinds = [g["kind"] for g in api.get("/api/v1/service-groups?kind=seat_based").json()["results"]]
    assert kinds == ["seat_based"]


def test_duplicate_service_group_is_409(api):
    ServiceGroupFactory(name="Prints")
    response = api.post(
        "/api/v1/service-groups", {"name": "Prints", "kind": "on_off"}, format="json"
    )
    assert response.status_code == 409


def test_metered_service_needs_a_meter_and_on_off_has_none(api):
    usage = ServiceGroupFactory(kind="usage_based")
    on_off = ServiceGroupFactory(kind="on_off")
    meter = MeterFactory()
    no_meter = api.post(
        "/api/v1/services", {"code": "prints", "name": "Prints", "group": usage.id}, format="json"
    )
    assert no_meter.status_code == 400
    assert "meter" in no_meter.json()["error"]["details"]
    ok = api.post(
        "/api/v1/services",
        {"code": "prints", "name": "Prints", "group": usage.id, "meter": meter.id},
        format="json",
    )
    assert ok.status_code == 201, ok.json()
    assert ok.json()["kind"] == "usage_based"
    metered_switch = api.post(
        "/api/v1/services",
        {"code": "support", "name": "24/7", "group": on_off.id, "meter": meter.id},
        format="json",
    )
    assert metered_switch.status_code == 400
    bad_code = api.post(
        "/api/v1/services", {"code": "Bad Code!", "name": "x", "group": on_off.id}, format="json"
    )
    assert bad_code.status_code == 400


def _catalog():
    prints = ServiceFactory(code="prints", group__kind="usage_based")
    support = ServiceFactory(code="support", group__kind="on_off")
    seats = ServiceFactory(code="seats", group__kind="seat_based")
    return prints, support, seats


OFFICE = {
    "code": "shared-office",
    "name": "Shared office",
    "currency": "try",
    "fixed_fee": "1500.00",
    "billing_interval": "month",
    "timezone": "Europe/Istanbul",
    "services": [
        {
            "service": "prints",
            "included": "10",
            "reset_interval": "billing_period",
            "limit_behaviour": "overage",
            "pricing": {"model": "package", "package_size": "10", "package_price": "5.00"},
        },
        {"service": "support", "included": True},
        {"service": "seats", "included": None, "limit_behaviour": "notify"},
    ],
}


def test_create_offer_with_quota_on_off_and_unlimited_services(api):
    _catalog()
    response = api.post("/api/v1/offers", OFFICE, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["currency"] == "TRY"
    services = {s["service"]: s for s in body["services"]}
    assert services["prints"]["included"] == "10"
    assert services["prints"]["kind"] == "usage_based"
    assert services["prints"]["pricing"]["model"] == "package"
    assert services["support"]["included"] is True
    assert services["seats"]["included"] is None  # unlimited is a real value
    assert OfferService.objects.get(service__code="seats").is_unlimited
    listing = api.get("/api/v1/offers?currency=TRY").json()["results"]
    assert [o["code"] for o in listing] == ["shared-office"]
    assert api.get("/api/v1/offers/shared-office").json()["name"] == "Shared office"


@pytest.mark.parametrize(
    "change, status, code",
    [
        ({"timezone": "Mars/Olympus"}, 400, "validation_error"),
        ({"billing_interval": "fortnight"}, 400, "validation_error"),
        ({"fixed_fee": "-1"}, 400, "validation_error"),
        ({"currency": "dollars"}, 400, "validation_error"),
        ({"services": [{"service": "nope"}]}, 400, "unknown_service"),
        ({"services": [{"service": "prints"}, {"service": "prints"}]}, 400, "duplicate_service"),
        ({"services": [{"service": "prints", "included": True}]}, 400, "invalid_included"),
        ({"services": [{"service": "prints", "included": "-3"}]}, 400, "invalid_included"),
        ({"services": [{"service": "prints", "included": "ten"}]}, 400, "invalid_included"),
        ({"services": [{"service": "support", "included": "3"}]}, 400, "invalid_included"),
        (
            {
                "services": [
                    {"service": "prints", "pricing": {"model": "package", "package_size": "0"}}
                ]
            },
            400,
            "invalid_pricing",
        ),
        (
            {"services": [{"service": "prints", "pricing": {"model": "magic"}}]},
            400,
            "invalid_pricing",
        ),
        ({"services": [{"service": "prints", "pricing": "cheap"}]}, 400, "validation_error"),
        (
            {"services": [{"service": "prints", "limit_behaviour": "explode"}]},
            400,
            "validation_error",
        ),
        ({"services": "prints"}, 400, "validation_error"),
    ],
)
def test_bad_offer_input_is_refused_with_a_code_and_changes_nothing(api, change, status, code):
    _catalog()
    response = api.post("/api/v1/offers", {**OFFICE, **change}, format="json")
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert not Offer.objects.exists()
    assert not OfferService.objects.exists()


def test_an_offer_links_at_most_ten_meters_r_m5(api):
    group = ServiceGroup.objects.create(name="usage", kind="usage_based")
    for n in range(11):
        ServiceFactory(code=f"s{n}", group=group)
    services = [{"service": f"s{n}", "included": "1"} for n in range(11)]
    response = api.post("/api/v1/offers", {**OFFICE, "services": services}, format="json")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "too_many_meters"
    ok = api.post("/api/v1/offers", {**OFFICE, "services": services[:10]}, format="json")
    assert ok.status_code == 201


def test_several_services_may_share_one_meter_r_m5(api):
    meter = MeterFactory()
    group = ServiceGroup.objects.create(name="usage", kind="usage_based")
    for n in range(12):
        ServiceFactory(code=f"s{n}", group=group, meter=meter)
    services = [{"service": f"s{n}", "included": "1"} for n in range(12)]
    assert (
        api.post("/api/v1/offers", {**OFFICE, "services": services}, format="json").status_code
        == 201
    )


def test_patch_offer_replaces_services(api):
    _catalog()
    api.post("/api/v1/offers", OFFICE, format="json")
    response = api.patch(
        "/api/v1/offers/shared-office",
        {"name": "Office+", "services": [{"service": "prints", "included": "20"}]},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert [s["service"] for s in response.json()["services"]] == ["prints"]
    assert response.json()["services"][0]["included"] == "20"


def test_duplicate_offer_code_is_409(api):
    _catalog()
    api.post("/api/v1/offers", OFFICE, format="json")
    assert api.post("/api/v1/offers", OFFICE, format="json").status_code == 409
