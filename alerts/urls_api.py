from django.urls import path

from .api import views

urlpatterns = [
    path("alerts", views.AlertListCreate.as_view(), name="alert-list"),
    path("alerts/triggers", views.AlertTriggerList.as_view(), name="alert-trigger-list"),
    path("alerts/<int:pk>", views.AlertDetail.as_view(), name="alert-detail"),
    path("alerts/<int:pk>/activate", views.AlertActivate.as_view(), name="alert-activate"),
    path("alerts/<int:pk>/deactivate", views.AlertDeactivate.as_view(), name="alert-deactivate"),
    path("alerts/<int:pk>/archive", views.AlertArchive.as_view(), name="alert-archive"),
]
