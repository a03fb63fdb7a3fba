"""The console (admin) pages of alerts and `manage.py setup_schedules`."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from alerts.models import (
    AlertTrigger,
    DeliveryStatus,
    EmailDelivery,
    QuotaAlertRule,
    StaffGroup,
    UsageAlert,
    WebhookDelivery,
    WebhookEndpoint,
)
from alerts.services import outbox_dispatch, usage_alert_create
from core.outbox import outbox_publish

from .conftest import ingest, quota_offer

pytestmark = pytest.mark.django_db


def test_setup_schedules_is_idempotent_and_disables_what_left_the_setting(settings):
    call_command("setup_schedules", stdout=StringIO())
    call_command("setup_schedules", stdout=StringIO())
    tasks = {t.name: t for t in PeriodicTask.objects.all()}
    assert set(settings.KOTA_BEAT_SCHEDULE) <= set(tasks)
    evaluate = tasks["kota: alerts evaluate"]
    assert evaluate.task == "alerts.evaluate" and evaluate.enabled
    assert evaluate.interval.every == 60
    assert PeriodicTask.objects.filter(name="kota: alerts evaluate").count() == 1

    settings.KOTA_BEAT_SCHEDULE = {
        "kota: outbox dispatch": {"task": "alerts.outbox_dispatch", "crontab": {"minute": "*/5"}}
    }
    call_command("setup_schedules", stdout=StringIO())
    dispatch = PeriodicTask.objects.get(name="kota: outbox dispatch")
    assert dispatch.crontab.minute == "*/5" and dispatch.interval is None
    assert not PeriodicTask.objects.get(name="kota: alerts evaluate").enabled


@pytest.fixture
def console(client, staff_user):
    client.force_login(staff_user)
    return client


def test_every_alerts_console_page_renders(console, meter, customer):
    offer, _ = quota_offer(meter)
    StaffGroup.objects.create(name="sales", members="ana@kota.test")
    alert = usage_alert_create(title="t", meter=meter, customer=customer, threshold=Decimal(1))
    ingest(customer, 1)
    endpoint = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/x")
    outbox_publish(type="alert.triggered", payload={})
    outbox_dispatch()
    QuotaAlertRule.objects.create(offer_service=offer.offer_services.get(), percent=90)
    pages = [
        "/admin/alerts/",
        "/admin/alerts/usagealert/",
        "/admin/alerts/usagealert/add/",
        f"/admin/alerts/usagealert/{alert.pk}/change/",
        "/admin/alerts/alerttrigger/",
        f"/admin/alerts/alerttrigger/{AlertTrigger.objects.get().pk}/change/",
        "/admin/alerts/quotaalertrule/",
        "/admin/alerts/quotaalertfiring/",
        "/admin/alerts/staffgroup/",
        "/admin/alerts/webhookendpoint/",
        "/admin/alerts/webhookendpoint/add/",
        f"/admin/alerts/webhookendpoint/{endpoint.pk}/change/",
        "/admin/alerts/webhookdelivery/",
        f"/admin/alerts/webhookdelivery/{WebhookDelivery.objects.first().pk}/change/",
        "/admin/alerts/emaildelivery/",
        "/admin/alerts/accessblock/",
    ]
    for url in pages:
        assert console.get(url).status_code == 200, url
    # The endpoint's page shows its signing secret.
    assert (
        endpoint.secret in console.get(f"/admin/alerts/webhookendpoint/{endpoint.pk}/change/").text
    )


def test_console_creates_alerts_through_the_service_with_r_a4(console, meter, customer):
    form = {
        "title": "From the console",
        "meter": meter.pk,
        "customer": customer.pk,
        "threshold": "10",
        "recurrence": "one_time",
        "send_webhook": "on",
        "customer_emails": "",
        "triggers-TOTAL_FORMS": "0",
        "triggers-INITIAL_FORMS": "0",
    }
    response = console.post("/admin/alerts/usagealert/add/", form)
    assert response.status_code == 302, response.content[:2000]
    alert = UsageAlert.objects.get(title="From the console")
    assert alert.status == "active" and alert.threshold == 10

    for i in range(24):
        usage_alert_create(title=f"a{i}", meter=meter, customer=customer, threshold=Decimal(1))
    response = console.post("/admin/alerts/usagealert/add/", {**form, "title": "26th"})
    assert response.status_code == 200
    assert "R-A4" in response.text
    assert not UsageAlert.objects.filter(title="26th").exists()


def test_console_resends_a_failed_delivery(console, django_capture_on_commit_callbacks):
    endpoint = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/x")
    outbox_publish(type="alert.triggered", payload={})
    outbox_dispatch()
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed", attempts=8)
    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(
            "/admin/alerts/webhookdelivery/",
            {"action": "resend", "_selected_action": [delivery.pk]},
        )
    assert response.status_code == 302
    delivery.refresh_from_db()
    # Nothing listens on port 9: the resend was attempted and is waiting for its retry.
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1


def test_console_resends_an_email(console, mailoutbox, django_capture_on_commit_callbacks):
    delivery = EmailDelivery.objects.create(
        kind="usage_alert", key="k", to=["a@b.test"], subject="s", body_text="b", status="failed"
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(
            "/admin/alerts/emaildelivery/", {"action": "resend", "_selected_action": [delivery.pk]}
        )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == "succeeded"
    assert [m.subject for m in mailoutbox] == ["s"]


def test_console_creates_the_default_quota_rules(console, meter):
    _, offer_service = quota_offer(meter)
    response = console.get("/admin/alerts/quotaalertrule/create_defaults/")
    assert response.status_code == 302
    assert sorted(offer_service.quota_alert_rules.values_list("percent", flat=True)) == [90, 100]
