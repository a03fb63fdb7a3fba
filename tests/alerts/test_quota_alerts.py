"""Quota alerts (R-L4): 90 % and 100 % emails to owners and admins, once per reset window."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail

from alerts.models import EmailDelivery, QuotaAlertFiring, QuotaAlertRule
from alerts.services import alerts_evaluate, quota_alert_rules_ensure_defaults
from billing import periods
from core.models import OutboxEvent
from tests.billing.factories import ClockFactory

from .conftest import ingest, quota_offer, subscribe

pytestmark = pytest.mark.django_db


def fired(offer_service):
    return sorted(
        QuotaAlertFiring.objects.filter(offer_service=offer_service).values_list(
            "percent", flat=True
        )
    )


def test_defaults_are_90_and_100_for_finite_quotas_only(meter):
    _, finite = quota_offer(meter, included="100")
    _, unlimited = quota_offer(meter, included="1", service_code="seats")
    unlimited.included = None
    unlimited.save()
    assert quota_alert_rules_ensure_defaults() == 2
    assert quota_alert_rules_ensure_defaults() == 0  # idempotent
    assert sorted(finite.quota_alert_rules.values_list("percent", flat=True)) == [90, 100]
    assert not unlimited.quota_alert_rules.exists()


def test_r_l4_a_jump_from_80_to_120_percent_fires_90_and_100_once_each(
    meter, customer, django_capture_on_commit_callbacks
):
    offer, offer_service = quota_offer(meter, included="100")
    subscribe(customer, offer)
    with django_capture_on_commit_callbacks(execute=True):
        ingest(customer, 80)
    assert fired(offer_service) == []
    with django_capture_on_commit_callbacks(execute=True):
        ingest(customer, 40)
    assert fired(offer_service) == [90, 100]
    with django_capture_on_commit_callbacks(execute=True):
        ingest(customer, 10)
    assert fired(offer_service) == [90, 100]  # once per window
    assert alerts_evaluate()["quota_firings"] == 0
    assert sorted(OutboxEvent.objects.values_list("type", flat=True)) == [
        "quota.exhausted",
        "quota.threshold_reached",
    ]
    assert len(mail.outbox) == 2
    for message in mail.outbox:
        assert sorted(message.to) == ["admin@acme.test", "owner@acme.test"]  # not the member


def test_r_l4_the_email_says_what_was_used_the_limit_the_reset_and_how_to_get_more(
    meter, customer, django_capture_on_commit_callbacks, settings
):
    settings.KOTA_SITE_URL = "https://kota.example.com"
    pacific = "America/Los_Angeles"  # R-L3: resets on the 1st in Pacific time
    offer, _ = quota_offer(meter, included="100", timezone=pacific)
    sub = subscribe(customer, offer)
    with django_capture_on_commit_callbacks(execute=True):
        ingest(customer, 90)
    (message,) = mail.outbox
    assert message.subject == "You have used 90 % of your Actions quota (Business)"
    resets = periods.reset_window(datetime.now(UTC), "month", pacific)[1]
    local = resets.astimezone(ZoneInfo(pacific))
    assert local.day == 1 and local.hour == 0
    when = f"{local.day} {local:%B %Y}, 00:00 ({pacific})"
    text = message.body
    assert "used 90 calls of Actions out of 100 included (90 %)" in text
    assert "10 remain." in text
    assert f"The quota resets on {when}." in text
    assert f"https://kota.example.com/my/subscriptions/{sub.pk}/" in text
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert f'href="https://kota.example.com/my/subscriptions/{sub.pk}/"' in html
    assert "<strong>100</strong> included" in html
    delivery = EmailDelivery.objects.get()
    assert (delivery.kind, delivery.status, delivery.attempts) == ("quota_alert", "succeeded", 1)


def test_r_l4_the_100_percent_email_of_a_blocking_quota_says_access_is_suspended(
    meter, customer, django_capture_on_commit_callbacks
):
    offer, _ = quota_offer(meter, included="10", limit_behaviour="block")
    subscribe(customer, offer)
    with django_capture_on_commit_callbacks(execute=True):
        ingest(customer, 10)
    exhausted = next(m for m in mail.outbox if "all of your" in m.subject)
    assert "Access to Actions is suspended until the quota resets" in exhausted.body


def test_r_l4_fires_again_in_the_next_reset_window(meter, customer):
    clock = ClockFactory(now=datetime(2026, 1, 1, tzinfo=UTC))
    offer, offer_service = quota_offer(meter, included="10", reset_interval="day")
    subscribe(customer, offer, clock=clock)
    ingest(customer, 9)
    assert fired(offer_service) == [90]
    clock.now += timedelta(days=1)
    clock.save()
    ingest(customer, 10)
    firings = QuotaAlertFiring.objects.filter(offer_service=offer_service).order_by("id")
    assert [(f.percent, f.window_start.day) for f in firings] == [(90, 1), (90, 2), (100, 2)]


def test_operator_rules_replace_the_defaults_and_inactive_rules_are_silent(meter, customer):
    offer, offer_service = quota_offer(meter, included="100")
    QuotaAlertRule.objects.create(offer_service=offer_service, percent=50)
    QuotaAlertRule.objects.create(offer_service=offer_service, percent=90, is_active=False)
    subscribe(customer, offer)
    ingest(customer, 95)
    assert fired(offer_service) == [50]


def test_add_ons_raise_the_limit_the_percentages_apply_to(meter, customer):
    from quotas.models import AddOn
    from quotas.services import addon_purchase

    offer, offer_service = quota_offer(meter, included="100")
    AddOn.objects.create(
        code="more-actions",
        name="More actions",
        service=offer_service.service,
        quantity=100,
        price=10,
    )
    sub = subscribe(customer, offer)
    addon_purchase(subscription=sub, addon_code="more-actions", quantity=1)
    ingest(customer, 150)
    assert fired(offer_service) == []  # 150 of 200 = 75 %
    ingest(customer, 30)
    assert fired(offer_service) == [90]
    assert QuotaAlertFiring.objects.get().limit == 200
