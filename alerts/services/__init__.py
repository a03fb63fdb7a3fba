"""Writes of the alerts app (DESIGN.md §3), re-exported for callers."""

from .emails import (
    email_deliveries_due,
    email_delivery_create,
    email_delivery_resend,
    email_delivery_send,
)
from .evaluation import access_block_lift, alerts_evaluate, usage_listener
from .quota_rules import quota_alert_rules_ensure_defaults
from .usage_alerts import (
    usage_alert_activate,
    usage_alert_archive,
    usage_alert_create,
    usage_alert_deactivate,
)
from .webhooks import (
    outbox_dispatch,
    webhook_deliveries_due,
    webhook_delivery_attempt,
    webhook_delivery_resend,
)

__all__ = [
    "access_block_lift",
    "alerts_evaluate",
    "email_deliveries_due",
    "email_delivery_create",
    "email_delivery_resend",
    "email_delivery_send",
    "outbox_dispatch",
    "quota_alert_rules_ensure_defaults",
    "usage_alert_activate",
    "usage_alert_archive",
    "usage_alert_create",
    "usage_alert_deactivate",
    "usage_listener",
    "webhook_deliveries_due",
    "webhook_delivery_attempt",
    "webhook_delivery_resend",
]
