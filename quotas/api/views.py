from rest_framework import generics, status
from rest_framework.response import Response

from quotas import selectors, services

from .serializers import (
    OfferSerializer,
    OfferUpdateSerializer,
    ServiceGroupSerializer,
    ServiceSerializer,
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
