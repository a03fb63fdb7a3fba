from datetime import datetime
from typing import Any

from django.utils import timezone

from .models import OutboxEvent


def outbox_publish(
    *,
    type: str,
    payload: dict[str, Any],
    customer_external_id: str = "",
    occurred_at: datetime | None = None,
) -> OutboxEvent:
    """Record a domain event; call inside the transaction that makes the change."""
    return OutboxEvent.objects.create(
        type=type,
        payload=payload,
        customer_external_id=customer_external_id,
        occurred_at=occurred_at or timezone.now(),
    )
