"""Invoice writes: issue, finalize, mark paid, void; credit grants (issue 5, R-L6, R-T5, R-T7).

The arithmetic is ``billing.invoice_math`` (pure); this module gathers its inputs (pending
charges, discounts, credit balance, tax rate), writes the rows and enforces the state machine::

    draft --finalize--> open --mark_paid--> paid
      |                   |
      +------void---------+--> void

Repeating a transition that already happened is a no-op (tasks retry); any other transition
is a 409 ``invalid_invoice_transition``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Context, Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.errors import Conflict, InvalidInput
from core.outbox import outbox_publish

from . import invoice_math, selectors
from .invoice_math import LINE_KINDS, InvoiceLineDraft, InvoiceMathError, money_str
from .models import (
    Customer,
    CustomerCredit,
    DiscountRedemption,
    Invoice,
    InvoiceLine,
    InvoiceNumberSequence,
    InvoiceReason,
    InvoiceStatus,
    PendingCharge,
    Subscription,
)
from .pricing import round_money
from .subscriptions import clock_now

__all__ = [
    "InvoiceLineDraft",
    "customer_credit_grant",
    "invoice_amount_before_tax",
    "invoice_finalize",
    "invoice_issue",
    "invoice_mark_paid",
    "invoice_now",
    "invoice_void",
]

_UNIT_PLACES = Decimal(1).scaleb(-18)  # InvoiceLine.quantity / unit_price decimal places
_UNIT_CONTEXT = Context(prec=60)
# Money columns hold 20 digits with 6 places; quantities and unit prices 38 with 18.
_MONEY_LIMIT = Decimal(10) ** 14
_UNIT_LIMIT = Decimal(10) ** 20


def invoice_issue(
    *,
    subscription: Subscription | None,
    customer: Customer,
    reason: str,
    period_start: datetime,
    period_end: datetime,
    lines: Sequence[InvoiceLineDraft],
    idempotency_key: str,
    at: datetime,
    include_pending_charges: bool = True,
    finalize: bool = True,
    currency: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Invoice:
    """Write an invoice from ``lines`` (+ the subscription's pending charges), once per key.

    A second call with the same ``idempotency_key`` returns the first invoice unchanged, also
    when both calls race: the unique key decides, the loser reads the winner's row. Pending
    charges created up to ``at`` become lines and are marked invoiced. Discounts active at
    ``at`` and the customer's credit in the invoice currency are applied; the tax rate is the
    customer's if set, else the offer's. ``currency`` is needed only without a subscription.
    With ``finalize`` the invoice gets its number and ``invoice.created`` is published.
    """
    currency = _check_issue_input(
        subscription=subscription,
        customer=customer,
        reason=reason,
        period_start=period_start,
        period_end=period_end,
        idempotency_key=idempotency_key,
        at=at,
        currency=currency,
    )
    existing = _by_key(idempotency_key, customer)
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return _issue(
                subscription=subscription,
                customer=customer,
                reason=reason,
                period_start=period_start,
                period_end=period_end,
                lines=list(lines),
                idempotency_key=idempotency_key,
                at=at,
                include_pending_charges=include_pending_charges,
                finalize=finalize,
                currency=currency,
                metadata=metadata or {},
            )
    except IntegrityError:
        # A concurrent call with the same key committed first.
        existing = _by_key(idempotency_key, customer)
        if existing is None:
            raise
        return existing


def _check_issue_input(
    *,
    subscription: Subscription | None,
    customer: Customer,
    reason: str,
    period_start: datetime,
    period_end: datetime,
    idempotency_key: str,
    at: datetime,
    currency: str | None,
) -> str:
    if reason not in InvoiceReason.values:
        raise InvalidInput(
            f"Unknown invoice reason {reason!r}.",
            code="invalid_reason",
            details={"allowed": list(InvoiceReason.values)},
        )
    if not idempotency_key or len(idempotency_key) > 255:
        raise InvalidInput("An idempotency key of 1 to 255 characters is required.")
    for name, value in (("period_start", period_start), ("period_end", period_end), ("at", at)):
        if timezone.is_naive(value):
            raise InvalidInput(f"`{name}` needs a time zone offset.", code="naive_datetime")
    if period_end < period_start:
        raise InvalidInput("The period ends before it starts.", code="invalid_period")
    if subscription is None:
        if not currency:
            raise InvalidInput("An invoice without subscription needs a currency.")
        return currency
    if subscription.customer_id != customer.pk:
        raise InvalidInput(
            "The subscription belongs to another customer.", code="subscription_customer_mismatch"
        )
    offer_currency = subscription.offer.currency
    if currency and currency != offer_currency:
        raise InvalidInput(
            f"The subscription bills in {offer_currency}, not {currency}.",
            code="currency_mismatch",
        )
    return offer_currency


def _by_key(idempotency_key: str, customer: Customer) -> Invoice | None:
    invoice = Invoice.objects.filter(idempotency_key=idempotency_key).first()
    if invoice is not None and invoice.customer_id != customer.pk:
        raise Conflict(
            "This idempotency key was used for another customer's invoice.",
            code="idempotency_key_reused",
            details={"invoice": invoice.pk},
        )
    return invoice


def _tax_rate(customer: Customer, subscription: Subscription | None) -> Decimal:
    if customer.tax_rate is not None:
        return customer.tax_rate
    return subscription.offer.tax_rate if subscription is not None else Decimal(0)


def _charge_draft(charge: PendingCharge) -> InvoiceLineDraft:
    return InvoiceLineDraft(
        description=charge.description,
        service=charge.service_code,
        kind=charge.kind if charge.kind in LINE_KINDS else "charge",
        quantity=charge.quantity,
        unit_price=charge.unit_price,
        amount=charge.amount,
        metadata={"pending_charge": charge.pk},
    )


def _lock_customer(customer: Customer) -> None:
    # One writer per customer at a time: the credit balance and discount redemptions read
    # below stay true until this transaction commits.
    Customer.objects.select_for_update().filter(pk=customer.pk).values_list("pk").get()


def _pending_charges(
    subscription: Subscription | None, at: datetime, *, lock: bool
) -> list[PendingCharge]:
    if subscription is None:
        return []
    charges = PendingCharge.objects.filter(
        subscription=subscription, invoiced_at__isnull=True, created_at__lte=at
    ).order_by("created_at", "id")
    return list(charges.select_for_update() if lock else charges)


def _check_magnitudes(drafts: list[InvoiceLineDraft], totals: invoice_math.InvoiceTotals) -> None:
    """Refuse what the columns cannot hold, as a 400 rather than a database error."""
    units = [abs(v) for d in drafts for v in (d.quantity, d.unit_price)]
    amounts = [abs(a) for a in totals.line_amounts] + [totals.subtotal, totals.tax]
    if any(v >= _UNIT_LIMIT for v in units) or any(a >= _MONEY_LIMIT for a in amounts):
        raise InvalidInput("An amount or quantity is too large.", code="amount_too_large")


def _issue(
    *,
    subscription: Subscription | None,
    customer: Customer,
    reason: str,
    period_start: datetime,
    period_end: datetime,
    lines: list[InvoiceLineDraft],
    idempotency_key: str,
    at: datetime,
    include_pending_charges: bool,
    finalize: bool,
    currency: str,
    metadata: dict[str, Any],
) -> Invoice:
    _lock_customer(customer)
    existing = _by_key(idempotency_key, customer)
    if existing is not None:
        return existing

    charges = _pending_charges(subscription, at, lock=True) if include_pending_charges else []
    for charge in charges:
        if charge.currency != currency:
            raise Conflict(
                f"Pending charge {charge.pk} is in {charge.currency}, the invoice in {currency}.",
                code="currency_mismatch",
            )
    drafts = lines + [_charge_draft(charge) for charge in charges]
    if not drafts:
        raise InvalidInput("An invoice needs at least one line.", code="empty_invoice")

    discounts = selectors.discounts_active(
        customer=customer, subscription=subscription, currency=currency, at=at
    )
    tax_rate = _tax_rate(customer, subscription)
    try:
        totals = invoice_math.compute_totals(
            lines=drafts,
            currency=currency,
            discounts=[discount.as_term() for discount in discounts],
            tax_rate=tax_rate,
            credit_balance=selectors.customer_credit_balance(customer=customer, currency=currency),
        )
    except InvoiceMathError as exc:
        raise InvalidInput(exc.message, code=exc.code) from exc
    _check_magnitudes(drafts, totals)

    invoice = Invoice.objects.create(
        customer=customer,
        subscription=subscription,
        status=InvoiceStatus.DRAFT,
        reason=reason,
        period_start=period_start,
        period_end=period_end,
        currency=currency,
        subtotal=totals.subtotal,
        discount=totals.discount,
        tax_rate=tax_rate,
        tax=totals.tax,
        credit=totals.credit,
        total=totals.total,
        idempotency_key=idempotency_key,
        metadata=metadata,
    )
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=invoice,
            position=position,
            description=draft.description,
            service_code=draft.service,
            kind=draft.kind,
            quantity=draft.quantity.quantize(_UNIT_PLACES, context=_UNIT_CONTEXT),
            unit_price=draft.unit_price.quantize(_UNIT_PLACES, context=_UNIT_CONTEXT),
            amount=amount,
            pricing_model=draft.pricing_model,
            period_start=draft.period_start,
            period_end=draft.period_end,
            metadata=draft.metadata,
        )
        for position, (draft, amount) in enumerate(zip(drafts, totals.line_amounts, strict=True))
    )
    if totals.credit > 0:
        CustomerCredit.objects.create(
            customer=customer,
            currency=currency,
            amount=-totals.credit,
            invoice=invoice,
            description="Applied to an invoice",
            created_at=at,
        )
    if totals.discount > 0:
        DiscountRedemption.objects.bulk_create(
            DiscountRedemption(discount=discount, invoice=invoice) for discount in discounts
        )
    if charges:
        PendingCharge.objects.filter(pk__in=[c.pk for c in charges]).update(
            invoiced_at=at, invoice=invoice
        )
    if finalize:
        # Inside invoice_issue's savepoint already: no nested one.
        invoice = _finalize(_locked(invoice), at)
    return invoice


def invoice_amount_before_tax(
    *,
    subscription: Subscription,
    lines: Sequence[InvoiceLineDraft],
    at: datetime,
    include_pending_charges: bool = True,
) -> Decimal:
    """What an invoice issued now would bill before tax, after discounts and credit (R-T5).

    Reads only: the monetary billing threshold compares this with its amount.
    """
    customer = subscription.customer
    currency = subscription.offer.currency
    drafts = list(lines)
    if include_pending_charges:
        drafts += [_charge_draft(c) for c in _pending_charges(subscription, at, lock=False)]
    discounts = selectors.discounts_active(
        customer=customer, subscription=subscription, currency=currency, at=at
    )
    try:
        return invoice_math.amount_before_tax(
            lines=drafts,
            currency=currency,
            discounts=[discount.as_term() for discount in discounts],
            credit_balance=selectors.customer_credit_balance(customer=customer, currency=currency),
        )
    except InvoiceMathError as exc:
        raise InvalidInput(exc.message, code=exc.code) from exc


# --------------------------------------------------------------------------- state machine


def invoice_now(invoice: Invoice) -> datetime:
    """The instant an operator action on ``invoice`` happens: its subscription's clock (R-A5)."""
    subscription = invoice.subscription
    return clock_now(subscription.clock if subscription is not None else None)


def _transition_error(invoice: Invoice, action: str) -> Conflict:
    return Conflict(
        f"A {invoice.status} invoice cannot be {action}.",
        code="invalid_invoice_transition",
        details={"invoice": invoice.pk, "status": invoice.status, "action": action},
    )


def _locked(invoice: Invoice) -> Invoice:
    # of=self: lock the invoice, not its customer, so finalizations don't queue per customer.
    return (
        Invoice.objects.select_for_update(of=("self",))
        .select_related("customer")
        .get(pk=invoice.pk)
    )


def _take_number(prefix: str) -> int | None:
    """Increment the prefix's counter and return it, one statement holding the row's lock
    until commit (a concurrent finalization waits, then increments the committed value);
    None when the prefix has no counter yet."""
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {qn(InvoiceNumberSequence._meta.db_table)} "
            f"SET {qn('last_value')} = {qn('last_value')} + 1 "
            f"WHERE {qn('prefix')} = %s RETURNING {qn('last_value')}",
            [prefix],
        )
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def _next_number() -> str:
    """The next invoice number, taken under the sequence row's lock (released at commit)."""
    prefix = getattr(settings, "KOTA_INVOICE_NUMBER_PREFIX", "KOTA")
    value = _take_number(prefix)
    if value is None:
        try:
            with transaction.atomic():
                InvoiceNumberSequence.objects.create(prefix=prefix)
        except IntegrityError:
            pass  # another transaction created it; the update below waits for its commit
        value = _take_number(prefix)
        if value is None:
            raise InvoiceNumberSequence.DoesNotExist(prefix)
    return f"{prefix}-{value:06d}"


