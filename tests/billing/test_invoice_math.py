"""billing.invoice_math: invoice arithmetic by example and by property (hypothesis).

Pure tests: no database, no Django.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.invoice_math import (
    DiscountTerm,
    InvoiceLineDraft,
    InvoiceMathError,
    amount_before_tax,
    compute_totals,
    line_amount,
    money_str,
)
from billing.pricing import PerUnit, minor_units, parse_pricing, price_usage, round_money

D = Decimal


def fee(amount: str) -> InvoiceLineDraft:
    return InvoiceLineDraft(description="Plan", unit_price=D(amount))


# --------------------------------------------------------------------------- examples


def test_r_m6_usage_line_with_fixed_fee_and_tax():
    """R-M6: 100 free, $0.50 a unit, 250 used -> a $75.00 line; + $10 fee, 20 % tax."""
    usage = InvoiceLineDraft(
        description="API calls",
        kind="usage",
        service="api_calls",
        quantity=D(250),
        unit_price=D("0.50"),
        amount=price_usage(PerUnit(D("0.50")), D(250), D(100)),
        pricing_model="per_unit",
    )
    totals = compute_totals(lines=[fee("10"), usage], currency="USD", tax_rate=D(20))
    assert totals.line_amounts == (D("10.00"), D("75.00"))
    assert (totals.subtotal, totals.discount, totals.tax, totals.credit, totals.total) == (
        D("85.00"),
        D("0.00"),
        D("17.00"),
        D("0.00"),
        D("102.00"),
    )


def test_r_q2_package_line_in_lira():
    """R-Q2: 10 prints included, 5 TL per started block of 10: 21 prints -> 10 TL."""
    pricing = parse_pricing({"model": "package", "package_size": "10", "package_price": "5.00"})
    line = InvoiceLineDraft(
        description="Prints",
        kind="usage",
        quantity=D(21),
        unit_price=D("5.00"),
        amount=price_usage(pricing, D(21), D(10)),
    )
    assert compute_totals(lines=[line], currency="TRY").total == D("10.00")


def test_each_line_is_rounded_once_and_the_subtotal_is_their_exact_sum():
    lines = [InvoiceLineDraft(description=f"l{i}", unit_price=D("0.333")) for i in range(3)]
    totals = compute_totals(lines=lines, currency="USD")
    assert totals.line_amounts == (D("0.33"),) * 3
    assert totals.subtotal == D("0.99")  # not round(0.999) = 1.00


def test_quantity_times_full_precision_unit_price_rounds_half_up_once():
    line = InvoiceLineDraft(description="x", quantity=D(3), unit_price=D("0.0041666667"))
    assert line_amount(line, "USD") == D("0.01")  # 0.0125000001 -> 0.01
    line = InvoiceLineDraft(description="x", quantity=D(3), unit_price=D("0.041666667"))
    assert line_amount(line, "USD") == D("0.13")  # 0.125000001 -> 0.13


def test_percent_and_amount_off_discounts_do_not_compound_and_tax_follows_the_discount():
    totals = compute_totals(
        lines=[fee("85")],
        currency="USD",
        discounts=[DiscountTerm(percent=D(10)), DiscountTerm(amount_off=D("5"))],
        tax_rate=D(20),
    )
    assert totals.discount == D("13.50")  # 8.50 + 5
    assert totals.tax == D("14.30")  # 20 % of 71.50
    assert totals.total == D("85.80")


def test_discount_never_takes_the_invoice_below_zero():
    totals = compute_totals(
        lines=[fee("30")], currency="USD", discounts=[DiscountTerm(amount_off=D(50))]
    )
    assert (totals.discount, totals.tax, totals.total) == (D("30.00"), D("0.00"), D("0.00"))


def test_credit_pays_what_it_can_and_never_more_than_the_balance():
    partial = compute_totals(
        lines=[fee("85")], currency="USD", tax_rate=D(20), credit_balance=D(50)
    )
    assert (partial.credit, partial.total) == (D("50"), D("52.00"))
    full = compute_totals(lines=[fee("85")], currency="USD", tax_rate=D(20), credit_balance=D(500))
    assert (full.credit, full.total) == (D("102.00"), D("0.00"))
    none = compute_totals(lines=[fee("85")], currency="USD", credit_balance=D(-5))
    assert none.credit == 0


def test_jpy_has_no_minor_unit():
    line = InvoiceLineDraft(description="Calls", quantity=D(715), unit_price=D("0.7"))
    totals = compute_totals(lines=[line], currency="JPY", tax_rate=D(10))
    assert totals.line_amounts == (D("501"),)  # 500.5 rounds half up to 501
    assert totals.tax == D("50")  # 50.1
    assert money_str(totals.total, "JPY") == "551"
    assert money_str(D(5), "USD") == "5.00"
    assert money_str(D("1.2345"), "KWD") == "1.235"


def test_amount_before_tax_includes_discounts_and_credits_r_t5():
    lines = [fee("100")]
    discounts = [DiscountTerm(percent=D(10))]
    assert amount_before_tax(lines=lines, currency="USD", discounts=discounts) == D("90.00")
    assert amount_before_tax(
        lines=lines, currency="USD", discounts=discounts, credit_balance=D(30)
    ) == D("60.00")
    assert amount_before_tax(lines=lines, currency="USD", credit_balance=D(300)) == 0


def test_bad_inputs_are_refused_with_codes():
    with pytest.raises(InvoiceMathError) as exc:
        InvoiceLineDraft(description="x", unit_price=D(-1))
    assert exc.value.code == "negative_line_amount"
    with pytest.raises(InvoiceMathError) as exc:
        InvoiceLineDraft(description="x", unit_price=D(1), kind="gift")
    assert exc.value.code == "invalid_line_kind"
    refund = InvoiceLineDraft(description="refund", unit_price=D(-20), kind="adjustment")
    with pytest.raises(InvoiceMathError) as exc:
        compute_totals(lines=[fee("10"), refund], currency="USD")
    assert exc.value.code == "negative_subtotal"
    assert compute_totals(lines=[fee("30"), refund], currency="USD").total == D("10.00")
    for kwargs in ({}, {"percent": D(0)}, {"percent": D(101)}, {"amount_off": D(0)}):
        with pytest.raises(InvoiceMathError):
            DiscountTerm(**kwargs)
    with pytest.raises(InvoiceMathError):
        DiscountTerm(percent=D(5), amount_off=D(5))
    with pytest.raises(InvoiceMathError) as exc:
        compute_totals(lines=[fee("1")], currency="USD", tax_rate=D(-1))
    assert exc.value.code == "invalid_tax_rate"


# --------------------------------------------------------------------------- properties

CURRENCIES = st.sampled_from(["USD", "JPY", "KWD", "TRY"])
quantities = st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False)
unit_prices = st.decimals(min_value=0, max_value=10**4, places=8, allow_nan=False)
lines_st = st.lists(
    st.builds(
        lambda q, p, k: InvoiceLineDraft(description="l", quantity=q, unit_price=p, kind=k),
        quantities,
        unit_prices,
        st.sampled_from(["fixed_fee", "usage", "addon", "charge"]),
    ),
    min_size=1,
    max_size=8,
)
discounts_st = st.lists(
    st.one_of(
        st.builds(
            lambda p: DiscountTerm(percent=p),
            st.decimals(min_value=D("0.01"), max_value=100, places=2),
        ),
        st.builds(
            lambda a: DiscountTerm(amount_off=a),
            st.decimals(min_value=D("0.01"), max_value=10**5, places=2),
        ),
    ),
    max_size=3,
)
rates = st.decimals(min_value=0, max_value=40, places=4)
balances = st.decimals(min_value=-100, max_value=10**7, places=3)


@settings(max_examples=200)
@given(lines_st, CURRENCIES, discounts_st, rates, balances)
def test_invoice_totals_properties(lines, currency, discounts, rate, balance):
    totals = compute_totals(
        lines=lines, currency=currency, discounts=discounts, tax_rate=rate, credit_balance=balance
    )
    # Rounding once: each line is round_money of its own unit arithmetic, nothing else.
    assert totals.line_amounts == tuple(
        round_money(line.quantity * line.unit_price, currency) for line in lines
    )
    # Totals add up exactly.
    assert totals.subtotal == sum(totals.line_amounts)
    assert totals.total == totals.subtotal - totals.discount + totals.tax - totals.credit
    # Every amount is a whole number of minor units.
    for amount in (totals.subtotal, totals.discount, totals.tax, totals.credit, totals.total):
        assert amount == round_money(amount, currency)
    # Ranges.
    assert 0 <= totals.discount <= totals.subtotal
    assert totals.tax >= 0
    assert 0 <= totals.credit <= max(balance, D(0))
    assert totals.total >= 0
    # Credit is used first: as much of the balance (in whole minor units) as is due.
    available = max(balance, D(0)).quantize(
        D(1).scaleb(-minor_units(currency)), rounding=ROUND_DOWN
    )
    assert totals.credit == min(available, totals.subtotal - totals.discount + totals.tax)


@settings(max_examples=200)
@given(lines_st, CURRENCIES, discounts_st, balances)
def test_amount_before_tax_properties(lines, currency, discounts, balance):
    """R-T5: no tax in it; discounts and credits are; never negative."""
    before = amount_before_tax(
        lines=lines, currency=currency, discounts=discounts, credit_balance=balance
    )
    untaxed = compute_totals(
        lines=lines, currency=currency, discounts=discounts, credit_balance=balance
    )
    assert before == untaxed.total  # with a zero tax rate the invoice total is that amount
    assert before >= 0
    taxed = compute_totals(
        lines=lines, currency=currency, discounts=discounts, tax_rate=D(20), credit_balance=balance
    )
    assert before <= taxed.subtotal - taxed.discount
