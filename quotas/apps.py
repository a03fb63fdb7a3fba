from django.apps import AppConfig


class QuotasConfig(AppConfig):
    name = "quotas"

    def ready(self):
        from billing.clocks import ClockJob, register_clock_job
        from metering.hooks import register_meter_rebuild_listener, register_usage_listener

        from . import closing, thresholds
        from .balances import meter_rebuild_listener, usage_listener

        # Balances are written inside the ingest transaction, after the rollups (DESIGN.md §1).
        register_usage_listener(usage_listener)
        register_meter_rebuild_listener(meter_rebuild_listener)
        register_usage_listener(thresholds.usage_listener)
        # At each step of a simulation clock: periods close first, then thresholds (R-A5).
        register_clock_job(
            ClockJob("period_close", run=closing.clock_job_run, next_due=closing.clock_next_due)
        )
        register_clock_job(ClockJob("billing_thresholds", run=thresholds.clock_job_run))
