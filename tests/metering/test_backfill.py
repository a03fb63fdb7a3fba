"""Back-fill: creating or redefining a meter re-builds its rollups from stored events, exactly,
with ingestion going on between chunks; progress is on the meter; the task is idempotent."""

from datetime import timedelta
from decimal import Decimal

import pytest

from metering import selectors, services, tasks
from metering.hooks import listeners
from metering.models import BackfillStatus, Meter, MeterRollup

from .conftest import NOW

pytestmark = pytest.mark.django_db

WINDOW = {"start": NOW - timedelta(days=30), "end": NOW + timedelta(days=1)}


def ingest(ids, **props):
    return services.event_ingest_batch(
        events=[
            {
                "id": f"e{i}",
                "name": "llm",
                "customer": "cus_ext_1",
                "timestamp": (NOW - timedelta(hours=i)).isoformat(),
                "properties": {"t": i, **props},
            }
            for i in ids
        ],
        now=NOW,
    )


def rollup_value(meter, customer):
    """The value from rollups only: the day buckets of the window, no raw edge."""
    meter.refresh_from_db()
    assert meter.backfill_status == BackfillStatus.DONE
    return selectors.meter_value(meter=meter, customer_id=customer.id, **WINDOW)


def reference(meter, customer):
    return selectors.meter_value_from_events(meter=meter, customer_id=customer.id, **WINDOW)


def test_a_new_meter_counts_events_stored_before_it(customer):
    ingest(range(1, 8))
    meter = services.meter_create(name="Tokens", event_name="llm", aggregation="sum", property="t")
    assert meter.backfill_status == BackfillStatus.PENDING
    # Until the back-fill is done, reads come from raw events: already exact.
    assert selectors.meter_value(meter=meter, customer_id=customer.id, **WINDOW) == 28
    assert not MeterRollup.objects.exists()

    services.meter_backfill_run(meter_id=meter.id, generation=meter.generation, chunk_size=3)
    meter.refresh_from_db()
    assert (meter.backfill_status, meter.backfill_processed, meter.backfill_total) == ("done", 7, 7)
    assert meter.backfilled_at is not None
    assert rollup_value(meter, customer) == 28


def test_back_fill_is_exact_with_ingestion_before_and_after_the_change(customer):
    """Events stored before the change are the back-fill's (ids <= the watermark); events
    ingested after it are counted by ingestion; none twice, none missed."""
    ingest(range(1, 11))
    meter = services.meter_create(name="Tokens", event_name="llm", aggregation="sum", property="t")
    assert meter.backfill_upto > 0
    ingest(range(11, 14))  # after the change, before the task starts
    services.meter_backfill_run(meter_id=meter.id, generation=meter.generation, chunk_size=4)
    ingest([1, 2, 16])  # two duplicates and one more
    assert rollup_value(meter, customer) == sum(range(1, 14)) + 16
    assert reference(meter, customer) == sum(range(1, 14)) + 16


def test_an_interrupted_back_fill_resumes_from_its_cursor(customer, monkeypatch):
    ingest(range(1, 11))
    meter = services.meter_create(name="Tokens", event_name="llm", aggregation="sum", property="t")
    upsert, calls = services.sql.rollups_upsert, []

    def crash_on_second_chunk(rows):
        calls.append(rows)
        if len(calls) == 2:
            raise RuntimeError("worker lost")
        upsert(rows)

    monkeypatch.setattr(services.sql, "rollups_upsert", crash_on_second_chunk)
    with pytest.raises(RuntimeError):
        services.meter_backfill_run(meter_id=meter.id, generation=meter.generation, chunk_size=4)
    monkeypatch.undo()
    meter.refresh_from_db()
    assert (meter.backfill_status, meter.backfill_processed, meter.backfill_total) == (
        "running",
        4,
        10,
    )
    ingest([11])
    services.meter_backfill_run(meter_id=meter.id, generation=meter.generation, chunk_size=4)
    assert rollup_value(meter, customer) == sum(range(1, 12))


def test_interleaved_chunks_and_batches_match_the_raw_events(customer, monkeypatch):
    ingest(range(1, 21))
    meter = services.meter_create(name="Peak", event_name="llm", aggregation="max", property="t")
    generation = meter.generation
    # Run the back-fill one chunk at a time, ingesting between chunks.
    calls = iter(range(100, 130, 3))
    original = services._backfill_finish

    def finish(meter_id, gen):
        ingest([next(calls)])
        return original(meter_id, gen)

    monkeypatch.setattr(services, "_backfill_finish", finish)
    services.meter_backfill_run(meter_id=meter.id, generation=generation, chunk_size=25)
    ingest([next(calls), 5])
    meter.refresh_from_db()
    assert meter.backfill_status == BackfillStatus.DONE
    assert rollup_value(meter, customer) == reference(meter, customer)


