"""Real concurrent writers on PostgreSQL (R-M8): the same ids posted at once count once, and a
meter created while ingestion runs is back-filled exactly."""

import random
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from metering import selectors, services
from metering.hooks import listeners
from metering.models import Event
from tests.billing.factories import CustomerFactory

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]

THREADS = 6


def run_threads(target, count=THREADS):
    barrier = threading.Barrier(count)
    errors = []

    def runner(n):
        try:
            barrier.wait()
            target(n)
        except Exception as exc:  # reported below, with the thread's traceback lost
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def event(i, now, customer):
    return {
        "id": f"evt_{i}",
        "name": "api_call",
        "customer": customer,
        "timestamp": (now - timedelta(seconds=(i % 4000) * 37)).isoformat(),
        "properties": {"tokens": i % 17},
    }


def test_same_ids_posted_concurrently_are_counted_once():
    now = timezone.now()
    customers = [CustomerFactory(external_id=f"cus_{n}") for n in range(3)]
    calls = services.meter_create(name="Calls", event_name="api_call")
    tokens = services.meter_create(
        name="Tokens", event_name="api_call", aggregation="sum", property="tokens"
    )
    ids = list(range(300))
    payload = {i: event(i, now, customers[i % 3].external_id) for i in ids}
    results, deltas = [], []

    def post_all(n):
        order = ids[:]
        random.Random(n).shuffle(order)
        for start in range(0, len(order), 50):
            batch = [payload[i] for i in order[start : start + 50]]
            results.append(services.event_ingest_batch(events=batch))

    with listeners(usage=[deltas.extend]):
        run_threads(post_all)

    assert Event.objects.count() == 300
    assert sum(r.accepted for r in results) == 300
    assert sum(r.duplicates for r in results) == 300 * (THREADS - 1)
    assert sum(d.partial.count for d in deltas if d.meter_id == calls.id) == 300
    window = {"start": now - timedelta(days=1), "end": now + timedelta(minutes=1)}
    for meter in (calls, tokens):
        for customer in [*customers, None]:
            cid = customer.id if customer else None
            assert selectors.meter_value(
                meter=meter, customer_id=cid, **window
            ) == selectors.meter_value_from_events(meter=meter, customer_id=cid, **window)
    assert selectors.meter_value(meter=calls, customer_id=None, **window) == 300


def test_a_meter_created_during_ingestion_is_back_filled_exactly(monkeypatch):
    monkeypatch.setattr(services, "BACKFILL_CHUNK", 7)
    now = timezone.now()
    customer = CustomerFactory(external_id="cus_x")
    stop = threading.Event()
    created = {}
    services.event_ingest_batch(events=[event(i, now, "cus_x") for i in range(50)])

    def ingest_until_stopped(n):
        i = 0
        while (not stop.is_set() or i < 20) and i < 5000:
            batch = [
                event(n * 100_000 + 1000 + i + k, now, customer.external_id) for k in range(10)
            ]
            services.event_ingest_batch(events=batch)
            i += 10

    def create_meter_meanwhile(n):
        if n > 0:
            ingest_until_stopped(n)
            return
        try:
            time.sleep(0.05)  # let the other threads get batches in flight
            # The back-fill task runs (eagerly) on commit, chunk by chunk, beside ingestion.
            created["meter"] = services.meter_create(
                name="Tokens", event_name="api_call", aggregation="sum", property="tokens"
            )
        finally:
            stop.set()

    run_threads(create_meter_meanwhile, count=4)
    meter = created["meter"]
    meter.refresh_from_db()
    assert meter.backfill_status == "done"
    window = {"start": now - timedelta(days=2), "end": now + timedelta(minutes=1)}
    assert selectors.meter_value(
        meter=meter, customer_id=customer.id, **window
    ) == selectors.meter_value_from_events(meter=meter, customer_id=customer.id, **window)
    # Both paths were exercised: the back-fill's events and ingestion's after the change.
    assert meter.backfill_processed >= 50
    assert Event.objects.filter(id__gt=meter.backfill_upto).exists()
