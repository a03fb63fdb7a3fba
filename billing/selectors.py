from django.db.models import QuerySet

from core.errors import NotFound

from .models import Customer


def customer_get(*, external_id: str) -> Customer:
    customer = Customer.objects.filter(external_id=external_id).first()
    if customer is None:
        raise NotFound(f"No customer {external_id!r}.", code="unknown_customer")
    return customer


def customer_list() -> QuerySet[Customer]:
    return Customer.objects.prefetch_related("contacts").order_by("id")
