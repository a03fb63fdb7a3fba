"""Invoices under concurrent writers: numbering, idempotency and credit hold (PostgreSQL)."""

import threading
from decimal import Decimal

import pytest
from django.db import connections

from billing import invoicing, selectors
from billing.invoicing import customer_credit_grant, invoice_finalize
from billing.models import CustomerCredit, Invoice
from tests.billing.invoice_helpers import FEB, issue, line, subscription

D = Decimal


def _at_once(count, work):
    """Run ``work(i)`` in ``count`` threads released together; each uses its own connection."""
    barrier = threading.Barrier(count)
    results, errors = [None] * count, []

    def run(i):
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as exc:  # collected and re-raised in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_finalizations_take_distinct_gap_free_numbers():
    assert issue(subscription(), key="first").number == "KOTA-000001"  # the counter exists
    # One customer each: nothing but the counter makes them wait for one another.
    drafts = [issue(subscription(), key=f"draft-{i}", finalize=False) for i in range(8)]
    numbers = _at_once(8, lambda i: invoice_finalize(invoice=drafts[i], at=FEB).number)
    assert sorted(numbers) == [f"KOTA-{n:06d}" for n in range(2, 10)]
    assert Invoice.objects.filter(status="open").count() == 9


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_the_first_finalizations_race_to_create_the_counter_safely():
    drafts = [issue(subscription(), key=f"draft-{i}", finalize=False) for i in range(4)]
    numbers = _at_once(4, lambda i: invoice_finalize(invoice=drafts[i], at=FEB).number)
    assert sorted(numbers) == [f"KOTA-{n:06d}" for n in range(1, 5)]


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_issues_with_one_key_make_one_invoice():
    sub = subscription()
    ids = _at_once(6, lambda i: issue(sub, line("10"), key="period:2026-01").pk)
    assert len(set(ids)) == 1
    assert Invoice.objects.count() == 1
    assert Invoice.objects.get().number == "KOTA-000001"


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_invoices_of_one_customer_never_overdraw_credit():
    sub = subscription()
    customer_credit_grant(customer=sub.customer, amount=D(150), currency="USD", description="x")
    invoices = _at_once(4, lambda i: issue(sub, line("100"), key=f"inv-{i}"))
    assert sum(invoice.credit for invoice in invoices) == D(150)
    assert sum(invoice.total for invoice in invoices) == D(250)
    assert selectors.customer_credit_balance(customer=sub.customer, currency="USD") == 0
    assert CustomerCredit.objects.filter(amount__lt=0).count() == 2


@pytest.mark.django_db
def test_losing_the_race_on_the_key_returns_the_winners_invoice(monkeypatch):
    """The unique key decides a race the reads did not see: the loser gets the winner's row."""
    sub = subscription()
    winner = issue(sub, line("10"), key="k")
    real_by_key = invoicing._by_key
    blind = {"reads": 2}  # the loser's two reads ran before the winner committed

    def by_key(key, customer):
        if blind["reads"]:
            blind["reads"] -= 1
            return None
        return real_by_key(key, customer)

    monkeypatch.setattr(invoicing, "_by_key", by_key)
    assert issue(sub, line("99"), key="k").pk == winner.pk
    assert Invoice.objects.count() == 1
