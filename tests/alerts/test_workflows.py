"""R-A2's three workflows, end to end: from ingested events to the email / the denied access."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core import mail

from alerts.models import AccessBlock, AlertTrigger, EmailDelivery, StaffGroup
from alerts.services import access_block_lift, usage_alert_create
from quotas.models import AddOn
from quotas.selectors import entitlement_check, subscription_usage
from quotas.services import addon_purchase
from tests.billing.factories import ClockFactory, CustomerFactory

from .conftest import ingest, quota_offer, subscribe

pytestmark = pytest.mark.django_db


def test_r_a2_email_the_user_when_they_reach_a_limit_they_set(
    meter, customer, django_capture_on_commit_callbacks
):
    usage_alert_create(
        title="My monthly budget",
        meter=meter,
        customer=customer,
        threshold=Decimal(50),
        recurrence="every_period",
        email_customer=True,
        customer_emails="me@acme.test\nfinance@acme.test",
    )
    with django_capture_on_commit_callbacks(execute=True):
        ingest(customer, 49)
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        ingest(customer, 1)
    (message,) = mail.outbox
    assert message.to == ["me@acme.test", "finance@acme.test"]
    assert message.subject == "Usage alert: My monthly budget"
    assert "Your usage of API calls has reached 50 calls" in message.body
    assert "limit of 50" in message.body and "for this billing period" in message.body


def test_r_a2_without_addresses_the_customer_email_goes_to_owners_and_admins(
    meter, customer, django_capture_on_commit_callbacks
):
    usage_alert_create(
        title="Heads up", meter=meter, customer=customer, threshold=Decimal(1), email_customer=True
    )
    with django_capture_on_commit_callbacks(execute=True):
        ingest(customer, 1)
    (message,) = mail.outbox
    assert sorted(message.to) == ["admin@acme.test", "owner@acme.test"]


def test_r_a2_remove_access_when_the_free_units_are_exceeded(
    meter, customer, django_capture_on_commit_callbacks
):
    # An overage quota would never deny access by itself: the alert's action does (R-A2).
    offer, offer_service = quota_offer(meter, included="100", limit_behaviour="overage")
    AddOn.objects.create(
        code="more-actions",
        name="More actions",
        service=offer_service.service,
        quantity=50,
        price=5,
    )
    clock = ClockFactory(now=datetime(2026, 3, 10, 9, 0, tzinfo=UTC))
    sub = subscribe(customer, offer, clock=clock)
    usage_alert_create(
        title="Free units used up",
        meter=meter,
        customer=customer,
        threshold=Decimal(100),
        recurrence="every_period",
        remove_access=True,
    )
    ingest(customer, 99)
    assert entitlement_check(customer_external_id="cus_ext_1", service_code="actions").has_access
    with django_capture_on_commit_callbacks(execute=True):
        ingest(customer, 1)

    entitlement = entitlement_check(customer_external_id="cus_ext_1", service_code="actions")
    assert not entitlement.has_access  # removed until the reset or more quota is bought
    usage = subscription_usage(subscription=sub).service("actions")
    assert not usage.has_access  # the customer page and usage API agree
    block = AccessBlock.objects.get()  # the audit log of the action
    assert (block.subscription, block.offer_service) == (sub, offer_service)
    assert block.blocked_at == clock.now
    assert block.until == entitlement.resets_at == datetime(2026, 4, 1, tzinfo=UTC)  # the reset

    addon_purchase(subscription=sub, addon_code="more-actions", quantity=1)  # more quota bought
    assert entitlement_check(customer_external_id="cus_ext_1", service_code="actions").has_access


def test_r_a2_removed_access_comes_back_at_the_reset_and_when_an_operator_lifts_it(
    meter, customer, django_capture_on_commit_callbacks
):
    offer, _ = quota_offer(meter, included="100", limit_behaviour="overage")
    clock = ClockFactory(now=datetime(2026, 3, 10, 9, 0, tzinfo=UTC))
    subscribe(customer, offer, clock=clock)
    usage_alert_create(
        title="Cut off",
        meter=meter,
        customer=customer,
        threshold=Decimal(100),
        recurrence="every_period",
        remove_access=True,
    )
    with django_capture_on_commit_callbacks(execute=True):
        ingest(customer, 100)
    check = {"customer_external_id": "cus_ext_1", "service_code": "actions"}
    assert not entitlement_check(**check).has_access
    access_block_lift(block=AccessBlock.objects.get(), at=clock.now)
    assert entitlement_check(**check).has_access

    with django_capture_on_commit_callbacks(execute=True):
        ingest(customer, 1)  # still past the threshold, but it fired once this period
    assert entitlement_check(**check).has_access
    clock.now = datetime(2026, 4, 1, tzinfo=UTC)  # the reset: a new window, a clean slate
    clock.save()
    assert entitlement_check(**check).has_access


def test_r_a2_tell_the_sales_team_of_an_upsell_when_a_self_service_user_crosses_a_threshold(
    meter, customer, django_capture_on_commit_callbacks
):
    sales = StaffGroup.objects.create(name="sales", members="ana@kota.test\nbo@kota.test")
    usage_alert_create(
        title="Upsell: heavy self-service user",
        meter=meter,
        customer=None,  # every customer
        threshold=Decimal(20),
        staff_group=sales,
    )
    quiet = CustomerFactory(name="Quiet Co")
    with django_capture_on_commit_callbacks(execute=True):
        ingest(quiet, 5)
        ingest(customer, 20)
    (message,) = mail.outbox
    assert message.to == ["ana@kota.test", "bo@kota.test"]
    assert message.subject == "[sales] Acme reached 20 calls: Upsell: heavy self-service user"
    assert "Customer Acme (cus_ext_1) has used 20 calls of API calls" in message.body
    assert f"/admin/billing/customer/{customer.pk}/change/" in message.body
    assert AlertTrigger.objects.get().customer == customer
    assert EmailDelivery.objects.get().kind == "staff_alert"


def test_a_customer_without_owners_or_admins_is_written_at_its_billing_email(
    meter, django_capture_on_commit_callbacks
):
    solo = CustomerFactory(external_id="solo", email="billing@solo.test")
    usage_alert_create(
        title="Heads up", meter=meter, customer=solo, threshold=Decimal(1), email_customer=True
    )
    with django_capture_on_commit_callbacks(execute=True):
        ingest(solo, 1)
    assert [m.to for m in mail.outbox] == [["billing@solo.test"]]
