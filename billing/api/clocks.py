"""Simulation clocks (API.md "Clocks", R-A5): create, list, read, advance."""

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import clocks
from billing.models import Clock
from core.errors import NotFound


class ClockSerializer(serializers.ModelSerializer):
    subscriptions = serializers.IntegerField(source="subscriptions.count", read_only=True)

    class Meta:
        model = Clock
        fields = ["id", "name", "now", "subscriptions", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class ClockAdvanceSerializer(serializers.Serializer):
    to = serializers.DateTimeField()


class ClockStepSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    ran = serializers.ListField(child=serializers.DictField())


class ClockAdvanceResultSerializer(serializers.Serializer):
    clock = ClockSerializer()
    advanced_from = serializers.DateTimeField(source="started_from")
    steps = ClockStepSerializer(many=True)


def advance_representation(result: clocks.ClockAdvance) -> dict:
    return ClockAdvanceResultSerializer(result).data


class ClockListCreate(generics.ListCreateAPIView):
    serializer_class = ClockSerializer

    def get_queryset(self):
        return Clock.objects.order_by("id")

    def create(self, request, *args, **kwargs):
        data = ClockSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        clock = clocks.clock_create(
            name=data.validated_data["name"], now=data.validated_data.get("now")
        )
        return Response(ClockSerializer(clock).data, status=status.HTTP_201_CREATED)


def _clock(pk: int) -> Clock:
    clock = Clock.objects.filter(pk=pk).first()
    if clock is None:
        raise NotFound(f"No clock {pk}.", code="unknown_clock")
    return clock


class ClockDetail(generics.RetrieveAPIView):
    serializer_class = ClockSerializer

    def get_object(self):
        return _clock(self.kwargs["pk"])


class ClockAdvance(APIView):
    """Move the clock forward; runs, in time order, every period close, quota reset, billing
    threshold and alert evaluation due on the way, and reports what ran (422
    ``clock_backwards`` for an instant before the clock's)."""

    @extend_schema(request=ClockAdvanceSerializer, responses=ClockAdvanceResultSerializer)
    def post(self, request, pk: int):
        data = ClockAdvanceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = clocks.clock_advance(clock=_clock(pk), to=data.validated_data["to"])
        return Response(advance_representation(result))
