import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import Clock, Customer, Offer, Subscription, SubscriptionStatus
from core.errors import InvalidInput
from quotas import selectors, services, thresholds

from .serializers import (
    AddOnPurchaseSerializer,
    BillingThresholdsSerializer,
    OfferSerializer,
    OfferUpdateSerializer,
    ServiceGroupSerializer,
    ServiceSerializer,
    SubscriptionCancelSerializer,
    SubscriptionCreateSerializer,
    SubscriptionSerializer,
    charge_representation,
    entitlement_representation,
    thresholds_representation,
    usage_representation,
)


class CreateWithServiceMixin:
    """POST: validate with the serializer, write with a service, answer 201 with the result."""

    create_service = None

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        instance = type(self).create_service(**serializer.validated_data)
        return Response(self.get_serializer(instance).data, status=status.HTTP_201_CREATED)


class ServiceGroupListCreate(CreateWithServiceMixin, generics.ListCreateAPIView):
    serializer_class = ServiceGroupSerializer
    filterset_fields = ["kind", "name"]
    create_service = staticmethod(services.service_group_create)

    def get_queryset(self):
        return selectors.service_group_list()


class ServiceListCreate(CreateWithServiceMixin, generics.ListCreateAPIView):
    serializer_class = ServiceSerializer
    filterset_fields = ["group", "group__kind", "meter", "code"]
    create_service = staticmethod(services.service_create)

    def get_queryset(self):
        return selectors.service_list()


class OfferListCreate(CreateWithServiceMixin, generics.ListCreateAPIView):
    serializer_class = OfferSerializer
    filterset_fields = ["code", "currency", "billing_interval", "is_active", "level"]
    create_service = staticmethod(services.offer_create)

    def get_queryset(self):
        return selectors.offer_list()

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "addons": list(selectors.addon_list())}

    def create(self, request, *args, **kwargs):
        response = super().create(request, *args, **kwargs)
        offer = selectors.offer_get(code=response.data["code"])
        response.data = OfferSerializer(offer).data
        return response


