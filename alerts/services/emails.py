"""Emails as logged deliveries: rendered when their cause happens, sent by a task with retries."""

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from billing.models import ContactRole, Customer, CustomerContact

from ..models import DeliveryStatus, EmailDelivery
from .webhooks import backoff, max_attempts

NOTIFIED_ROLES = (ContactRole.OWNER, ContactRole.ADMIN)  # R-L4: not members


def customer_recipients(customer: Customer) -> list[str]:
    """The customer's owners and admins (R-L4); its billing email when it has none."""
    emails = list(
        CustomerContact.objects.filter(customer=customer, role__in=NOTIFIED_ROLES)
        .order_by("role", "email")
        .values_list("email", flat=True)
    )
    if not emails and customer.email:
        emails = [customer.email]
    return emails


def email_delivery_create(
    *,
    kind: str,
    key: str,
    to: Iterable[str],
    template: str,
    context: dict,
    customer: Customer | None = None,
) -> EmailDelivery | None:
    """Render ``<template>.txt``/``.html`` and queue the email (sent on commit).

    ``key`` makes it idempotent: a second call with the same key adds nothing and returns
    None. Nobody to write to also returns None.
    """
    to = list(dict.fromkeys(to))
    if not to or EmailDelivery.objects.filter(key=key).exists():
        return None
    context = {**context, "site_url": settings.KOTA_SITE_URL.rstrip("/")}
    subject = " ".join(render_to_string(f"{template}_subject.txt", context).split())
    delivery = EmailDelivery.objects.create(
        kind=kind,
        key=key,
        customer=customer,
        to=to,
        subject=subject[:255],
        body_text=render_to_string(f"{template}.txt", context),
        body_html=render_to_string(f"{template}.html", context),
        next_attempt_at=timezone.now(),
    )
    transaction.on_commit(lambda: _enqueue([delivery.pk]))
    return delivery


def _enqueue(ids: list[int]) -> None:
    from ..tasks import send_email

    for pk in ids:
        send_email.delay(pk)


def email_delivery_send(
    *, delivery_id: int, now: datetime | None = None
) -> tuple[EmailDelivery, bool]:
    """Send once if pending and due; returns (delivery, attempted). Safe to run twice."""
    now = now or timezone.now()
    claimed = (
        EmailDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(next_attempt_at=now + timedelta(minutes=2))
    )
    delivery = EmailDelivery.objects.get(pk=delivery_id)
    if not claimed:
        return delivery, False
    delivery.attempts += 1
    message = EmailMultiAlternatives(
        subject=delivery.subject,
        body=delivery.body_text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=delivery.to,
    )
    if delivery.body_html:
        message.attach_alternative(delivery.body_html, "text/html")
    try:
        message.send()
    except Exception as exc:  # any transport error: log it, retry later
        delivery.last_error = f"{type(exc).__name__}: {exc}"
        if delivery.attempts >= max_attempts():
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
        else:
            delivery.next_attempt_at = now + backoff(delivery.attempts)
    else:
        delivery.status = DeliveryStatus.SUCCEEDED
        delivery.sent_at = timezone.now()
        delivery.last_error = ""
        delivery.next_attempt_at = None
    delivery.save(update_fields=["attempts", "status", "last_error", "next_attempt_at", "sent_at"])
    return delivery, True


def email_deliveries_due(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    now = now or timezone.now()
    return list(
        EmailDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def email_delivery_resend(*, delivery: EmailDelivery, now: datetime | None = None) -> None:
    now = now or timezone.now()
    EmailDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=now
    )
    transaction.on_commit(lambda: _enqueue([delivery.pk]))
