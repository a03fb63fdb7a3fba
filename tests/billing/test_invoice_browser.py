"""A customer logs in and reads their printable invoice, in Debian's Chromium."""

from decimal import Decimal

import pytest

from tests.billing.factories import ContactFactory, CustomerFactory
from tests.billing.invoice_helpers import issue, line, subscription

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_customer_logs_in_and_sees_only_their_printable_invoice(
    page, live_server, django_user_model
):
    user = django_user_model.objects.create_user("boss@acme.test", password="invoice-pass-1")
    acme = CustomerFactory(external_id="acme", name="Acme Ltd")
    ContactFactory(customer=acme, email="boss@acme.test", user=user)
    sub = subscription(customer=acme, tax_rate=Decimal(20))
    invoice = issue(sub, line("40", description="Office plan"), line("2.5"), key="acme-jan")
    other = issue(subscription(), line("75"), key="other-jan")

    page.goto(f"{live_server.url}/my/invoices/")
    page.wait_for_url("**/accounts/login/?next=/my/invoices/")
    page.fill("input[name=username]", "boss@acme.test")
    page.fill("input[name=password]", "invoice-pass-1")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/my/invoices/")

    page.click(f"text={invoice.number}")
    page.wait_for_url(f"{live_server.url}/my/invoices/{invoice.pk}/")
    assert page.inner_text("#invoice-total") == "51.00 USD"  # (40 + 2.50) + 20 % tax
    assert "Office plan" in page.inner_text("table")
    assert page.locator("button", has_text="Print").is_visible()
    page.emulate_media(media="print")
    assert not page.locator("button", has_text="Print").is_visible()  # no chrome on paper
    assert not page.locator(".topbar").is_visible()

    response = page.goto(f"{live_server.url}/my/invoices/{other.pk}/")
    assert response.status == 404
    assert "75.00" not in page.content()
