"""Customer pages for invoices: a contact sees their customer's finalized invoices only."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render

from core.errors import NotFound

from . import selectors


@login_required
def invoice_list(request):
    page = Paginator(selectors.invoices_for_user(request.user), 25).get_page(
        request.GET.get("page")
    )
    return render(request, "billing/invoice_list.html", {"page": page})


@login_required
def invoice_detail(request, invoice_id: int):
    try:
        invoice = selectors.invoice_get_for_user(user=request.user, invoice_id=invoice_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    # Dates read in the offer's zone, where the period was computed.
    zone = invoice.subscription.offer.timezone if invoice.subscription else "UTC"
    return render(request, "billing/invoice_detail.html", {"invoice": invoice, "zone": zone})
