"""Signed webhooks delivered to a real local HTTP server, retries with backoff, the outbox."""

import json
import threading
import time
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from alerts.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from alerts.services import (
    outbox_dispatch,
    usage_alert_create,
    webhook_deliveries_due,
    webhook_delivery_attempt,
    webhook_delivery_resend,
)
from alerts.services.webhooks import backoff
from alerts.signing import HEADER, SignatureError, verify
from core.models import OutboxEvent
from core.outbox import outbox_publish

from .conftest import ingest

pytestmark = pytest.mark.django_db


class Receiver:
    """A webhook receiver on 127.0.0.1 that checks signatures with the endpoint's secret."""

    def __init__(self):
        self.secret = ""
        self.statuses: list[int] = []  # answers to give, in order; then 200
        self.received: list[dict] = []
        self.url = ""

    def handle(self, handler: BaseHTTPRequestHandler) -> int:
        body = handler.rfile.read(int(handler.headers["Content-Length"]))
        try:
            verify(self.secret, body, handler.headers[HEADER], now=int(time.time()))
            valid = True
        except SignatureError:
            valid = False
        self.received.append(
            {"body": json.loads(body), "headers": dict(handler.headers), "valid": valid}
        )
        if not valid:
            return 400
        return self.statuses.pop(0) if self.statuses else 200


@pytest.fixture
def receiver():
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            status = receiver.handle(self)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_port}/hooks"
    yield receiver
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def endpoint(receiver):
    endpoint = WebhookEndpoint.objects.create(url=receiver.url, event_types=["alert.triggered"])
    receiver.secret = endpoint.secret
    return endpoint


def test_an_alert_is_delivered_signed_and_retried_after_a_500(
    meter, customer, receiver, endpoint, django_capture_on_commit_callbacks
):
    usage_alert_create(title="Big", meter=meter, customer=customer, threshold=Decimal(2))
    receiver.statuses = [500]
    with django_capture_on_commit_callbacks(execute=True):
        ingest(customer, 2)

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_response_code) == ("pending", 1, 500)
    assert delivery.next_attempt_at > timezone.now()
    assert webhook_deliveries_due() == []  # not before its backoff

    later = delivery.next_attempt_at + timedelta(seconds=1)
    assert webhook_deliveries_due(now=later) == [delivery.pk]
    delivery, attempted = webhook_delivery_attempt(delivery_id=delivery.pk, now=later)
    assert attempted
    assert (delivery.status, delivery.attempts, delivery.last_response_code) == (
        "succeeded",
        2,
        200,
    )
    assert delivery.delivered_at is not None

    assert [r["valid"] for r in receiver.received] == [True, True]
    first, second = (r["body"] for r in receiver.received)
    assert first == second  # same event id on retry: the receiver's idempotency key
    assert first["type"] == "alert.triggered"
    assert first["data"]["customer"] == "cus_ext_1"
    assert first["data"]["value"] == "2" and first["data"]["threshold"] == "2"
    assert receiver.received[0]["headers"]["Kota-Event-Type"] == "alert.triggered"


def test_a_receiver_with_another_secret_rejects_the_signature(receiver, endpoint):
    receiver.secret = "whsec_not_the_endpoints"
    outbox_publish(type="alert.triggered", payload={"x": 1})
    (pk,) = outbox_dispatch()
    delivery, _ = webhook_delivery_attempt(delivery_id=pk)
    assert delivery.last_response_code == 400
    assert receiver.received[0]["valid"] is False


def test_exponential_backoff_then_failed_after_max_attempts(receiver, endpoint, settings):
    settings.KOTA_WEBHOOK_MAX_ATTEMPTS = 3
    settings.KOTA_WEBHOOK_BACKOFF_SECONDS = 10
    receiver.statuses = [503, 503, 503]
    outbox_publish(type="alert.triggered", payload={})
    (pk,) = outbox_dispatch()
    now = timezone.now()
    delays = []
    for _ in range(3):
        delivery, attempted = webhook_delivery_attempt(delivery_id=pk, now=now)
        assert attempted
        if delivery.next_attempt_at:
            delays.append((delivery.next_attempt_at - now).total_seconds())
            now = delivery.next_attempt_at
    assert delays == [10, 20]
    assert (delivery.status, delivery.attempts, delivery.last_response_code) == ("failed", 3, 503)
    assert backoff(30) == timedelta(seconds=settings.KOTA_WEBHOOK_BACKOFF_MAX_SECONDS)

    # The console's resend: pending again, with a fresh budget; the receiver is back.
    webhook_delivery_resend(delivery=delivery)
    delivery, _ = webhook_delivery_attempt(delivery_id=pk)
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)


def test_an_unreachable_endpoint_is_logged_and_retried(db):
    endpoint = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/nothing-listens")
    outbox_publish(type="invoice.created", payload={"invoice": 1})
    (pk,) = outbox_dispatch()
    delivery, _ = webhook_delivery_attempt(delivery_id=pk)
    assert delivery.endpoint == endpoint
    assert delivery.status == "pending" and delivery.last_response_code is None
    assert "refused" in delivery.last_error.lower() or "error" in delivery.last_error.lower()


def test_an_attempt_not_due_or_already_done_is_skipped(receiver, endpoint):
    outbox_publish(type="alert.triggered", payload={})
    (pk,) = outbox_dispatch()
    webhook_delivery_attempt(delivery_id=pk)
    delivery, attempted = webhook_delivery_attempt(delivery_id=pk)  # a twin task
    assert not attempted and delivery.attempts == 1
    assert len(receiver.received) == 1


def test_outbox_dispatch_fans_out_by_type_once(db):
    wants_all = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/a")
    invoices = WebhookEndpoint.objects.create(
        url="http://127.0.0.1:9/b", event_types=["invoice.created"]
    )
    WebhookEndpoint.objects.create(url="http://127.0.0.1:9/c", event_types=["quota.exhausted"])
    WebhookEndpoint.objects.create(url="http://127.0.0.1:9/d", is_active=False)
    event = outbox_publish(type="invoice.created", payload={"invoice": 7}, customer_external_id="c")

    ids = outbox_dispatch()
    assert set(WebhookDelivery.objects.filter(pk__in=ids).values_list("endpoint", flat=True)) == {
        wants_all.pk,
        invoices.pk,
    }
    event.refresh_from_db()
    assert event.dispatched_at is not None
    assert outbox_dispatch() == []  # idempotent
    body = WebhookDelivery.objects.filter(endpoint=invoices).get().payload
    assert body == {
        "id": f"evt_{event.pk}",
        "type": "invoice.created",
        "created_at": event.occurred_at.isoformat(),
        "data": {"invoice": 7},
    }


def test_a_new_outbox_event_is_dispatched_when_its_transaction_commits(
    receiver, django_capture_on_commit_callbacks
):
    endpoint = WebhookEndpoint.objects.create(url=receiver.url, event_types=["invoice.created"])
    receiver.secret = endpoint.secret
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        outbox_publish(type="invoice.created", payload={"invoice": 1})
        outbox_publish(type="invoice.created", payload={"invoice": 2})
    assert len(callbacks) >= 1
    assert not OutboxEvent.objects.filter(dispatched_at__isnull=True).exists()
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 2
    assert sorted(r["body"]["data"]["invoice"] for r in receiver.received) == [1, 2]
