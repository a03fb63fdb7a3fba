from django.urls import path

from .api import clocks, invoices, views

urlpatterns = [
    path("customers", views.CustomerListCreate.as_view(), name="customer-list"),
    path("customers/<str:external_id>", views.CustomerDetail.as_view(), name="customer-detail"),
    path("clocks", clocks.ClockListCreate.as_view(), name="clock-list"),
    path("clocks/<int:pk>", clocks.ClockDetail.as_view(), name="clock-detail"),
    path("clocks/<int:pk>/advance", clocks.ClockAdvance.as_view(), name="clock-advance"),
    path("invoices", invoices.InvoiceList.as_view(), name="invoice-list"),
    path("invoices/<int:invoice_id>", invoices.InvoiceDetail.as_view(), name="invoice-detail"),
    path("invoices/<int:invoice_id>/pay", invoices.InvoicePay.as_view(), name="invoice-pay"),
    path("invoices/<int:invoice_id>/void", invoices.InvoiceVoid.as_view(), name="invoice-void"),
]