def test_redefinition_replaces_rollups_and_cleans_the_old_generation(
    customer, django_capture_on_commit_callbacks
):
    meter = services.meter_create(name="Tokens", event_name="llm", aggregation="sum", property="t")
    ingest(range(1, 5))
    assert rollup_value(meter, customer) == 10
    with django_capture_on_commit_callbacks(execute=True):
        meter = services.meter_update(
            meter=meter,
            filter={
                "conjunction": "and",
                "clauses": [{"property": "t", "operator": "greater_than", "value": 2}],
            },
        )
    assert meter.generation == 2
    assert rollup_value(meter, customer) == 7
    assert set(MeterRollup.objects.values_list("generation", flat=True)) == {2}


def test_a_stale_or_repeated_task_changes_nothing(customer, django_capture_on_commit_callbacks):
    ingest(range(1, 4))
    with django_capture_on_commit_callbacks(execute=True):
        meter = services.meter_create(name="Calls", event_name="llm")
    meter.refresh_from_db()
    before = list(MeterRollup.objects.order_by("id").values())
    tasks.meter_backfill(meter.id, meter.generation)  # again: done, nothing to do
    tasks.meter_backfill(meter.id, meter.generation - 1)  # a stale generation
    tasks.meter_backfill(999999, 1)  # a deleted meter
    assert list(MeterRollup.objects.order_by("id").values()) == before
    assert rollup_value(meter, customer) == 3


def test_rebuild_listeners_run_once_the_rollups_are_replaced(customer):
    seen = []

    def on_rebuild(meter_id):
        meter = Meter.objects.get(pk=meter_id)
        value = selectors.meter_value(meter=meter, customer_id=customer.id, **WINDOW)
        seen.append((meter_id, meter.backfill_status, value))

    with listeners(rebuild=[on_rebuild]):
        empty = services.meter_create(name="Other", event_name="nothing_yet")
        ingest(range(1, 4))
        meter = services.meter_create(
            name="Tokens", event_name="llm", aggregation="sum", property="t"
        )
        assert seen == [(empty.id, "done", 0)]
        services.meter_backfill_run(meter_id=meter.id, generation=meter.generation, chunk_size=2)
    assert seen == [(empty.id, "done", 0), (meter.id, "done", 6)]


def test_a_failed_back_fill_is_recorded_and_can_be_restarted(customer, monkeypatch):
    ingest(range(1, 4))
    meter = services.meter_create(name="Tokens", event_name="llm", aggregation="sum", property="t")

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(services.sql, "rollups_upsert", broken)
    with pytest.raises(RuntimeError):
        tasks.meter_backfill(meter.id, meter.generation)
    meter.refresh_from_db()
    assert meter.backfill_status == BackfillStatus.FAILED
    assert "disk on fire" in meter.backfill_error
    # Readers stay exact meanwhile (raw events).
    assert selectors.meter_value(meter=meter, customer_id=customer.id, **WINDOW) == 6
    monkeypatch.undo()

    meter = services.meter_backfill_start(meter=meter)
    assert (meter.backfill_status, meter.backfill_error) == ("pending", "")
    services.meter_backfill_run(meter_id=meter.id, generation=meter.generation)
    assert rollup_value(meter, customer) == 6


def test_archiving_during_a_back_fill_keeps_what_was_stored_before(customer):
    ingest(range(1, 5))
    meter = services.meter_create(name="Calls", event_name="llm")
    ingest([5])
    services.meter_archive(meter=meter)
    ingest([6])
    services.meter_backfill_run(meter_id=meter.id, generation=meter.generation, chunk_size=2)
    assert rollup_value(meter, customer) == 5
    assert reference(meter, customer) == 5
    assert selectors.meter_value(
        meter=meter, customer_id=customer.id, start=NOW - timedelta(hours=7, seconds=1), end=NOW
    ) == Decimal(5)


def test_admin_shows_back_fill_progress(admin_client, customer):
    ingest(range(1, 4))
    meter = services.meter_create(name="Tokens", event_name="llm", aggregation="sum", property="t")
    Meter.objects.filter(pk=meter.pk).update(
        backfill_status="running", backfill_processed=1, backfill_total=4
    )
    page = admin_client.get("/admin/metering/meter/").content.decode()
    assert "running 25% (1 / 4)" in page
    detail = admin_client.get(f"/admin/metering/meter/{meter.pk}/change/").content.decode()
    assert "Rollups back-fill" in detail
    assert admin_client.get("/admin/metering/event/").status_code == 200


def test_admin_saves_through_the_services(
    admin_client, customer, django_capture_on_commit_callbacks
):
    ingest(range(1, 4))
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/metering/meter/add/",
            {
                "name": "Tokens",
                "event_name": "llm",
                "aggregation": "sum",
                "property": "t",
                "unit": "tokens",
                "filter": "null",
            },
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    meter = Meter.objects.get()
    assert (meter.generation, meter.backfill_status) == (1, "done")
    assert rollup_value(meter, customer) == 6
    # The model's clean() refuses what the API refuses (R-M1).
    response = admin_client.post(
        "/admin/metering/meter/add/",
        {
            "name": "Bad",
            "event_name": "llm",
            "aggregation": "max",
            "property": "",
            "filter": "null",
        },
    )
    assert response.status_code == 200
    assert Meter.objects.count() == 1
