import pytest

from billing.models import Customer

pytestmark = pytest.mark.django_db


def test_create_customer_with_contacts(api):
    response = api.post(
        "/api/v1/customers",
        {
            "external_id": "cus_ext_1",
            "name": "Acme",
            "email": "billing@acme.test",
            "contacts": [
                {"email": "boss@acme.test", "role": "owner"},
                {"email": "ops@acme.test", "role": "admin"},
                {"email": "dev@acme.test"},
            ],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["external_id"] == "cus_ext_1"
    assert {(c["email"], c["role"]) for c in body["contacts"]} == {
        ("boss@acme.test", "owner"),
        ("ops@acme.test", "admin"),
        ("dev@acme.test", "member"),
    }


def test_duplicate_external_id_is_409(api):
    Customer.objects.create(external_id="dup", name="A")
    response = api.post("/api/v1/customers", {"external_id": "dup", "name": "B"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "customer_exists"
    assert Customer.objects.count() == 1


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"name": "No id"}, "external_id"),
        ({"external_id": "x", "name": "A", "email": "not-an-email"}, "email"),
        (
            {"external_id": "x", "name": "A", "contacts": [{"email": "a@b.test", "role": "boss"}]},
            "contacts",
        ),
        ({"external_id": "x", "name": "A", "tax_rate": "-1"}, "tax_rate"),
        ({"external_id": "x", "name": "A", "contacts": "nope"}, "contacts"),
        (
            {
                "external_id": "x",
                "name": "A",
                "contacts": [{"email": "a@b.test"}, {"email": "A@b.test"}],
            },
            "contacts",
        ),
    ],
)
def test_bad_customer_input_is_400_and_changes_nothing(api, payload, field):
    response = api.post("/api/v1/customers", payload, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]
    assert not Customer.objects.exists()


def test_list_filter_retrieve_and_patch(api):
    for n in range(3):
        Customer.objects.create(external_id=f"c{n}", name=f"Name {n}", email=f"c{n}@x.test")
    listing = api.get("/api/v1/customers?search=Name 1").json()
    assert [c["external_id"] for c in listing["results"]] == ["c1"]
    assert "next" in listing
    assert api.get("/api/v1/customers/c2").json()["name"] == "Name 2"
    patched = api.patch("/api/v1/customers/c2", {"name": "Renamed"}, format="json")
    assert patched.status_code == 200
    assert Customer.objects.get(external_id="c2").name == "Renamed"


def test_unknown_customer_is_404_with_code(api):
    response = api.get("/api/v1/customers/missing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_customer"
