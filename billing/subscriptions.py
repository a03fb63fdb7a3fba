"""Subscription writes: creation with its first period (trials included)."""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from core.errors import InvalidInput

from . import periods
from .models import Clock, Customer, Offer, Subscription, SubscriptionStatus


def clock_now(clock: Clock | None) -> datetime:
    """The instant a subscription lives at: its simulation clock's, or real time (R-A5)."""
    return clock.now if clock is not None else timezone.now()


@transaction.atomic
def subscription_create(
    *,
    customer: Customer,
    offer: Offer,
    start: datetime | None = None,
    clock: Clock | None = None,
) -> Subscription:
    now = clock_now(clock)
    start = start or now
    if timezone.is_naive(start):
        raise InvalidInput("`start` needs a time zone offset.", code="naive_datetime")
    trial_end = start + timedelta(days=offer.trial_days) if offer.trial_days else None
    at = max(start, now)
    period_start, period_end = periods.period_at(start, offer.billing_interval, at, offer.timezone)
    status = (
        SubscriptionStatus.TRIALING if trial_end and at < trial_end else SubscriptionStatus.ACTIVE
    )
    return Subscription.objects.create(
        customer=customer,
        offer=offer,
        clock=clock,
        status=status,
        billing_anchor=start,
        started_at=start,
        trial_end=trial_end,
        current_period_start=period_start,
        current_period_end=period_end,
    )