@transaction.atomic
def invoice_finalize(*, invoice: Invoice, at: datetime) -> Invoice:
    """Number a draft and open it (paid at once when nothing is due); publish invoice.created."""
    return _finalize(_locked(invoice), at)


def _finalize(invoice: Invoice, at: datetime) -> Invoice:
    """``invoice_finalize`` of a locked invoice, in the caller's transaction."""
    if invoice.status in (InvoiceStatus.OPEN, InvoiceStatus.PAID):
        return invoice
    if invoice.status != InvoiceStatus.DRAFT:
        raise _transition_error(invoice, "finalized")
    invoice.number = _next_number()
    invoice.issued_at = at
    if invoice.total == 0:
        invoice.status, invoice.paid_at = InvoiceStatus.PAID, at
    else:
        invoice.status = InvoiceStatus.OPEN
    invoice.save(update_fields=["number", "issued_at", "status", "paid_at"])
    outbox_publish(
        type="invoice.created",
        payload={
            "id": invoice.pk,
            "number": invoice.number,
            "customer": invoice.customer.external_id,
            "subscription": invoice.subscription_id,
            "total": money_str(invoice.total, invoice.currency),
            "currency": invoice.currency,
            "reason": invoice.reason,
            "period_start": invoice.period_start.isoformat(),
            "period_end": invoice.period_end.isoformat(),
        },
        customer_external_id=invoice.customer.external_id,
        occurred_at=at,
    )
    return invoice


