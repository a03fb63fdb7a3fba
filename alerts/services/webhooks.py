"""Webhooks: outbox events fanned out to subscribed endpoints, sent signed, retried with backoff.

Flow: a domain event is an ``OutboxEvent`` row written in the transaction of the change
(``core.outbox.outbox_publish``; alerts publish theirs the same way). ``outbox_dispatch``
turns each undispatched event into one ``WebhookDelivery`` per endpoint wanting its type and
marks it dispatched, in one transaction (a delivery is unique per endpoint and event, so a
second run adds nothing). ``webhook_delivery_attempt`` sends one delivery once; a failure
schedules the next attempt with exponential backoff until ``KOTA_WEBHOOK_MAX_ATTEMPTS``.
A delivery is claimed with a conditional UPDATE (a lease on ``next_attempt_at``), so two
workers never send the same attempt twice and no transaction stays open during the request.
"""

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from core.models import OutboxEvent

from ..models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from ..signing import HEADER, sign

USER_AGENT = "Kota-Webhooks/1"


def max_attempts() -> int:
    return settings.KOTA_WEBHOOK_MAX_ATTEMPTS


def backoff(attempts: int) -> timedelta:
    """Delay before the attempt after ``attempts`` failures: base * 2^(n-1), capped."""
    base = settings.KOTA_WEBHOOK_BACKOFF_SECONDS
    cap = settings.KOTA_WEBHOOK_BACKOFF_MAX_SECONDS
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


def webhook_body(event: OutboxEvent) -> dict:
    """The JSON a receiver gets; ``id`` is stable across retries (its idempotency key)."""
    return {
        "id": f"evt_{event.pk}",
        "type": event.type,
        "created_at": event.occurred_at.isoformat(),
        "data": event.payload,
    }


def encode(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True, default=str).encode()


# --------------------------------------------------------------------------- outbox


def outbox_dispatch(*, limit: int = 500, now: datetime | None = None) -> list[int]:
    """Dispatch up to ``limit`` undispatched outbox events; returns the pending delivery ids.

    The deliveries are enqueued once the transaction commits. Concurrent dispatchers on
    PostgreSQL skip each other's rows (SKIP LOCKED); idempotent either way.
    """
    return _dispatch_batch(limit=limit, now=now)[1]


def outbox_dispatch_all(*, limit: int = 500) -> int:
    """Dispatch batches until none is left; returns how many deliveries were created.

    Stops on a batch that found no event, not on one that made no delivery: events no
    endpoint wants (e.g. ``invoice.created`` with only ``alert.triggered`` subscribers) must
    not end the drain and leave what follows them for the beat's sweep.
    """
    total = 0
    while True:
        events, ids = _dispatch_batch(limit=limit, now=None)
        total += len(ids)
        if not events:
            return total


def _dispatch_batch(*, limit: int, now: datetime | None) -> tuple[int, list[int]]:
    """One batch: (how many events it dispatched, the pending delivery ids)."""
    now = now or timezone.now()
    with transaction.atomic():
        events = OutboxEvent.objects.filter(dispatched_at__isnull=True).order_by("id")
        if connection.features.has_select_for_update_skip_locked:
            events = events.select_for_update(skip_locked=True)
        events = list(events[:limit])
        if not events:
            return 0, []
        endpoints = list(WebhookEndpoint.objects.filter(is_active=True))
        WebhookDelivery.objects.bulk_create(
            [
                WebhookDelivery(
                    endpoint=endpoint,
                    event=event,
                    event_type=event.type,
                    payload=webhook_body(event),
                    next_attempt_at=now,
                )
                for event in events
                for endpoint in endpoints
                if endpoint.wants(event.type)
            ],
            ignore_conflicts=True,
        )
        OutboxEvent.objects.filter(pk__in=[e.pk for e in events]).update(dispatched_at=now)
        ids = list(
            WebhookDelivery.objects.filter(
                event_id__in=[e.pk for e in events], status=DeliveryStatus.PENDING
            ).values_list("pk", flat=True)
        )
        transaction.on_commit(lambda: _enqueue(ids))
    return len(events), ids


def _enqueue(ids: list[int]) -> None:
    from ..tasks import deliver_webhook

    for pk in ids:
        deliver_webhook.delay(pk)


# --------------------------------------------------------------------------- sending


@dataclass(frozen=True, slots=True)
class Response:
    status: int | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect is an answer (3xx), not followed: the signature is per URL


_opener = urllib.request.build_opener(_NoRedirect)


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Response:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as response:
            return Response(response.status)
    except urllib.error.HTTPError as exc:
        text = exc.read(500).decode(errors="replace") if exc.fp else ""
        return Response(exc.code, f"HTTP {exc.code}: {text}".strip())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Response(None, f"{type(exc).__name__}: {reason}")


def webhook_delivery_attempt(
    *,
    delivery_id: int,
    now: datetime | None = None,
    post: Callable[[str, bytes, dict[str, str], float], Response] = http_post,
) -> tuple[WebhookDelivery, bool]:
    """Make one attempt if the delivery is pending and due; returns (delivery, attempted).

    Safe to run twice: a delivery that is not due, claimed by another worker or finished is
    left alone.
    """
    now = now or timezone.now()
    timeout = settings.KOTA_WEBHOOK_TIMEOUT_SECONDS
    claimed = (
        WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(next_attempt_at=now + timedelta(seconds=timeout * 2 + 30))
    )
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    if not claimed:
        return delivery, False

    endpoint = delivery.endpoint
    delivery.attempts += 1
    if not endpoint.is_active:
        response = Response(None, "The endpoint is disabled.")
    else:
        body = encode(delivery.payload)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Kota-Event-Id": str(delivery.payload.get("id", "")),
            "Kota-Event-Type": delivery.event_type,
            HEADER: sign(endpoint.secret, body, int(time.time())),
        }
        response = post(endpoint.url, body, headers, timeout)

    delivery.last_response_code = response.status
    if response.ok:
        delivery.status = DeliveryStatus.SUCCEEDED
        delivery.delivered_at = timezone.now()
        delivery.last_error = ""
        delivery.next_attempt_at = None
    else:
        delivery.last_error = response.error or f"HTTP {response.status}"
        if delivery.attempts >= max_attempts() or not endpoint.is_active:
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
        else:
            delivery.next_attempt_at = now + backoff(delivery.attempts)
    delivery.save(
        update_fields=[
            "attempts",
            "status",
            "last_response_code",
            "last_error",
            "next_attempt_at",
            "delivered_at",
            "updated_at",
        ]
    )
    return delivery, True


def webhook_deliveries_due(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Pending deliveries whose next attempt is due (the beat's safety net for lost tasks)."""
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def webhook_delivery_resend(*, delivery: WebhookDelivery, now: datetime | None = None) -> None:
    """Send again (console): pending and due now, with a fresh budget of attempts."""
    now = now or timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=now, updated_at=now
    )
    transaction.on_commit(lambda: _enqueue([delivery.pk]))
