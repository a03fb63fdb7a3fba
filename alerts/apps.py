from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import post_save


def _kick_outbox_dispatch() -> None:
    from .tasks import outbox_dispatch

    outbox_dispatch.delay()


def _outbox_event_saved(sender, instance, created, raw=False, using=None, **kwargs) -> None:
    """Dispatch a new outbox event as soon as its transaction commits (the beat sweeps too).

    Lower apps publish without importing alerts; one dispatch per transaction is enough.
    """
    if not created or raw:
        return
    connection = transaction.get_connection(using)
    if any(entry[1] is _kick_outbox_dispatch for entry in connection.run_on_commit):
        return
    transaction.on_commit(_kick_outbox_dispatch, using=using)


class AlertsConfig(AppConfig):
    name = "alerts"

    def ready(self):
        from core.models import OutboxEvent
        from metering.hooks import register_usage_listener

        from .services.evaluation import usage_listener

        # After quotas' listener (quotas precedes alerts in INSTALLED_APPS): balances are
        # up to date when quota rules are evaluated.
        register_usage_listener(usage_listener)
        post_save.connect(
            _outbox_event_saved, sender=OutboxEvent, dispatch_uid="alerts.outbox_dispatch"
        )
