from django.db.models import Prefetch, QuerySet

from billing.models import Offer
from core.errors import NotFound

from .models import OfferService, Service, ServiceGroup


def offer_list() -> QuerySet[Offer]:
    return Offer.objects.prefetch_related(
        Prefetch("offer_services", queryset=OfferService.objects.select_related("service__group"))
    ).order_by("level", "code")


def offer_get(*, code: str) -> Offer:
    offer = offer_list().filter(code=code).first()
    if offer is None:
        raise NotFound(f"No offer {code!r}.", code="unknown_offer")
    return offer


def service_list() -> QuerySet[Service]:
    return Service.objects.select_related("group", "meter").order_by("code")


def service_group_list() -> QuerySet[ServiceGroup]:
    return ServiceGroup.objects.order_by("name")
