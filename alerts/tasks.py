"""Celery tasks: thin wrappers over services, safe to run twice."""

from celery import shared_task

from .services import emails, evaluation, quota_rules, webhooks


@shared_task(name="alerts.evaluate")
def evaluate(customer_ids: list[int] | None = None) -> dict[str, int]:
    """The beat's safety net: evaluates every alert and quota rule (what ingest missed)."""
    quota_rules.quota_alert_rules_ensure_defaults()
    return evaluation.alerts_evaluate(customer_ids=customer_ids)


@shared_task(name="alerts.outbox_dispatch")
def outbox_dispatch() -> int:
    """Turn undispatched outbox events into webhook deliveries (beat sweep + on-commit kick)."""
    return webhooks.outbox_dispatch_all()


@shared_task(name="alerts.deliver_webhook")
def deliver_webhook(delivery_id: int) -> str:
    delivery, attempted = webhooks.webhook_delivery_attempt(delivery_id=delivery_id)
    if attempted and delivery.status == "pending" and delivery.next_attempt_at:
        deliver_webhook.apply_async((delivery_id,), eta=delivery.next_attempt_at)
    return delivery.status


@shared_task(name="alerts.send_email")
def send_email(delivery_id: int) -> str:
    delivery, attempted = emails.email_delivery_send(delivery_id=delivery_id)
    if attempted and delivery.status == "pending" and delivery.next_attempt_at:
        send_email.apply_async((delivery_id,), eta=delivery.next_attempt_at)
    return delivery.status


@shared_task(name="alerts.retry_due")
def retry_due() -> int:
    """Send deliveries whose next attempt is due (their own scheduled retry may be lost)."""
    due_webhooks = webhooks.webhook_deliveries_due()
    due_emails = emails.email_deliveries_due()
    for pk in due_webhooks:
        deliver_webhook.delay(pk)
    for pk in due_emails:
        send_email.delay(pk)
    return len(due_webhooks) + len(due_emails)
