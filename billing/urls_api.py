from django.urls import path

from .api import views

urlpatterns = [
    path("customers", views.CustomerListCreate.as_view(), name="customer-list"),
    path("customers/<str:external_id>", views.CustomerDetail.as_view(), name="customer-detail"),
]