@transaction.atomic
def invoice_mark_paid(*, invoice: Invoice, at: datetime) -> Invoice:
    invoice = _locked(invoice)
    if invoice.status == InvoiceStatus.PAID:
        return invoice
    if invoice.status != InvoiceStatus.OPEN:
        raise _transition_error(invoice, "marked paid")
    invoice.status, invoice.paid_at = InvoiceStatus.PAID, at
    invoice.save(update_fields=["status", "paid_at"])
    return invoice


@transaction.atomic
def invoice_void(*, invoice: Invoice, at: datetime) -> Invoice:
    """Cancel a draft or open invoice: the document is wrong, not the debt.

    The credit it consumed goes back to the customer's balance, its pending charges wait for
    the next invoice again, its discount redemptions stop counting, and its usage lines stop
    counting as billed (``selectors.usage_billed``), so nothing it billed is lost (R-T7).
    A paid invoice cannot be voided.
    """
    invoice = _locked(invoice)
    if invoice.status == InvoiceStatus.VOID:
        return invoice
    if invoice.status == InvoiceStatus.PAID:
        raise _transition_error(invoice, "voided")
    invoice.status, invoice.voided_at = InvoiceStatus.VOID, at
    invoice.save(update_fields=["status", "voided_at"])
    consumed = -selectors.invoice_credit_net(invoice=invoice)
    if consumed > 0:
        CustomerCredit.objects.create(
            customer=invoice.customer,
            currency=invoice.currency,
            amount=consumed,
            invoice=invoice,
            description=f"Given back: invoice {invoice} voided",
            created_at=at,
        )
    invoice.pending_charges.update(invoiced_at=None, invoice=None)
    return invoice


