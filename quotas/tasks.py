"""Celery tasks: thin wrappers over the period and threshold services, safe to run twice."""

from celery import shared_task
from django.utils import timezone

from . import closing, thresholds


@shared_task(name="quotas.close_due_periods")
def close_due_periods() -> int:
    """The beat's period close (real-time subscriptions): invoice, reset, roll; catches up."""
    return len(closing.periods_close_due(clock=None, at=timezone.now()).closes)


@shared_task(name="quotas.evaluate_billing_thresholds")
def evaluate_billing_thresholds(subscription_ids: list[int] | None = None) -> int:
    """Issue the threshold invoices now due: after an ingested batch (its subscriptions) or
    as the beat's sweep (all real-time subscriptions with thresholds)."""
    if subscription_ids is None:
        return len(thresholds.billing_thresholds_evaluate_all(clock=None, at=timezone.now()))
    issued = 0
    for pk in subscription_ids:
        issued += thresholds.billing_thresholds_evaluate(subscription_id=pk) is not None
    return issued
