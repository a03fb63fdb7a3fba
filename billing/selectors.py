from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum

from core.errors import NotFound

from .models import (
    Customer,
    CustomerCredit,
    Discount,
    Invoice,
    InvoiceLine,
    InvoiceLineKind,
    InvoiceStatus,
    Subscription,
)


def customer_get(*, external_id: str) -> Customer:
    customer = Customer.objects.filter(external_id=external_id).first()
    if customer is None:
        raise NotFound(f"No customer {external_id!r}.", code="unknown_customer")
    return customer


def customer_list() -> QuerySet[Customer]:
    return Customer.objects.prefetch_related("contacts").order_by("id")


# --------------------------------------------------------------------------- invoices


def invoice_list() -> QuerySet[Invoice]:
    """Newest first, with what a rendering needs (customer, lines) fetched up front."""
    return Invoice.objects.select_related("customer").prefetch_related("lines").order_by("-id")


def invoice_get(*, invoice_id: int) -> Invoice:
    invoice = invoice_list().filter(pk=invoice_id).first()
    if invoice is None:
        raise NotFound(f"No invoice {invoice_id}.", code="unknown_invoice")
    return invoice


def invoices_for_user(user) -> QuerySet[Invoice]:
    """Invoices ever finalized (drafts and voided drafts never were) of the customer the user
    is a contact of; none for anyone else."""
    if not user.is_authenticated:
        return Invoice.objects.none()
    return invoice_list().filter(customer__contacts__user=user, issued_at__isnull=False)


def invoice_get_for_user(*, user, invoice_id: int) -> Invoice:
    invoice = invoices_for_user(user).filter(pk=invoice_id).first()
    if invoice is None:
        raise NotFound(f"No invoice {invoice_id}.", code="unknown_invoice")
    return invoice


# --------------------------------------------------------------------------- credit, discounts


def customer_credit_balance(*, customer: Customer, currency: str) -> Decimal:
    """The customer's credit in ``currency``: grants and give-backs minus consumption."""
    total = CustomerCredit.objects.filter(customer=customer, currency=currency).aggregate(
        balance=Sum("amount")
    )["balance"]
    return total if total is not None else Decimal(0)


def invoice_credit_net(*, invoice: Invoice) -> Decimal:
    """Net ledger movement of an invoice: -consumed, back to 0 once voided."""
    total = invoice.credit_entries.aggregate(net=Sum("amount"))["net"]
    return total if total is not None else Decimal(0)


def discounts_active(
    *, customer: Customer, subscription: Subscription | None, currency: str, at: datetime
) -> list[Discount]:
    """Discounts that apply to an invoice issued at ``at`` in ``currency``.

    The customer's and the subscription's; valid at ``at`` (from inclusive, until exclusive);
    an amount off only in its own currency; not yet redeemed ``max_redemptions`` times by
    invoices that are not void.
    """
    owner = Q(customer=customer)
    if subscription is not None:
        owner |= Q(subscription=subscription)
    if not Discount.objects.filter(owner).exists():
        return []  # the common case: a cheap read instead of the redemption count
    discounts = (
        Discount.objects.filter(owner)
        .filter(Q(valid_from__isnull=True) | Q(valid_from__lte=at))
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=at))
        .filter(Q(percent__isnull=False) | Q(currency=currency))
        .annotate(
            redeemed=Count(
                "redemptions", filter=~Q(redemptions__invoice__status=InvoiceStatus.VOID)
            )
        )
        .order_by("id")
    )
    return [d for d in discounts if d.max_redemptions is None or d.redeemed < d.max_redemptions]


@dataclass(frozen=True)
class UsageBilled:
    quantity: Decimal
    amount: Decimal
    measured: Decimal = Decimal(0)  # usage measured when the latest of them was issued


@dataclass(frozen=True, slots=True)
class BilledLine:
    kind: str
    service_code: str
    amount: Decimal
    metadata: dict
    period_start: datetime | None
    period_end: datetime | None


_BILLED_KINDS = [
    InvoiceLineKind.FIXED_FEE,
    InvoiceLineKind.ADDON,
    InvoiceLineKind.USAGE,
    InvoiceLineKind.ADJUSTMENT,
]


def period_lines_billed(*, subscription: Subscription, period_start: datetime) -> list[BilledLine]:
    """The fixed fee, add-on, usage and adjustment lines of the subscription's invoices (void
    ones excluded) from ``period_start`` on: one read serving ``usage_billed`` (``lines=``) and
    the period's recurring fees already billed."""
    rows = (
        InvoiceLine.objects.filter(
            invoice__subscription=subscription,
            kind__in=_BILLED_KINDS,
            period_start__gte=period_start,
        )
        .exclude(invoice__status=InvoiceStatus.VOID)
        .values_list("kind", "service_code", "amount", "metadata", "period_start", "period_end")
    )
    return [BilledLine(*row) for row in rows]


def usage_billed(
    *,
    subscription: Subscription,
    service_code: str,
    period_start: datetime,
    period_end: datetime,
    lines: list[BilledLine] | None = None,
) -> UsageBilled:
    """Usage of a service already invoiced within a period, void invoices excluded (R-T7).

    Sums the usage lines (and their negative adjustments) lying inside
    ``[period_start, period_end]``: their amounts and the ``usage_quantity`` their metadata
    records, so a later invoice of the period (the period-end one after a threshold invoice)
    bills only the rest. ``measured`` is the largest ``measured_quantity`` recorded: what the
    meter read when the period was last invoiced (usage thresholds count from there).
    ``lines``: ``period_lines_billed`` from ``period_start`` or earlier, when already read.
    """
    if lines is not None:
        rows = [
            (line.amount, line.metadata)
            for line in lines
            if line.kind in (InvoiceLineKind.USAGE, InvoiceLineKind.ADJUSTMENT)
            and line.service_code == service_code
            and line.period_start is not None
            and line.period_start >= period_start
            and line.period_end is not None
            and line.period_end <= period_end
        ]
        return _usage_billed(rows)
    rows = (
        InvoiceLine.objects.filter(
            invoice__subscription=subscription,
            kind__in=[InvoiceLineKind.USAGE, InvoiceLineKind.ADJUSTMENT],
            service_code=service_code,
            period_start__gte=period_start,
            period_end__lte=period_end,
        )
        .exclude(invoice__status=InvoiceStatus.VOID)
        .values_list("amount", "metadata")
    )
    return _usage_billed(rows)


def _usage_billed(rows) -> UsageBilled:
    quantity = amount = measured = Decimal(0)
    for line_amount, metadata in rows:
        metadata = metadata or {}
        amount += line_amount
        quantity += Decimal(str(metadata.get("usage_quantity", "0")))
        measured = max(measured, Decimal(str(metadata.get("measured_quantity", "0"))))
    return UsageBilled(quantity=quantity, amount=amount, measured=measured)
