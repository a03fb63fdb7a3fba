from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from .models import OutboxEvent

_after_commit_listeners: list[Callable[[], None]] = []


def register_outbox_listener(fn: Callable[[], None]) -> None:
    """Called once after a transaction that published events commits (e.g. alerts' dispatch).

    The publishing apps sit below the listener's app, so they cannot call it themselves.
    """
    if fn not in _after_commit_listeners:
        _after_commit_listeners.append(fn)


def _notify_listeners() -> None:
    for fn in _after_commit_listeners:
        fn()


def outbox_publish(
    *,
    type: str,
    payload: dict[str, Any],
    customer_external_id: str = "",
    occurred_at: datetime | None = None,
) -> OutboxEvent:
    """Record a domain event; call inside the transaction that makes the change."""
    event = OutboxEvent.objects.create(
        type=type,
        payload=payload,
        customer_external_id=customer_external_id,
        occurred_at=occurred_at or timezone.now(),
    )
    # One notification per transaction, however many events it publishes.
    pending = transaction.get_connection().run_on_commit
    if not any(entry[1] is _notify_listeners for entry in pending):
        transaction.on_commit(_notify_listeners)
    return event
