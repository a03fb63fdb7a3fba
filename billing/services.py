"""Writes for customers and offers. Subscriptions and invoicing live in their own modules."""

from typing import Any

from django.db import transaction

from core.errors import Conflict

from .models import Customer, CustomerContact

CUSTOMER_FIELDS = ("name", "email", "tax_rate", "metadata")


@transaction.atomic
def customer_create(
    *,
    external_id: str,
    name: str,
    email: str = "",
    tax_rate=None,
    metadata: dict[str, Any] | None = None,
    contacts: list[dict[str, Any]] | None = None,
) -> Customer:
    if Customer.objects.filter(external_id=external_id).exists():
        raise Conflict(
            f"A customer with external_id {external_id!r} exists.",
            code="customer_exists",
            details={"external_id": external_id},
        )
    customer = Customer(
        external_id=external_id, name=name, email=email, tax_rate=tax_rate, metadata=metadata or {}
    )
    customer.full_clean()
    customer.save()
    customer_set_contacts(customer=customer, contacts=contacts or [])
    return customer


@transaction.atomic
def customer_update(
    *, customer: Customer, contacts: list[dict[str, Any]] | None = None, **fields
) -> Customer:
    for name, value in fields.items():
        if name in CUSTOMER_FIELDS:
            setattr(customer, name, value)
    customer.full_clean()
    customer.save()
    if contacts is not None:
        customer_set_contacts(customer=customer, contacts=contacts)
    return customer


def customer_set_contacts(*, customer: Customer, contacts: list[dict[str, Any]]) -> None:
    """Replace the contact list, keeping rows (and their user links) whose email stays."""
    wanted = {c["email"].lower(): c for c in contacts}
    customer.contacts.exclude(email__in=wanted).delete()
    existing = {c.email.lower(): c for c in customer.contacts.all()}
    for email, data in wanted.items():
        contact = existing.get(email) or CustomerContact(customer=customer, email=email)
        contact.role = data.get("role", contact.role)
        contact.name = data.get("name", contact.name)
        contact.save()
