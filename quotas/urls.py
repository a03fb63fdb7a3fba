"""The customer pages (R-Q3): a contact's subscriptions and their quotas."""

from django.urls import path

from . import views

app_name = "my"

urlpatterns = [
    path("", views.subscription_list, name="subscriptions"),
    path("subscriptions/<int:pk>/", views.subscription_detail, name="subscription"),
    path(
        "subscriptions/<int:pk>/addons/<str:code>/",
        views.addon_buy,
        name="addon-buy",
    ),
]