class OfferDetail(generics.RetrieveUpdateAPIView):
    serializer_class = OfferUpdateSerializer
    http_method_names = ["get", "patch", "head", "options"]

    def get_object(self):
        return selectors.offer_get(code=self.kwargs["code"])

    def update(self, request, *args, **kwargs):
        serializer = self.get_serializer(self.get_object(), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        services.offer_update(offer=serializer.instance, **serializer.validated_data)
        return Response(OfferUpdateSerializer(selectors.offer_get(code=kwargs["code"])).data)


# --------------------------------------------------------------------------- subscriptions


class SubscriptionFilter(django_filters.FilterSet):
    customer = django_filters.CharFilter(field_name="customer__external_id")
    offer = django_filters.CharFilter(field_name="offer__code")
    status = django_filters.ChoiceFilter(choices=SubscriptionStatus.choices)
    clock = django_filters.NumberFilter(field_name="clock_id")
    started_after = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = Subscription
        fields = ["customer", "offer", "status", "clock"]


def _lookup(model, field: str, value, code: str, what: str):
    obj = model.objects.filter(**{field: value}).first()
    if obj is None:
        raise InvalidInput(f"No {what} {value!r}.", code=code, details={"field": what})
    return obj


class SubscriptionListCreate(generics.ListCreateAPIView):
    """Subscriptions: list (filters: customer, offer, status, clock) and create."""

    serializer_class = SubscriptionSerializer
    filterset_class = SubscriptionFilter

    def get_queryset(self):
        return selectors.subscription_list()

    @extend_schema(request=SubscriptionCreateSerializer, responses=SubscriptionSerializer)
    def post(self, request, *args, **kwargs):
        data = SubscriptionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        clock_id = values.get("clock")
        subscription = services.subscription_start(
            customer=_lookup(
                Customer, "external_id", values["customer"], "unknown_customer", "customer"
            ),
            offer=_lookup(Offer, "code", values["offer"], "unknown_offer", "offer"),
            start=values.get("start"),
            clock=None
            if clock_id is None
            else _lookup(Clock, "id", clock_id, "unknown_clock", "clock"),
        )
        subscription = selectors.subscription_get(subscription_id=subscription.id)
        return Response(SubscriptionSerializer(subscription).data, status=status.HTTP_201_CREATED)


class SubscriptionDetail(generics.RetrieveAPIView):
    serializer_class = SubscriptionSerializer

    def get_object(self):
        return selectors.subscription_get(subscription_id=self.kwargs["pk"])


class SubscriptionCancel(APIView):
    @extend_schema(request=SubscriptionCancelSerializer, responses=SubscriptionSerializer)
    def post(self, request, pk: int):
        subscription = selectors.subscription_get(subscription_id=pk)
        data = SubscriptionCancelSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.subscription_cancel(subscription=subscription, at=data.validated_data["at"])
        return Response(SubscriptionSerializer(subscription).data)


class SubscriptionUsageView(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, pk: int):
        subscription = selectors.subscription_get(subscription_id=pk)
        usage = selectors.subscription_usage(subscription=subscription)
        return Response(usage_representation(usage))


class SubscriptionAddOns(APIView):
    """Buy add-on units: the quota rises at once; answers the prorated charge (R-L5, R-L6).

    422 ``addon_not_allowed`` when the plan's level is below the add-on's (or the offer lacks
    the service), 422 ``subscription_not_active``, 400 ``unknown_addon``/``invalid_quantity``.
    """

    @extend_schema(request=AddOnPurchaseSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request, pk: int):
        subscription = selectors.subscription_get(subscription_id=pk)
        data = AddOnPurchaseSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        purchase = services.addon_purchase(
            subscription=subscription,
            addon_code=data.validated_data["addon"],
            quantity=data.validated_data["quantity"],
            idempotency_key=data.validated_data.get("idempotency_key")
            or request.headers.get("Idempotency-Key"),
        )
        return Response(charge_representation(purchase), status=status.HTTP_201_CREATED)


class EntitlementView(APIView):
    """May the customer use the service now? The hot path: two indexed single-row reads.

    Errors (404): ``unknown_customer``, ``unknown_service``, ``no_subscription`` (no live
    subscription of the customer includes the service).
    """

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, external_id: str, service_code: str):
        entitlement = selectors.entitlement_check(
            customer_external_id=external_id, service_code=service_code
        )
        return Response(entitlement_representation(entitlement))


class SubscriptionBillingThresholds(APIView):
    """A subscription's billing thresholds: a monetary ``amount_gte`` (greater than its fixed
    fees, R-T4) and one ``usage_gte`` per item (R-T6). Crossing one issues an invoice at once
    (R-T1); trials (R-T2) and the last 24 h of a period (R-T3) are skipped.

    422 ``threshold_below_fixed_fees``, 422 ``duplicate_usage_threshold``, 400
    ``unknown_service`` / ``invalid_threshold``.
    """

    @extend_schema(responses=BillingThresholdsSerializer)
    def get(self, request, pk: int):
        subscription = selectors.subscription_get(subscription_id=pk)
        return Response(
            thresholds_representation(thresholds.billing_thresholds_get(subscription=subscription))
        )

    @extend_schema(request=BillingThresholdsSerializer, responses=BillingThresholdsSerializer)
    def put(self, request, pk: int):
        subscription = selectors.subscription_get(subscription_id=pk)
        data = BillingThresholdsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        result = thresholds.billing_thresholds_set(
            subscription=subscription,
            amount_gte=values["amount_gte"],
            reset_billing_cycle_anchor=values["reset_billing_cycle_anchor"],
            items=[dict(item) for item in values["items"]],
        )
        return Response(thresholds_representation(result))
