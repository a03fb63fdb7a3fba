from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts import selectors, services
from core.errors import InvalidInput

from .serializers import AlertTriggerSerializer, UsageAlertSerializer


def _int_param(request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidInput(f"`{name}` must be an id.", code="invalid_parameter") from exc


@extend_schema(
    parameters=[
        OpenApiParameter("status", str, enum=["active", "inactive", "archived"]),
        OpenApiParameter("meter", int),
        OpenApiParameter("customer", str, description="A customer's external_id."),
        OpenApiParameter("include_archived", bool),
    ]
)
class AlertListCreate(generics.ListCreateAPIView):
    """Usage alerts (R-A1..R-A4); archived ones are hidden unless asked for."""

    serializer_class = UsageAlertSerializer

    def get_queryset(self):
        params = self.request.query_params
        wanted = params.get("status")
        include_archived = wanted == "archived" or params.get("include_archived") in (
            "1",
            "true",
        )
        alerts = selectors.usage_alert_list(include_archived=include_archived)
        if wanted:
            alerts = alerts.filter(status=wanted)
        meter = _int_param(self.request, "meter")
        if meter is not None:
            alerts = alerts.filter(meter_id=meter)
        if params.get("customer"):
            alerts = alerts.filter(customer__external_id=params["customer"])
        return alerts

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        alert = services.usage_alert_create(**serializer.validated_data)
        return Response(self.get_serializer(alert).data, status=status.HTTP_201_CREATED)


class AlertDetail(generics.RetrieveAPIView):
    serializer_class = UsageAlertSerializer

    def get_object(self):
        return selectors.usage_alert_get(alert_id=self.kwargs["pk"])


class _AlertTransition(APIView):
    serializer_class = UsageAlertSerializer
    transition = None

    @extend_schema(request=None, responses=UsageAlertSerializer)
    def post(self, request, pk: int):
        alert = type(self).transition(alert=selectors.usage_alert_get(alert_id=pk))
        return Response(UsageAlertSerializer(selectors.usage_alert_get(alert_id=alert.pk)).data)


class AlertActivate(_AlertTransition):
    transition = staticmethod(services.usage_alert_activate)


class AlertDeactivate(_AlertTransition):
    transition = staticmethod(services.usage_alert_deactivate)


class AlertArchive(_AlertTransition):
    """Final: an archived alert can't be activated again (409 alert_archived)."""

    transition = staticmethod(services.usage_alert_archive)


@extend_schema(
    parameters=[
        OpenApiParameter("alert", OpenApiTypes.INT),
        OpenApiParameter("customer", str, description="A customer's external_id."),
    ]
)
class AlertTriggerList(generics.ListAPIView):
    serializer_class = AlertTriggerSerializer

    def get_queryset(self):
        triggers = selectors.alert_trigger_list()
        alert = _int_param(self.request, "alert")
        if alert is not None:
            triggers = triggers.filter(alert_id=alert)
        if self.request.query_params.get("customer"):
            triggers = triggers.filter(customer__external_id=self.request.query_params["customer"])
        return triggers
