import logging

from django.apps import AppConfig

logger = logging.getLogger(__name__)


def _kick_outbox_dispatch() -> None:
    """Best effort, after the publishing transaction committed: a broker error must not fail
    the request whose changes are already stored; the beat's sweep dispatches what's left."""
    from kombu.exceptions import OperationalError

    from .tasks import outbox_dispatch

    try:
        outbox_dispatch.delay()
    except OperationalError:
        logger.warning("Outbox dispatch not enqueued (broker unreachable); the sweep will.")


class AlertsConfig(AppConfig):
    name = "alerts"

    def ready(self):
        from billing.clocks import ClockJob, register_clock_job
        from core.outbox import register_outbox_listener
        from metering.hooks import register_usage_listener

        from .services import evaluation
        from .services.evaluation import usage_listener

        # After quotas' listener (quotas precedes alerts in INSTALLED_APPS): balances are
        # up to date when quota rules are evaluated.
        register_usage_listener(usage_listener)
        # New outbox events (invoice.created, quota.*) are dispatched as soon as they commit;
        # the beat sweep catches anything missed.
        register_outbox_listener(_kick_outbox_dispatch)
        register_clock_job(ClockJob("alerts", run=evaluation.clock_job_run))
