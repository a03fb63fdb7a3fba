"""The console for invoices, credit and discounts: thin, and every write goes through a service."""

from decimal import Decimal

import pytest

from billing import selectors
from billing.invoicing import customer_credit_grant
from billing.models import CustomerCredit, Discount, Invoice
from tests.billing.factories import CustomerFactory
from tests.billing.invoice_helpers import issue, line, subscription

pytestmark = pytest.mark.django_db
D = Decimal
INVOICES = "/admin/billing/invoice/"


def test_invoice_list_search_filter_and_read_only_detail(admin_client):
    sub = subscription(customer=CustomerFactory(external_id="acme", name="Acme"))
    invoice = issue(sub, line("12.5", description="Printing plan"), key="a")
    other = issue(subscription(), key="b")

    page = admin_client.get(INVOICES).content.decode()
    assert "KOTA-000001" in page and "KOTA-000002" in page and "12.50 USD" in page
    found = admin_client.get(INVOICES, {"q": "acme"}).content.decode()
    assert "KOTA-000001" in found and "KOTA-000002" not in found
    assert "KOTA-000002" in admin_client.get(INVOICES, {"q": "KOTA-000002"}).content.decode()
    assert "KOTA-000001" not in admin_client.get(INVOICES, {"status": "paid"}).content.decode()

    detail = admin_client.get(f"{INVOICES}{invoice.pk}/change/")
    assert detail.status_code == 200
    assert "Printing plan" in detail.content.decode()
    assert admin_client.get(f"{INVOICES}add/").status_code == 403
    assert admin_client.post(f"{INVOICES}{other.pk}/delete/").status_code == 403


def test_mark_paid_and_void_actions_use_the_state_machine(admin_client):
    sub = subscription()
    customer_credit_grant(customer=sub.customer, amount=D(2), currency="USD", description="x")
    with_credit = issue(sub, line("10"), key="a")
    plain = issue(sub, line("10"), key="b")

    response = admin_client.post(
        INVOICES, {"action": "mark_paid", "_selected_action": [plain.pk]}, follow=True
    )
    assert "1 invoice(s) marked paid." in response.content.decode()
    plain.refresh_from_db()
    assert plain.status == "paid"

    response = admin_client.post(
        INVOICES, {"action": "void", "_selected_action": [plain.pk, with_credit.pk]}, follow=True
    )
    page = response.content.decode()
    assert "1 invoice(s) voided." in page
    assert "Refused: KOTA-000002: A paid invoice cannot be voided." in page
    assert Invoice.objects.get(pk=with_credit.pk).status == "void"
    assert Invoice.objects.get(pk=plain.pk).status == "paid"
    assert selectors.customer_credit_balance(customer=sub.customer, currency="USD") == D(2)


def test_credit_is_granted_through_the_service_and_never_edited(admin_client):
    customer = CustomerFactory()
    url = "/admin/billing/customercredit/"
    response = admin_client.post(
        f"{url}add/",
        {"customer": customer.pk, "amount": "10.005", "currency": "USD", "description": "Sorry"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    entry = CustomerCredit.objects.get()
    assert (entry.amount, entry.invoice) == (D("10.01"), None)

    refused = admin_client.post(
        f"{url}add/",
        {"customer": customer.pk, "amount": "0.001", "currency": "USD", "description": "Tiny"},
    )
    assert refused.status_code == 200
    assert "at least one minor unit" in refused.content.decode()
    assert CustomerCredit.objects.count() == 1

    assert "+10.01" in admin_client.get(url).content.decode()
    admin_client.post(
        f"{url}{entry.pk}/change/",
        {"customer": customer.pk, "amount": "999", "currency": "USD", "description": "x"},
    )
    entry.refresh_from_db()
    assert entry.amount == D("10.01")
    assert admin_client.post(f"{url}{entry.pk}/delete/").status_code == 403


def test_discount_form_refuses_percent_and_amount_together(admin_client):
    customer = CustomerFactory()
    url = "/admin/billing/discount/"
    refused = admin_client.post(
        f"{url}add/",
        {
            "name": "Both",
            "customer": customer.pk,
            "percent": "10",
            "amount_off": "5",
            "currency": "USD",
        },
    )
    assert refused.status_code == 200
    assert "Give a percent or an amount off (one of them)." in refused.content.decode()
    created = admin_client.post(
        f"{url}add/",
        {"name": "Ten", "customer": customer.pk, "percent": "10", "max_redemptions": "3"},
    )
    assert created.status_code == 302
    discount = Discount.objects.get()
    issue(subscription(customer=customer), line("10"), key="a")
    assert "1 / 3" in admin_client.get(url).content.decode()
    assert discount.redemptions.count() == 1
