"""Invoice services: numbering, idempotency, discounts, credit, tax, state machine (issue 5)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from billing import selectors
from billing.charges import pending_charge_add
from billing.invoice_math import InvoiceLineDraft
from billing.invoicing import (
    customer_credit_grant,
    invoice_amount_before_tax,
    invoice_finalize,
    invoice_issue,
    invoice_mark_paid,
    invoice_void,
)
from billing.models import (
    CustomerCredit,
    Discount,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    PendingCharge,
)
from billing.pricing import prorate
from core.errors import Conflict, InvalidInput
from core.models import OutboxEvent
from tests.billing.factories import CustomerFactory
from tests.billing.invoice_helpers import FEB, JAN, issue, line, subscription

pytestmark = pytest.mark.django_db
D = Decimal


# --------------------------------------------------------------------------- numbering


def test_numbers_are_given_at_finalization_in_sequence():
    sub = subscription()
    first = issue(sub, key="a")
    draft = issue(sub, key="b", finalize=False)
    assert (first.number, first.status) == ("KOTA-000001", "open")
    assert (draft.number, draft.status, draft.issued_at) == (None, "draft", None)
    second = issue(sub, key="c")
    assert second.number == "KOTA-000002"
    assert invoice_finalize(invoice=draft, at=FEB).number == "KOTA-000003"


def test_a_voided_draft_takes_no_number_and_leaves_no_gap():
    sub = subscription()
    issue(sub, key="a")
    draft = issue(sub, key="b", finalize=False)
    invoice_void(invoice=draft, at=FEB)
    assert Invoice.objects.get(pk=draft.pk).number is None
    assert issue(sub, key="c").number == "KOTA-000002"


def test_a_rolled_back_finalization_gives_its_number_back():
    sub = subscription()
    issue(sub, key="a")
    draft = issue(sub, key="b", finalize=False)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        assert invoice_finalize(invoice=draft, at=FEB).number == "KOTA-000002"
        raise Boom
    assert Invoice.objects.get(pk=draft.pk).status == "draft"
    assert issue(sub, key="c").number == "KOTA-000002"


def test_finalization_publishes_invoice_created():
    sub = subscription()
    invoice = issue(sub, line("10"), key="a", reason="threshold")
    event = OutboxEvent.objects.get(type="invoice.created")
    assert event.payload == {
        "id": invoice.pk,
        "number": "KOTA-000001",
        "customer": sub.customer.external_id,
        "subscription": sub.pk,
        "total": "10.00",
        "currency": "USD",
        "reason": "threshold",
        "period_start": JAN.isoformat(),
        "period_end": FEB.isoformat(),
    }
    assert event.customer_external_id == sub.customer.external_id
    assert event.occurred_at == FEB
    issue(sub, key="b", finalize=False)
    assert OutboxEvent.objects.count() == 1  # drafts publish nothing


# --------------------------------------------------------------------------- idempotency


def test_a_repeated_key_returns_the_first_invoice_and_changes_nothing():
    sub = subscription()
    customer_credit_grant(customer=sub.customer, amount=D(3), currency="USD", description="x")
    pending_charge_add(
        subscription=sub,
        description="Add-on",
        unit_price=D(5),
        amount=D(5),
        at=JAN + timedelta(days=3),
        idempotency_key="pc",
    )
    first = issue(sub, line("10"), key="period:2026-01")
    again = issue(sub, line("999"), key="period:2026-01")
    assert again.pk == first.pk
    assert Invoice.objects.count() == 1
    assert InvoiceLine.objects.count() == 2
    assert first.total == D("12.00")  # 10 + 5 - 3 of credit
    assert selectors.customer_credit_balance(customer=sub.customer, currency="USD") == 0
    assert CustomerCredit.objects.count() == 2
    assert OutboxEvent.objects.count() == 1


def test_a_key_used_by_another_customer_is_a_conflict():
    issue(subscription(), key="k")
    with pytest.raises(Conflict) as exc:
        issue(subscription(), key="k")
    assert exc.value.code == "idempotency_key_reused"


def test_the_database_refuses_a_second_invoice_with_the_same_key():
    invoice = issue(subscription(), key="k")
    invoice.pk = None
    invoice.number = None
    invoice.status = "draft"
    invoice.issued_at = None
    with pytest.raises(IntegrityError), transaction.atomic():
        invoice.save()


# --------------------------------------------------------------------------- discounts


def test_percent_discount_then_tax():
    sub = subscription(tax_rate=D(20))
    Discount.objects.create(name="Launch", customer=sub.customer, percent=D(10))
    invoice = issue(sub, line("85"), key="a")
    assert (invoice.subtotal, invoice.discount, invoice.tax, invoice.total) == (
        D("85.00"),
        D("8.50"),
        D("15.30"),
        D("91.80"),
    )


def test_amount_off_in_the_invoice_currency_only_and_never_below_zero():
    sub = subscription()
    Discount.objects.create(
        name="Big", subscription=sub, amount_off=D(50), currency="USD", max_redemptions=1
    )
    Discount.objects.create(name="Euro", customer=sub.customer, amount_off=D(5), currency="EUR")
    first = issue(sub, line("30"), key="a")
    assert (first.discount, first.total, first.status) == (D("30.00"), D("0.00"), "paid")
    second = issue(sub, line("30"), key="b")  # max_redemptions reached
    assert (second.discount, second.total) == (D("0.00"), D("30.00"))


def test_discount_validity_window_and_scope():
    sub = subscription()
    other = subscription(customer=sub.customer)
    Discount.objects.create(
        name="January", subscription=sub, percent=D(50), valid_from=JAN, valid_until=FEB
    )
    assert issue(sub, line("10"), key="in", at=JAN + timedelta(days=5)).discount == D("5.00")
    assert issue(sub, line("10"), key="until-exclusive", at=FEB).discount == 0
    assert issue(other, line("10"), key="other-sub", at=JAN + timedelta(days=5)).discount == 0


def test_voiding_frees_a_redemption():
    sub = subscription()
    Discount.objects.create(name="Once", customer=sub.customer, percent=D(50), max_redemptions=1)
    first = issue(sub, line("10"), key="a")
    assert first.discount == D("5.00")
    invoice_void(invoice=first, at=FEB)
    assert issue(sub, line("10"), key="b").discount == D("5.00")


def test_discount_constraints_and_clean():
    customer = CustomerFactory()
    for fields in (
        {"percent": D(10), "amount_off": D(5), "currency": "USD"},
        {},
        {"percent": D(0)},
        {"percent": D(120)},
        {"amount_off": D(5)},  # no currency
        {"amount_off": D(-5), "currency": "USD"},
        {"percent": D(10), "valid_from": FEB, "valid_until": JAN},
        {"percent": D(10), "max_redemptions": 0},
    ):
        with pytest.raises(ValidationError):
            Discount(name="x", customer=customer, **fields).full_clean()
        with pytest.raises(IntegrityError), transaction.atomic():
            Discount.objects.create(name="x", customer=customer, **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        Discount.objects.create(name="nobody", percent=D(10))


# --------------------------------------------------------------------------- credit


def test_credit_is_consumed_first_and_given_back_on_void():
    sub = subscription()
    customer = sub.customer
    customer_credit_grant(customer=customer, amount=D(15), currency="USD", description="Sorry")
    customer_credit_grant(customer=customer, amount=D(99), currency="EUR", description="Other")
    first = issue(sub, line("10"), key="a")
    assert (first.credit, first.total, first.status) == (D("10.00"), D("0.00"), "paid")
    second = issue(sub, line("10"), key="b")
    assert (second.credit, second.total, second.status) == (D("5.00"), D("5.00"), "open")
    assert selectors.customer_credit_balance(customer=customer, currency="USD") == 0
    assert selectors.customer_credit_balance(customer=customer, currency="EUR") == D(99)

    invoice_void(invoice=second, at=FEB)
    invoice_void(invoice=second, at=FEB)  # a retried void gives nothing back twice
    assert selectors.customer_credit_balance(customer=customer, currency="USD") == D(5)
    third = issue(sub, line("8"), key="c")
    assert (third.credit, third.total) == (D("5.00"), D("3.00"))


def test_credit_grant_rounds_once_refuses_nothing_and_is_idempotent():
    customer = CustomerFactory()
    entry = customer_credit_grant(
        customer=customer, amount=D("10.005"), currency="USD", description="x", idempotency_key="g"
    )
    assert entry.amount == D("10.01")
    again = customer_credit_grant(
        customer=customer, amount=D(500), currency="USD", description="x", idempotency_key="g"
    )
    assert again.pk == entry.pk
    for amount in (D(0), D("0.004"), D(-1)):
        with pytest.raises(InvalidInput):
            customer_credit_grant(customer=customer, amount=amount, currency="USD", description="x")
    with pytest.raises(InvalidInput):
        customer_credit_grant(customer=customer, amount=D(1), currency="usd", description="x")
    with pytest.raises(InvalidInput) as exc:
        customer_credit_grant(customer=customer, amount=D(10**15), currency="USD", description="x")
    assert exc.value.code == "invalid_credit"
    assert CustomerCredit.objects.count() == 1


# --------------------------------------------------------------------------- tax


def test_tax_rate_is_the_customers_when_set_else_the_offers():
    by_offer = subscription(tax_rate=D(20))
    assert issue(by_offer, line("10"), key="a").tax == D("2.00")
    by_customer = subscription(tax_rate=D(20), customer=CustomerFactory(tax_rate=D("8.5")))
    invoice = issue(by_customer, line("10"), key="b")
    assert (invoice.tax_rate, invoice.tax, invoice.total) == (D("8.5"), D("0.85"), D("10.85"))
    exempt = subscription(tax_rate=D(20), customer=CustomerFactory(tax_rate=D(0)))
    assert issue(exempt, line("10"), key="c").tax == 0  # a set 0 % wins over the offer


def test_manual_invoice_without_subscription():
    customer = CustomerFactory(tax_rate=D(10))
    invoice = invoice_issue(
        subscription=None,
        customer=customer,
        reason="manual",
        period_start=JAN,
        period_end=JAN,
        lines=[line("40", description="Consulting", kind="charge")],
        idempotency_key="manual-1",
        at=JAN,
        currency="EUR",
    )
    assert (invoice.currency, invoice.total, invoice.subscription) == ("EUR", D("44.00"), None)
    with pytest.raises(InvalidInput):
        invoice_issue(
            subscription=None,
            customer=customer,
            reason="manual",
            period_start=JAN,
            period_end=JAN,
            lines=[line("1")],
            idempotency_key="manual-2",
            at=JAN,
        )


def test_jpy_invoice_rounds_to_whole_yen():
    sub = subscription(currency="JPY", fixed_fee=D(0), tax_rate=D(10))
    calls = InvoiceLineDraft(
        description="API calls", kind="usage", quantity=D(715), unit_price=D("0.7")
    )
    invoice = issue(sub, calls, key="a")
    assert invoice.lines.get().amount == D(501)
    assert (invoice.subtotal, invoice.tax, invoice.total) == (D(501), D(50), D(551))


# --------------------------------------------------------------------------- pending charges


def test_r_l6_prorated_addon_is_a_200_line_on_the_next_invoice():
    """R-L6: six months left of an annual cycle, add-on $400 a year -> $200 charged."""
    sub = subscription(billing_interval="year", fixed_fee=D(0))
    assert (sub.current_period_start, sub.current_period_end) == (
        JAN,
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    bought = datetime(2026, 7, 1, tzinfo=UTC)
    amount = prorate(
        D(400),
        period_start=sub.current_period_start,
        period_end=sub.current_period_end,
        at=bought,
        interval="year",
        tz="UTC",
    )
    charge = pending_charge_add(
        subscription=sub,
        description="More actions (prorated)",
        unit_price=D(400),
        amount=amount,
        at=bought,
        idempotency_key="addon:more_actions:1",
        service_code="actions",
    )
    invoice = invoice_issue(
        subscription=sub,
        customer=sub.customer,
        reason="addon",
        period_start=bought,
        period_end=sub.current_period_end,
        lines=[],
        idempotency_key="addon-invoice:1",
        at=bought,
    )
    addon = invoice.lines.get()
    assert (addon.kind, addon.service_code, addon.amount) == ("addon", "actions", D("200.00"))
    assert invoice.total == D("200.00")
    charge.refresh_from_db()
    assert (charge.invoice, charge.invoiced_at) == (invoice, bought)
    # Billed once: the next invoice does not carry it again.
    later = issue(sub, line("1"), key="next", at=bought + timedelta(days=1))
    assert [ln.kind for ln in later.lines.all()] == ["fixed_fee"]


def test_charges_wait_for_their_time_and_come_back_when_their_invoice_is_voided():
    sub = subscription()
    early = pending_charge_add(
        subscription=sub,
        description="Early",
        unit_price=D(2),
        amount=D(2),
        at=JAN + timedelta(days=1),
        idempotency_key="early",
    )
    pending_charge_add(
        subscription=sub,
        description="Future",
        unit_price=D(3),
        amount=D(3),
        at=FEB + timedelta(days=1),
        idempotency_key="future",
    )
    skipped = issue(sub, line("10"), key="no-charges", include_pending_charges=False)
    assert skipped.total == D("10.00")
    first = issue(sub, line("10"), key="a")
    assert first.total == D("12.00")  # the future charge waits
    invoice_void(invoice=first, at=FEB)
    early.refresh_from_db()
    assert (early.invoice, early.invoiced_at) == (None, None)
    assert issue(sub, line("10"), key="b").total == D("12.00")
    assert PendingCharge.objects.filter(invoiced_at__isnull=True).count() == 1


# --------------------------------------------------------------------------- state machine


def test_state_machine():
    sub = subscription()
    invoice = issue(sub, key="a")
    assert invoice_mark_paid(invoice=invoice, at=FEB).status == "paid"
    assert invoice_mark_paid(invoice=invoice, at=FEB).paid_at == FEB  # a retry is a no-op
    with pytest.raises(Conflict) as exc:
        invoice_void(invoice=invoice, at=FEB)
    assert exc.value.code == "invalid_invoice_transition"
    assert exc.value.status == 409

    draft = issue(sub, key="b", finalize=False)
    with pytest.raises(Conflict):
        invoice_mark_paid(invoice=draft, at=FEB)
    voided = invoice_void(invoice=draft, at=FEB)
    assert (voided.status, voided.voided_at) == ("void", FEB)
    for action in (invoice_finalize, invoice_mark_paid):
        with pytest.raises(Conflict) as exc:
            action(invoice=draft, at=FEB)
        assert exc.value.details["status"] == "void"
    assert invoice_finalize(invoice=invoice, at=FEB).number == "KOTA-000001"


def test_the_database_keeps_the_invoice_invariants():
    invoice = issue(subscription(), line("10"), key="a")
    for changes in (
        {"total": D("9.00")},
        {"status": InvoiceStatus.DRAFT},
        {"number": None},
        {"discount": D("11"), "total": D("-1")},
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            Invoice.objects.filter(pk=invoice.pk).update(**changes)


def test_bad_issue_input_is_refused_with_codes():
    sub = subscription()
    cases = [
        ({"reason": "whim"}, "invalid_reason"),
        ({"customer": CustomerFactory()}, "subscription_customer_mismatch"),
        ({"lines": []}, "empty_invoice"),
        ({"at": datetime(2026, 2, 1)}, "naive_datetime"),
        ({"period_end": JAN - timedelta(days=1)}, "invalid_period"),
        ({"currency": "EUR"}, "currency_mismatch"),
        ({"lines": [line("-5", kind="adjustment")]}, "negative_subtotal"),
    ]
    for overrides, code in cases:
        kwargs = {
            "subscription": sub,
            "customer": sub.customer,
            "reason": "period_end",
            "period_start": JAN,
            "period_end": FEB,
            "lines": [line("1")],
            "idempotency_key": f"bad-{code}",
            "at": FEB,
            **overrides,
        }
        with pytest.raises(InvalidInput) as exc:
            invoice_issue(**kwargs)
        assert exc.value.code == code
    assert not Invoice.objects.exists()


def test_precision_is_kept_and_magnitudes_beyond_the_columns_are_refused():
    sub = subscription()
    gb_seconds = InvoiceLineDraft(
        description="Storage",
        kind="usage",
        quantity=D("123456789012345.123456789012345678"),
        unit_price=D("0.000000012345678901"),
    )
    invoice = issue(sub, gb_seconds, key="fine")
    stored = invoice.lines.get()
    assert stored.amount == D("1524157.88")  # 1524157.8752949... rounded once
    if connection.vendor == "postgresql":  # SQLite keeps ~15 significant digits of a decimal
        assert stored.quantity == D("123456789012345.123456789012345678")
        assert stored.unit_price == D("0.000000012345678901")
    with pytest.raises(InvalidInput) as exc:
        issue(sub, line("1", quantity=D(10) ** 15), key="huge")
    assert exc.value.code == "amount_too_large"


# --------------------------------------------------------------------------- seams for thresholds


def test_usage_billed_counts_usage_lines_of_the_period_except_voided_ones_r_t7():
    sub = subscription()
    threshold = issue(
        sub,
        InvoiceLineDraft(
            description="Prints",
            kind="usage",
            service="prints",
            quantity=D(1000),
            unit_price=D("0.01"),
            period_start=JAN,
            period_end=JAN + timedelta(days=10),
            metadata={"usage_quantity": "1000"},
        ),
        key="threshold:1",
        reason="threshold",
    )
    billed = selectors.usage_billed(
        subscription=sub, service_code="prints", period_start=JAN, period_end=FEB
    )
    assert (billed.quantity, billed.amount) == (D(1000), D("10.00"))
    assert (
        selectors.usage_billed(
            subscription=sub, service_code="other", period_start=JAN, period_end=FEB
        ).quantity
        == 0
    )
    invoice_void(invoice=threshold, at=FEB)
    assert (
        selectors.usage_billed(
            subscription=sub, service_code="prints", period_start=JAN, period_end=FEB
        ).quantity
        == 0
    )


def test_amount_before_tax_of_a_would_be_invoice_r_t5():
    sub = subscription(tax_rate=D(20))
    Discount.objects.create(name="Ten", subscription=sub, percent=D(10))
    customer_credit_grant(customer=sub.customer, amount=D(30), currency="USD", description="x")
    pending_charge_add(
        subscription=sub,
        description="Add-on",
        unit_price=D(20),
        amount=D(20),
        at=JAN,
        idempotency_key="pc",
    )
    amount = invoice_amount_before_tax(subscription=sub, lines=[line("80")], at=JAN)
    assert amount == D("60.00")  # (80 + 20) - 10 % - 30 of credit, no tax
    assert not Invoice.objects.exists()  # only a reading
