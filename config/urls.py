from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from quotas.views import front_door

api_v1 = [
    path("", include("billing.urls_api")),
    path("", include("quotas.urls_api")),
    path("", include("metering.urls_api")),
    path("", include("alerts.urls_api")),
]

urlpatterns = [
    path("", front_door),
    path("my/", include("quotas.urls")),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include(api_v1)),
    path("my/invoices/", include("billing.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
