"""Customer pages: the subscriptions of the logged-in contact's customer (R-Q3, R-L7).

A contact (billing.CustomerContact linked to the user) sees only their own customer's
subscriptions; anything else is a 404. Staff may open any subscription page read-only (the
console links to it). Owners and admins may buy add-ons (R-L5, R-L6).
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from billing.models import ContactRole, CustomerContact, Subscription
from core.errors import DomainError

from . import selectors, services
from .forms import AddOnQuantityForm

BUYER_ROLES = (ContactRole.OWNER, ContactRole.ADMIN)


def _contact(request: HttpRequest) -> CustomerContact | None:
    return CustomerContact.objects.select_related("customer").filter(user=request.user).first()


def _subscription(request: HttpRequest, pk: int) -> tuple[Subscription, CustomerContact | None]:
    """The subscription if the user may see it, else 404 (never reveal another's)."""
    contact = _contact(request)
    queryset = selectors.subscription_list().filter(id=pk)
    if contact is not None:
        queryset = queryset.filter(customer_id=contact.customer_id)
    elif not request.user.is_staff:
        raise Http404("No such subscription.")
    subscription = queryset.first()
    if subscription is None:
        raise Http404("No such subscription.")
    return subscription, contact


def _can_buy(contact: CustomerContact | None, subscription: Subscription) -> bool:
    return (
        contact is not None
        and contact.role in BUYER_ROLES
        and subscription.status in selectors.LIVE_STATUSES
    )


@login_required
def subscription_list(request: HttpRequest) -> HttpResponse:
    contact = _contact(request)
    subscriptions = (
        selectors.subscription_list().filter(customer_id=contact.customer_id)
        if contact is not None
        else Subscription.objects.none()
    )
    return render(
        request,
        "my/subscription_list.html",
        {"contact": contact, "subscriptions": subscriptions},
    )


@login_required
def subscription_detail(request: HttpRequest, pk: int) -> HttpResponse:
    subscription, contact = _subscription(request, pk)
    usage = selectors.subscription_usage(subscription=subscription)
    offer = subscription.offer
    addons = selectors.addons_for_offer(selectors.offer_get(code=offer.code))
    return render(
        request,
        "my/subscription_detail.html",
        {
            "subscription": subscription,
            "offer": offer,
            "usage": usage,
            "quotas": [s for s in usage.services if s.is_quota],
            "features": [s for s in usage.services if not s.is_quota],
            "addons": addons,
            "can_buy": _can_buy(contact, subscription),
            "contact": contact,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def addon_buy(request: HttpRequest, pk: int, code: str) -> HttpResponse:
    """GET: the prorated price to confirm; POST: buy, then back to the subscription."""
    subscription, contact = _subscription(request, pk)
    if not _can_buy(contact, subscription):
        raise Http404("Only the customer's owners and admins can buy add-ons.")
    offer = selectors.offer_get(code=subscription.offer.code)
    addon = next((a for a in selectors.addons_for_offer(offer) if a.code == code), None)
    if addon is None:
        raise Http404("No such add-on for this plan.")
    form = AddOnQuantityForm(request.POST if request.method == "POST" else request.GET or None)
    quantity = form.cleaned_data["quantity"] if form.is_valid() else 1
    if request.method == "POST" and form.is_valid():
        try:
            purchase = services.addon_purchase(
                subscription=subscription, addon_code=addon.code, quantity=quantity
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request,
                f"{addon.name} × {quantity} added: your quota is raised now. "
                f"{purchase.charge.amount} {purchase.charge.currency} will be on your next "
                "invoice.",
            )
            return redirect("my:subscription", pk=subscription.pk)
    return render(
        request,
        "my/addon_confirm.html",
        {
            "subscription": subscription,
            "offer": offer,
            "addon": addon,
            "form": form if form.is_bound else AddOnQuantityForm(),
            "quantity": quantity,
            "added": addon.quantity * quantity,
            "full_price": addon.price * quantity,
            "quote": services.addon_quote(
                subscription=subscription, addon=addon, quantity=quantity
            ),
        },
    )


def front_door(request: HttpRequest) -> HttpResponse:
    """ "/": staff to the console, everyone else to their subscriptions (login first)."""
    return redirect(
        "/admin/" if request.user.is_authenticated and request.user.is_staff else "/my/"
    )
