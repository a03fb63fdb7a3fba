"""Building blocks for the invoice tests: a subscription on a clock, simple lines."""

from datetime import UTC, datetime
from decimal import Decimal

from billing.invoice_math import InvoiceLineDraft
from billing.invoicing import invoice_issue
from billing.subscriptions import subscription_create
from tests.billing.factories import ClockFactory, CustomerFactory, OfferFactory

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)


def subscription(*, customer=None, start=JAN, now=None, **offer_fields):
    """A subscription started at ``start`` on a clock at ``now`` (default: the start)."""
    offer_fields.setdefault("tax_rate", Decimal(0))
    return subscription_create(
        customer=customer or CustomerFactory(),
        offer=OfferFactory(**offer_fields),
        start=start,
        clock=ClockFactory(now=now or start),
    )


def line(amount: str, description: str = "Plan", **fields) -> InvoiceLineDraft:
    return InvoiceLineDraft(description=description, unit_price=Decimal(amount), **fields)


def issue(sub, *lines, key: str, at=FEB, **kwargs):
    """A period-end invoice of ``sub`` for January with ``lines`` (default: a 10.00 fee)."""
    kwargs.setdefault("reason", "period_end")
    return invoice_issue(
        subscription=sub,
        customer=sub.customer,
        period_start=JAN,
        period_end=FEB,
        lines=list(lines) or [line("10")],
        idempotency_key=key,
        at=at,
        **kwargs,
    )