# --------------------------------------------------------------------------- credit


@transaction.atomic
def customer_credit_grant(
    *,
    customer: Customer,
    amount: Decimal,
    currency: str,
    description: str,
    at: datetime | None = None,
    idempotency_key: str | None = None,
) -> CustomerCredit:
    """Add credit that later invoices in ``currency`` consume first. Idempotent by key."""
    if idempotency_key:
        existing = CustomerCredit.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    try:
        rounded = round_money(amount, currency)
    except ValueError as exc:
        raise InvalidInput(str(exc), code="invalid_amount") from exc
    if rounded <= 0:
        raise InvalidInput("A credit grant is greater than zero.", code="invalid_amount")
    entry = CustomerCredit(
        customer=customer,
        currency=currency,
        amount=rounded,
        description=description,
        idempotency_key=idempotency_key or None,
        created_at=at or timezone.now(),
    )
    try:
        entry.full_clean(exclude=["idempotency_key"])  # uniqueness: the constraint decides below
    except ValidationError as exc:
        raise InvalidInput(
            "The credit grant is not valid.", code="invalid_credit", details=exc.message_dict
        ) from exc
    try:
        with transaction.atomic():
            entry.save()
    except IntegrityError:
        existing = CustomerCredit.objects.filter(idempotency_key=idempotency_key).first()
        if not idempotency_key or existing is None:
            raise
        return existing
    return entry
