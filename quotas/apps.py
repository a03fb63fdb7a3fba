from django.apps import AppConfig


class QuotasConfig(AppConfig):
    name = "quotas"

    def ready(self):
        from metering.hooks import register_meter_rebuild_listener, register_usage_listener

        from .balances import meter_rebuild_listener, usage_listener

        # Balances are written inside the ingest transaction, after the rollups (DESIGN.md §1).
        register_usage_listener(usage_listener)
        register_meter_rebuild_listener(meter_rebuild_listener)
