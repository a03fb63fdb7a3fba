from django.urls import path

from .api import views

urlpatterns = [
    path("events", views.EventListIngest.as_view(), name="event-list"),
    path("meters", views.MeterListCreate.as_view(), name="meter-list"),
    path("meters/<int:meter_id>", views.MeterDetail.as_view(), name="meter-detail"),
    path("meters/<int:meter_id>/archive", views.MeterArchive.as_view(), name="meter-archive"),
    path("meters/<int:meter_id>/summaries", views.MeterSummaries.as_view(), name="meter-summaries"),
]
