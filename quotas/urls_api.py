from django.urls import path

from .api import views

urlpatterns = [
    path("service-groups", views.ServiceGroupListCreate.as_view(), name="service-group-list"),
    path("services", views.ServiceListCreate.as_view(), name="service-list"),
    path("offers", views.OfferListCreate.as_view(), name="offer-list"),
    path("offers/<str:code>", views.OfferDetail.as_view(), name="offer-detail"),
    path("subscriptions", views.SubscriptionListCreate.as_view(), name="subscription-list"),
    path("subscriptions/<int:pk>", views.SubscriptionDetail.as_view(), name="subscription-detail"),
    path(
        "subscriptions/<int:pk>/cancel",
        views.SubscriptionCancel.as_view(),
        name="subscription-cancel",
    ),
    path(
        "subscriptions/<int:pk>/usage",
        views.SubscriptionUsageView.as_view(),
        name="subscription-usage",
    ),
    path(
        "subscriptions/<int:pk>/billing-thresholds",
        views.SubscriptionBillingThresholds.as_view(),
        name="subscription-billing-thresholds",
    ),
    path(
        "subscriptions/<int:pk>/addons",
        views.SubscriptionAddOns.as_view(),
        name="subscription-addons",
    ),
    path(
        "customers/<str:external_id>/entitlements/<str:service_code>",
        views.EntitlementView.as_view(),
        name="entitlement",
    ),
]
