from datetime import datetime
from decimal import Decimal

from django.db import transaction

from .models import PendingCharge, Subscription
from .pricing import round_money


@transaction.atomic
def pending_charge_add(
    *,
    subscription: Subscription,
    description: str,
    unit_price: Decimal,
    quantity: Decimal = Decimal(1),
    amount: Decimal,
    at: datetime,
    idempotency_key: str,
    service_code: str = "",
    kind: str = "addon",
) -> PendingCharge:
    """Record a charge for the next invoice; the amount is rounded here, once. Idempotent by key."""
    currency = subscription.offer.currency
    charge, _ = PendingCharge.objects.get_or_create(
        idempotency_key=idempotency_key,
        defaults={
            "subscription": subscription,
            "description": description,
            "service_code": service_code,
            "quantity": quantity,
            "unit_price": unit_price,
            "amount": round_money(amount, currency),
            "currency": currency,
            "kind": kind,
            "created_at": at,
        },
    )
    return charge
