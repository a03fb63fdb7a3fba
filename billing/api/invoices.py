"""`/api/v1/invoices`: list, retrieve, and the operator's pay / void actions (API.md "Invoices")."""

import django_filters
from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import invoicing, selectors
from billing.invoice_math import money_str
from billing.models import Invoice, InvoiceLine, InvoiceReason, InvoiceStatus
from core.numbers import decimal_str

_MAX_ID = 2**63 - 1


class IdFilter(django_filters.NumberFilter):
    """A primary key in a query string: a whole number in range, else a 400 (never a 500)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", _MAX_ID)
        super().__init__(*args, **kwargs)


class InvoiceFilter(django_filters.FilterSet):
    customer = django_filters.CharFilter(
        field_name="customer__external_id", max_length=255, label="Customer external_id"
    )
    subscription = IdFilter(field_name="subscription_id")
    status = django_filters.ChoiceFilter(choices=InvoiceStatus.choices)
    reason = django_filters.ChoiceFilter(choices=InvoiceReason.choices)

    class Meta:
        model = Invoice
        fields = ["customer", "subscription", "status", "reason"]


@extend_schema_field(OpenApiTypes.STR)
class MoneyField(serializers.Field):
    """An amount in the minor unit of the currency found at ``currency_source``."""

    def __init__(self, *, currency_source, **kwargs):
        super().__init__(read_only=True, **kwargs)
        self.currency_source = currency_source

    def get_attribute(self, instance):
        return money_str(super().get_attribute(instance), self.currency_source(instance))

    def to_representation(self, value):
        return value


@extend_schema_field(OpenApiTypes.STR)
class PlainDecimalField(serializers.Field):
    """A full-precision quantity or unit price: no exponent, no trailing zeros."""

    def __init__(self, **kwargs):
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value):
        return decimal_str(value)


def _line_currency(line: InvoiceLine) -> str:
    return line.invoice.currency


def _invoice_currency(invoice: Invoice) -> str:
    return invoice.currency


class InvoiceLineSerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="service_code", read_only=True)
    quantity = PlainDecimalField()
    unit_price = PlainDecimalField()
    amount = MoneyField(currency_source=_line_currency)

    class Meta:
        model = InvoiceLine
        fields = [
            "description",
            "service",
            "kind",
            "quantity",
            "unit_price",
            "amount",
            "pricing_model",
            "period_start",
            "period_end",
            "metadata",
        ]
        read_only_fields = fields


class InvoiceSerializer(serializers.ModelSerializer):
    customer = serializers.CharField(source="customer.external_id", read_only=True)
    subtotal = MoneyField(currency_source=_invoice_currency)
    discount = MoneyField(currency_source=_invoice_currency)
    credit = MoneyField(currency_source=_invoice_currency)
    tax = MoneyField(currency_source=_invoice_currency)
    total = MoneyField(currency_source=_invoice_currency)
    tax_rate = PlainDecimalField()
    lines = InvoiceLineSerializer(many=True, read_only=True)

    class Meta:
        model = Invoice
        fields = [
            "id",
            "number",
            "customer",
            "subscription",
            "status",
            "reason",
            "period_start",
            "period_end",
            "currency",
            "subtotal",
            "discount",
            "credit",
            "tax",
            "tax_rate",
            "total",
            "issued_at",
            "paid_at",
            "voided_at",
            "created_at",
            "metadata",
            "lines",
        ]
        read_only_fields = fields


class InvoiceList(generics.ListAPIView):
    serializer_class = InvoiceSerializer
    filterset_class = InvoiceFilter

    def get_queryset(self):
        return selectors.invoice_list()


class InvoiceDetail(generics.RetrieveAPIView):
    serializer_class = InvoiceSerializer
    queryset = Invoice.objects.none()  # for the schema; get_object reads through the selector

    def get_object(self):
        return selectors.invoice_get(invoice_id=self.kwargs["invoice_id"])


class _InvoiceAction(APIView):
    serializer_class = InvoiceSerializer

    def transition(self, invoice: Invoice) -> Invoice:
        raise NotImplementedError

    @extend_schema(request=None, responses=InvoiceSerializer)
    def post(self, request, invoice_id: int):
        invoice = selectors.invoice_get(invoice_id=invoice_id)
        self.transition(invoice)
        return Response(InvoiceSerializer(selectors.invoice_get(invoice_id=invoice_id)).data)


class InvoicePay(_InvoiceAction):
    """Mark an open invoice paid (paid outside Kota); repeating it is harmless."""

    def transition(self, invoice: Invoice) -> Invoice:
        return invoicing.invoice_mark_paid(invoice=invoice, at=invoicing.invoice_now(invoice))


class InvoiceVoid(_InvoiceAction):
    """Void a draft or open invoice; its credit goes back to the customer."""

    def transition(self, invoice: Invoice) -> Invoice:
        return invoicing.invoice_void(invoice=invoice, at=invoicing.invoice_now(invoice))
