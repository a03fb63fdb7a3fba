from django.urls import path

from . import views

app_name = "billing"

urlpatterns = [
    path("", views.invoice_list, name="invoice-list"),
    path("<int:invoice_id>/", views.invoice_detail, name="invoice-detail"),
]
