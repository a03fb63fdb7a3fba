"""A month passes in seconds: the clock's Advance page in Debian's Chromium (issue 5, R-A5)."""

from datetime import timedelta

import pytest

from billing.models import Invoice
from tests.browser.test_console import _login
from tests.quotas.fixtures import clock, office, office_subscription, tenant  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_operator_advances_the_clock_and_sees_the_invoice(
    page,
    live_server,
    django_user_model,
    office_subscription,  # noqa: F811
):
    django_user_model.objects.create_superuser("ops", "ops@kota.test", "console-pass-1")
    _login(page, live_server, "ops", "console-pass-1")
    clock_ = office_subscription.clock
    before = clock_.now

    page.goto(f"{live_server.url}/admin/billing/clock/{clock_.pk}/change/")
    page.get_by_role("link", name="Advance").first.click()
    page.wait_for_url(f"**/admin/billing/clock/{clock_.pk}/advance/")
    page.get_by_role("button", name="+ 31 days").click()
    page.wait_for_selector("table[data-field=ran]")

    invoice = Invoice.objects.get(subscription=office_subscription)
    ran = page.inner_text("table[data-field=ran]")
    assert f"invoice {invoice.number}" in ran and "quota reset" in ran
    clock_.refresh_from_db()
    assert clock_.now == before + timedelta(days=31)
    assert clock_.now.strftime("%Y-%m-%d %H:%M") in page.inner_text("[data-field=clock-now]")
