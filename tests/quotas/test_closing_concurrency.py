"""Period closes and threshold invoices under concurrent workers (PostgreSQL): once each."""

from datetime import timedelta
from decimal import Decimal

import pytest

from billing.clocks import clock_advance
from billing.models import Invoice, PeriodClose
from metering.hooks import listeners
from metering.services import event_ingest_batch
from quotas import balances, closing, thresholds
from quotas.models import QuotaReset
from tests.billing.test_invoice_concurrency import _at_once
from tests.quotas.test_thresholds import APR_1, MAY_1, invoices, metered, use

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]


def test_concurrent_period_closes_invoice_each_period_once():
    subs = [metered(code=f"svc{i}") for i in range(3)]
    for sub in subs:
        use(sub, 12, at=APR_1 + timedelta(days=3))
    at = MAY_1 + timedelta(days=31, minutes=1)  # two month ends each
    # Four workers (the beat on a real clock would be one; a retry or a second beat another).
    _at_once(
        4,
        lambda i: (
            closing.periods_close_due(clock=subs[0].clock, at=at)
            if i % 2
            else [closing.subscription_roll(subscription_id=s.pk, at=at) for s in subs]
        ),
    )
    for sub in subs:
        assert PeriodClose.objects.filter(subscription=sub).count() == 2
        assert [i.total for i in invoices(sub)] == [Decimal("22.00"), Decimal("10.00")]
        assert QuotaReset.objects.filter(subscription=sub).count() == 2


def test_concurrent_threshold_evaluations_issue_one_invoice():
    sub = metered()
    thresholds.billing_thresholds_set(subscription=sub, amount_gte="50")
    clock_advance(clock=sub.clock, to=APR_1 + timedelta(days=2))
    use(sub, 1)  # below
    # Ingest with only the balances listener, so the on-commit evaluation does not run first
    # and the six workers below really race for the crossing.
    with listeners(usage=[balances.usage_listener], replace=True):
        event = {
            "id": "big",
            "name": "calls",
            "customer": sub.customer.external_id,
            "timestamp": sub.clock.now.isoformat(),
            "properties": {"n": 70},
        }
        event_ingest_batch(events=[event])
    results = _at_once(6, lambda i: thresholds.billing_thresholds_evaluate(subscription_id=sub.pk))
    assert sum(r is not None for r in results) == 1
    assert Invoice.objects.filter(subscription=sub, reason="threshold").count() == 1
