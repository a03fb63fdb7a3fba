from rest_framework import generics, status
from rest_framework.response import Response

from billing import selectors, services

from .filters import CustomerFilter
from .serializers import CustomerSerializer, CustomerUpdateSerializer


class CustomerListCreate(generics.ListCreateAPIView):
    serializer_class = CustomerSerializer
    filterset_class = CustomerFilter

    def get_queryset(self):
        return selectors.customer_list()

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        customer = services.customer_create(**serializer.validated_data)
        return Response(CustomerSerializer(customer).data, status=status.HTTP_201_CREATED)


class CustomerDetail(generics.RetrieveUpdateAPIView):
    serializer_class = CustomerUpdateSerializer
    http_method_names = ["get", "patch", "head", "options"]

    def get_object(self):
        return selectors.customer_get(external_id=self.kwargs["external_id"])

    def update(self, request, *args, **kwargs):
        serializer = self.get_serializer(self.get_object(), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        customer = services.customer_update(
            customer=serializer.instance, **serializer.validated_data
        )
        return Response(CustomerUpdateSerializer(customer).data)
