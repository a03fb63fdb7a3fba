"""The dispatch task drains the outbox, even past events no endpoint subscribes to."""

import pytest
from django.utils import timezone

from alerts.models import WebhookDelivery, WebhookEndpoint
from alerts.tasks import outbox_dispatch
from core.models import OutboxEvent
from core.outbox import outbox_publish

pytestmark = pytest.mark.django_db


def test_events_nobody_wants_do_not_stop_the_drain():
    """A batch of 500 unwanted events (no delivery made) used to end the task's loop, so the
    alert.triggered event behind them waited for the beat's sweep (30 s) or the next kick."""
    WebhookEndpoint.objects.create(url="http://127.0.0.1:9/x", event_types=["alert.triggered"])
    now = timezone.now()
    OutboxEvent.objects.bulk_create(
        OutboxEvent(type="invoice.created", payload={"invoice": i}, occurred_at=now)
        for i in range(500)
    )
    alert_event = outbox_publish(type="alert.triggered", payload={"trigger": 1})

    assert outbox_dispatch() == 1  # the task, run in place

    assert not OutboxEvent.objects.filter(dispatched_at__isnull=True).exists()
    assert WebhookDelivery.objects.filter(event=alert_event).count() == 1
