"""The operator console, driven in Debian's Chromium (issue 2)."""

from decimal import Decimal

import pytest

from billing.models import Offer
from tests.quotas.factories import ServiceFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _login(page, live_server, username, password):
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")


def test_staff_creates_an_offer_with_a_quota_service(page, live_server, django_user_model):
    django_user_model.objects.create_superuser("ops", "ops@kota.test", "console-pass-1")
    ServiceFactory(code="prints", name="Printing", group__kind="usage_based")
    _login(page, live_server, "ops", "console-pass-1")

    page.goto(f"{live_server.url}/admin/billing/offer/add/")
    page.fill("input[name=code]", "office-ui")
    page.fill("input[name=name]", "Office from the console")
    page.fill("input[name=currency]", "TRY")
    page.fill("input[name=fixed_fee]", "1500")
    page.fill("input[name=timezone]", "Europe/Istanbul")
    page.get_by_text("Add another Offer service").click()
    prefix = "offer_services-0"
    page.select_option(f"select[name={prefix}-service]", label="Printing")
    page.fill(f"input[name={prefix}-included]", "10")
    page.select_option(f"select[name={prefix}-pricing_model]", "package")
    page.fill(f"input[name={prefix}-package_size]", "10")
    page.fill(f"input[name={prefix}-package_price]", "5")
    page.locator("button[name=_save], input[name=_save]").first.click()
    page.wait_for_url(f"{live_server.url}/admin/billing/offer/")

    offer = Offer.objects.get(code="office-ui")
    quota = offer.offer_services.get()
    assert quota.included == Decimal(10)
    assert quota.pricing == {"model": "package", "package_size": "10", "package_price": "5"}
    assert "Office from the console" in page.content()
