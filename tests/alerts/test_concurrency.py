"""Exactly once with concurrent workers (PostgreSQL: real row locks and unique indexes)."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from alerts.models import AlertTrigger
from alerts.services import alerts_evaluate, usage_alert_create, usage_listener
from core.models import OutboxEvent
from metering.hooks import listeners, unregister_usage_listener
from tests.billing.factories import CustomerFactory
from tests.metering.factories import MeterFactory

from .conftest import ingest

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]


def run_together(n, fn):
    barrier = threading.Barrier(n)
    errors = []

    def worker(i):
        try:
            barrier.wait()
            fn(i)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_concurrent_sweeps_record_one_trigger():
    meter = MeterFactory()
    customer = CustomerFactory()
    usage_alert_create(title="t", meter=meter, customer=customer, threshold=Decimal(3))
    with listeners():
        unregister_usage_listener(usage_listener)
        ingest(customer, 5)
    run_together(6, lambda i: alerts_evaluate())
    assert AlertTrigger.objects.count() == 1
    assert OutboxEvent.objects.filter(type="alert.triggered").count() == 1


def test_concurrent_ingests_crossing_together_record_one_trigger():
    meter = MeterFactory()
    customer = CustomerFactory()
    usage_alert_create(title="t", meter=meter, customer=None, threshold=Decimal(2))
    ingest(customer, 1)
    # Each batch alone brings the customer to 2; both see it; one trigger is recorded.
    run_together(4, lambda i: ingest(customer, 1))
    assert AlertTrigger.objects.count() == 1
    assert OutboxEvent.objects.filter(type="alert.triggered").count() == 1


def test_r_a4_concurrent_creations_stop_at_25():
    from alerts.services import usage_alert_create as create
    from core.errors import Conflict

    meter = MeterFactory()
    customer = CustomerFactory()
    for i in range(20):
        create(title=f"a{i}", meter=meter, customer=customer, threshold=Decimal(1))
    refused = []

    def attempt(i):
        try:
            create(title=f"b{i}", meter=meter, customer=customer, threshold=Decimal(1))
        except Conflict:
            refused.append(i)

    run_together(10, attempt)
    assert len(refused) == 5
    assert customer.usage_alerts.count() == 25
