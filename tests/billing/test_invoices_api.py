"""`/api/v1/invoices` (API.md "Invoices"): fields, filters, actions, errors."""

from decimal import Decimal

import pytest

from billing import selectors
from billing.invoice_math import InvoiceLineDraft
from billing.invoicing import customer_credit_grant
from tests.billing.factories import CustomerFactory
from tests.billing.invoice_helpers import issue, line, subscription

pytestmark = pytest.mark.django_db
D = Decimal

API_FIELDS = {
    "id",
    "number",
    "customer",
    "subscription",
    "status",
    "reason",
    "period_start",
    "period_end",
    "currency",
    "subtotal",
    "discount",
    "credit",
    "tax",
    "total",
    "lines",
}
LINE_FIELDS = {"description", "service", "quantity", "unit_price", "amount"}


def test_retrieve_has_the_contract_fields_with_amounts_in_minor_units(api):
    sub = subscription(customer=CustomerFactory(external_id="cus_ext_1"), tax_rate=D(20))
    usage = InvoiceLineDraft(
        description="Prints",
        kind="usage",
        service="prints",
        quantity=D(15),
        unit_price=D("0.333333"),
        pricing_model="per_unit",
    )
    invoice = issue(sub, line("5"), usage, key="a")
    body = api.get(f"/api/v1/invoices/{invoice.pk}").json()
    assert body.keys() >= API_FIELDS
    assert {k: body[k] for k in API_FIELDS - {"lines", "period_start", "period_end"}} == {
        "id": invoice.pk,
        "number": "KOTA-000001",
        "customer": "cus_ext_1",
        "subscription": sub.pk,
        "status": "open",
        "reason": "period_end",
        "currency": "USD",
        "subtotal": "10.00",
        "discount": "0.00",
        "credit": "0.00",
        "tax": "2.00",
        "total": "12.00",
    }
    assert body["period_start"] == "2026-01-01T00:00:00Z"
    assert body["period_end"] == "2026-02-01T00:00:00Z"
    assert body["tax_rate"] == "20"
    assert body["issued_at"] == "2026-02-01T00:00:00Z"
    fee, prints = body["lines"]
    assert fee.keys() >= LINE_FIELDS
    assert {k: fee[k] for k in LINE_FIELDS} == {
        "description": "Plan",
        "service": "",
        "quantity": "1",
        "unit_price": "5",
        "amount": "5.00",
    }
    assert {k: prints[k] for k in LINE_FIELDS} == {
        "description": "Prints",
        "service": "prints",
        "quantity": "15",
        "unit_price": "0.333333",  # full precision
        "amount": "5.00",  # 4.999995 rounded once
    }


def test_jpy_amounts_have_no_decimals(api):
    sub = subscription(currency="JPY")
    invoice = issue(sub, line("500"), key="a")
    body = api.get(f"/api/v1/invoices/{invoice.pk}").json()
    assert (body["total"], body["lines"][0]["amount"]) == ("500", "500")


def test_list_is_newest_first_paginated_and_filters(api, django_assert_max_num_queries):
    alice = CustomerFactory(external_id="alice")
    a1 = subscription(customer=alice)
    a2 = subscription(customer=alice)
    b = subscription(customer=CustomerFactory(external_id="bob"))
    first = issue(a1, key="1")
    threshold = issue(a1, key="2", reason="threshold")
    draft = issue(a2, key="3", finalize=False)
    bobs = issue(b, key="4")

    with django_assert_max_num_queries(5):
        listing = api.get("/api/v1/invoices").json()
    assert [i["id"] for i in listing["results"]] == [bobs.pk, draft.pk, threshold.pk, first.pk]
    assert "next" in listing

    def ids(query):
        response = api.get(f"/api/v1/invoices?{query}")
        assert response.status_code == 200, response.content
        return {i["id"] for i in response.json()["results"]}

    assert ids("customer=alice") == {first.pk, threshold.pk, draft.pk}
    assert ids(f"subscription={a1.pk}") == {first.pk, threshold.pk}
    assert ids("status=draft") == {draft.pk}
    assert ids("reason=threshold") == {threshold.pk}
    assert ids("customer=alice&status=open&reason=period_end") == {first.pk}
    assert ids("customer=nobody") == set()
    assert ids("subscription=99999") == set()


@pytest.mark.parametrize(
    "query",
    [
        "status=late",
        "reason=boredom",
        "subscription=abc",
        "subscription=1.5",
        "subscription=-1",
        "subscription=0",
        "subscription=99999999999999999999999999",
        "customer=%00",
        "customer=" + "x" * 300,
    ],
)
def test_bad_filter_values_are_400_never_500(api, query):
    response = api.get(f"/api/v1/invoices?{query}")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("path", ["", "/pay", "/void"])
@pytest.mark.parametrize("invoice_id", ["424242", "99999999999999999999999999"])
def test_unknown_invoice_is_404_with_code(api, path, invoice_id):
    method = api.get if not path else api.post
    response = method(f"/api/v1/invoices/{invoice_id}{path}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_invoice"


def test_pay_and_void_actions(api):
    sub = subscription()
    customer_credit_grant(customer=sub.customer, amount=D(4), currency="USD", description="x")
    to_pay = issue(sub, line("10"), key="a")
    assert to_pay.credit == D(4)
    response = api.post(f"/api/v1/invoices/{to_pay.pk}/pay")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["total"]) == ("paid", "6.00")
    assert api.post(f"/api/v1/invoices/{to_pay.pk}/pay").status_code == 200  # harmless again

    refused = api.post(f"/api/v1/invoices/{to_pay.pk}/void")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "invalid_invoice_transition"
    assert error["details"]["status"] == "paid"

    customer_credit_grant(customer=sub.customer, amount=D(3), currency="USD", description="y")
    to_void = issue(sub, line("10"), key="b")
    voided = api.post(f"/api/v1/invoices/{to_void.pk}/void")
    assert voided.status_code == 200
    assert voided.json()["status"] == "void"
    assert voided.json()["voided_at"] == "2026-01-01T00:00:00Z"  # the subscription's clock
    assert selectors.customer_credit_balance(customer=sub.customer, currency="USD") == D(3)
    assert api.post(f"/api/v1/invoices/{to_void.pk}/pay").status_code == 409


def test_invoices_are_the_operators(anon_api, client, django_user_model):
    invoice = issue(subscription(), key="a")
    assert anon_api.get("/api/v1/invoices").status_code == 401
    user = django_user_model.objects.create_user("customer", password="pw-123456789")
    client.force_login(user)
    assert client.get(f"/api/v1/invoices/{invoice.pk}").status_code == 403
    assert client.post(f"/api/v1/invoices/{invoice.pk}/void").status_code == 403
