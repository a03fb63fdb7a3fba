"""Customer invoice pages: a contact sees their own customer's invoices, nobody else's."""

from decimal import Decimal

import pytest

from billing.invoicing import invoice_void
from tests.billing.factories import ContactFactory, CustomerFactory
from tests.billing.invoice_helpers import FEB, issue, line, subscription

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def alice(django_user_model):
    """A user who is a contact of customer "acme"."""
    user = django_user_model.objects.create_user("alice@acme.test", password="pw-123456789")
    ContactFactory(customer=CustomerFactory(external_id="acme", name="Acme"), user=user)
    return user


def test_pages_need_a_login(client):
    response = client.get("/my/invoices/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/my/invoices/"
    assert client.get("/my/invoices/1/").status_code == 302


def test_a_contact_lists_their_customers_finalized_invoices_only(
    client, alice, django_assert_max_num_queries
):
    acme = subscription(customer=alice.customer_contacts.get().customer)
    mine = issue(acme, line("12"), key="a")
    voided = issue(acme, line("3"), key="b")
    invoice_void(invoice=voided, at=FEB)
    draft = issue(acme, key="c", finalize=False)
    voided_draft = issue(acme, key="d", finalize=False)
    invoice_void(invoice=voided_draft, at=FEB)
    theirs = issue(subscription(), line("99"), key="e")

    client.force_login(alice)
    with django_assert_max_num_queries(6):
        page = client.get("/my/invoices/").content.decode()
    assert mine.number in page and "12.00 USD" in page
    assert voided.number in page and "Void" in page
    assert theirs.number not in page and "99.00" not in page
    assert f"/my/invoices/{draft.pk}/" not in page
    assert f"/my/invoices/{voided_draft.pk}/" not in page


def test_the_printable_invoice(client, alice):
    acme = subscription(customer=alice.customer_contacts.get().customer, tax_rate=D(20))
    invoice = issue(acme, line("10", description="Office plan"), key="a")
    client.force_login(alice)
    response = client.get(f"/my/invoices/{invoice.pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    for text in ("Invoice KOTA-000001", "Office plan", "Acme", "Tax (20 %)", "12.00 USD", "OPEN"):
        assert text in page
    assert "window.print()" in page


def test_another_customers_invoice_a_draft_or_a_missing_one_is_404(client, alice):
    acme = subscription(customer=alice.customer_contacts.get().customer)
    draft = issue(acme, key="draft", finalize=False)
    theirs = issue(subscription(), key="theirs")
    client.force_login(alice)
    for invoice_id in (theirs.pk, draft.pk, 424242, 99999999999999999999999):
        assert client.get(f"/my/invoices/{invoice_id}/").status_code == 404


def test_a_user_who_is_no_contact_sees_nothing(client, django_user_model):
    invoice = issue(subscription(), key="a")
    staff = django_user_model.objects.create_user("ops", password="pw-123456789", is_staff=True)
    client.force_login(staff)
    assert "No invoices yet." in client.get("/my/invoices/").content.decode()
    assert client.get(f"/my/invoices/{invoice.pk}/").status_code == 404


def test_yen_invoice_shows_whole_yen(client, alice):
    acme = subscription(customer=alice.customer_contacts.get().customer, currency="JPY")
    invoice = issue(acme, line("1500"), key="a")
    client.force_login(alice)
    assert "1,500 JPY" in client.get(f"/my/invoices/{invoice.pk}/").content.decode()
