"""Celery tasks: thin, safe to run twice (they resume from the progress stored on the meter)."""

import logging

from celery import shared_task

from . import services

log = logging.getLogger(__name__)


@shared_task(name="metering.meter_backfill")
def meter_backfill(meter_id: int, generation: int) -> None:
    """Re-build a meter's rollups from stored events (see ``services.meter_backfill_run``)."""
    try:
        services.meter_backfill_run(meter_id=meter_id, generation=generation)
    except Exception as exc:
        log.exception("Back-fill of meter %s (generation %s) failed", meter_id, generation)
        services.meter_backfill_fail(meter_id=meter_id, generation=generation, error=repr(exc))
        raise
