from django.urls import path

from .api import views

urlpatterns = [
    path("service-groups", views.ServiceGroupListCreate.as_view(), name="service-group-list"),
    path("services", views.ServiceListCreate.as_view(), name="service-list"),
    path("offers", views.OfferListCreate.as_view(), name="offer-list"),
    path("offers/<str:code>", views.OfferDetail.as_view(), name="offer-detail"),
]
