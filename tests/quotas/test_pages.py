"""The customer subscription pages (R-Q3, R-L5, R-L6, R-L7) and the front door."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client

from billing.models import PendingCharge
from quotas.models import AddOn, AddOnPurchase
from quotas.services import subscription_start
from tests.billing.factories import ClockFactory, ContactFactory, CustomerFactory, OfferFactory
from tests.metering.factories import MeterFactory
from tests.quotas.factories import OfferServiceFactory, ServiceFactory
from tests.quotas.fixtures import NOV_1_ISTANBUL

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(client, office_subscription):
    client.login(username="sahip@ofis.test", password="pw-ofis-123")
    return client


def test_front_door_sends_staff_to_the_console_and_others_to_their_page(client, staff_user, tenant):
    assert client.get("/").url == "/my/"
    assert client.get("/my/").url.startswith("/accounts/login/?next=/my/")
    client.login(username="sahip@ofis.test", password="pw-ofis-123")
    assert client.get("/").url == "/my/"
    client.force_login(staff_user)
    assert client.get("/").url == "/admin/"


def test_login_lands_on_my_subscriptions(client, tenant):
    response = client.post(
        "/accounts/login/", {"username": "sahip@ofis.test", "password": "pw-ofis-123"}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/my/"


def test_my_page_lists_only_my_customers_subscriptions(owner, office_subscription, office):
    stranger = subscription_start(customer=CustomerFactory(), offer=office, start=NOV_1_ISTANBUL)
    html = owner.get("/my/").content.decode()
    assert f'data-subscription="{office_subscription.id}"' in html
    assert f'data-subscription="{stranger.id}"' not in html
    assert "Shared office" in html


def test_r_q3_detail_shows_included_used_remaining_overage_and_next_reset(
    owner, office_subscription, tenant, send
):
    send(tenant, "print", *[NOV_1_ISTANBUL + timedelta(hours=i) for i in range(15)])
    html = owner.get(f"/my/subscriptions/{office_subscription.id}/").content.decode()
    assert 'data-field="included">10<' in html
    assert '<strong data-field="used">15</strong> prints used / ' in html
    assert 'data-field="remaining">0<' in html
    assert 'data-field="overage">5.00 TRY' in html
    # The next reset in the offer's zone (Istanbul, UTC+3): Dec 1 00:00.
    assert 'data-field="resets-at">Dec 1, 2026, 00:00 +03' in html
    assert 'aria-valuenow="100"' in html
    assert 'data-field="amount-due">1,505.00 TRY' in html
    assert "24/7 support" in html and "included" in html


def test_another_customers_subscription_is_404(owner, office):
    other = subscription_start(customer=CustomerFactory(), offer=office, start=NOV_1_ISTANBUL)
    assert owner.get(f"/my/subscriptions/{other.id}/").status_code == 404
    assert owner.get("/my/subscriptions/999999/").status_code == 404


def test_a_customer_user_cannot_use_the_operator_api(owner, office_subscription):
    response = owner.get(f"/api/v1/subscriptions/{office_subscription.id}/usage")
    assert response.status_code == 403


def test_staff_can_read_any_subscription_page_but_not_buy(
    client, staff_user, office_subscription, addon
):
    client.force_login(staff_user)
    html = client.get(f"/my/subscriptions/{office_subscription.id}/").content.decode()
    assert 'data-addon="more-prints"' in html
    assert "/addons/more-prints/" not in html
    assert "Owners and admins of Ofis Ltd can buy add-ons." in html
    buy = f"/my/subscriptions/{office_subscription.id}/addons/more-prints/"
    assert client.post(buy, {"quantity": 1}).status_code == 404


@pytest.fixture
def addon(office):
    office.level = 2
    office.save()
    return AddOn.objects.create(
        code="more-prints",
        name="More prints",
        service=office.offer_services.get(service__code="prints").service,
        quantity=Decimal(100),
        price=Decimal("300.00"),
        min_level=1,
    )


def test_buying_an_add_on_confirms_the_prorated_price_first_r_l6(owner, office_subscription, addon):
    detail = owner.get(f"/my/subscriptions/{office_subscription.id}/").content.decode()
    buy_url = f"/my/subscriptions/{office_subscription.id}/addons/more-prints/"
    assert f'href="{buy_url}"' in detail
    confirm = owner.get(buy_url + "?quantity=2").content.decode()
    # Nov 21 12:00 UTC is 15:00 in Istanbul: 9 days 9 hours of November's 30 days are left.
    left = Decimal(9 * 24 + 9) / Decimal(30 * 24)
    expected = (Decimal(600) * left).quantize(Decimal("0.01"))
    assert f'data-field="quote">{expected} TRY' in confirm
    assert AddOnPurchase.objects.count() == 0  # the GET only quotes

    response = owner.post(buy_url, {"quantity": 2}, follow=True)
    assert response.redirect_chain[-1][0] == f"/my/subscriptions/{office_subscription.id}/"
    html = response.content.decode()
    assert f"{expected} TRY will be on your next invoice" in html
    assert 'data-field="included">210 <span class="muted">(incl. 200 from add-ons)' in html
    assert PendingCharge.objects.get().amount == expected


def test_the_add_on_form_needs_its_csrf_token(office_subscription, addon):
    strict = Client(enforce_csrf_checks=True)
    strict.login(username="sahip@ofis.test", password="pw-ofis-123")
    url = f"/my/subscriptions/{office_subscription.id}/addons/more-prints/"
    assert strict.post(url, {"quantity": 1}).status_code == 403
    page = strict.get(url)
    token = page.cookies["csrftoken"].value
    ok = strict.post(url, {"quantity": 1, "csrfmiddlewaretoken": token})
    assert ok.status_code == 302
    assert AddOnPurchase.objects.count() == 1


def test_members_and_lower_plans_cannot_buy(
    client, office_subscription, addon, django_user_model, office
):
    user = django_user_model.objects.create_user("dev@ofis.test", password="pw-dev-12345")
    ContactFactory(
        customer=office_subscription.customer, email="dev@ofis.test", role="member", user=user
    )
    client.force_login(user)
    url = f"/my/subscriptions/{office_subscription.id}/addons/more-prints/"
    assert client.get(url).status_code == 404
    assert client.post(url, {"quantity": 1}).status_code == 404
    detail = client.get(f"/my/subscriptions/{office_subscription.id}/").content.decode()
    assert "Owners and admins of Ofis Ltd can buy add-ons." in detail

    addon.min_level = 3  # above the office's level 2 (R-L5)
    addon.save()
    client.login(username="sahip@ofis.test", password="pw-ofis-123")
    assert client.get(url).status_code == 404
    assert (
        "More prints"
        not in client.get(f"/my/subscriptions/{office_subscription.id}/").content.decode()
    )


def test_a_bad_quantity_is_shown_not_bought(owner, office_subscription, addon):
    url = f"/my/subscriptions/{office_subscription.id}/addons/more-prints/"
    response = owner.post(url, {"quantity": "-3"})
    assert response.status_code == 200
    assert AddOnPurchase.objects.count() == 0
    assert owner.get(url + "?quantity=abc").status_code == 200


def test_blocked_quota_says_so(client, send, django_user_model):
    meter = MeterFactory(event_name="action_run", unit="actions")
    actions = ServiceFactory(
        code="monthly-actions", name="Monthly actions", group__kind="usage_based", meter=meter
    )
    offer = OfferFactory(timezone="America/Los_Angeles")
    OfferServiceFactory(
        offer=offer, service=actions, included=2, reset_interval="month", limit_behaviour="block"
    )
    customer = CustomerFactory()
    user = django_user_model.objects.create_user("a@b.test", password="pw-ab-123456")
    ContactFactory(customer=customer, email="a@b.test", user=user)
    start = datetime(2026, 11, 1, 7, tzinfo=UTC)
    clock = ClockFactory(now=datetime(2026, 11, 20, tzinfo=UTC))
    subscription = subscription_start(customer=customer, offer=offer, start=start, clock=clock)
    send(customer, "action_run", start + timedelta(days=1), start + timedelta(days=2))
    client.force_login(user)
    html = client.get(f"/my/subscriptions/{subscription.id}/").content.decode()
    assert "available this month" in html
    assert 'data-field="blocked">Limit reached: suspended until Dec 1, 00:00 PST' in html
