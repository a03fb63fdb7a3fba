from datetime import UTC, datetime

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import Customer
from billing.periods import validate_timezone
from core.errors import DomainError, InvalidInput, NotFound
from metering import selectors, services
from metering.models import MeterStatus
from metering.windows import TooManyWindows

from .pagination import EventCursorPagination
from .serializers import (
    EventSerializer,
    MeterInputSerializer,
    MeterSerializer,
    SummarySerializer,
    summary_data,
)

# 1,000 events of at most 64 KiB of properties each, plus their envelopes.
MAX_BODY_BYTES = 80 * 1024 * 1024


def _datetime_param(request, name: str, *, required: bool = False) -> datetime | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        if required:
            raise InvalidInput(f"`{name}` is required.", code="missing_parameter")
        return None
    try:
        value = datetime.fromisoformat(raw.replace(" ", "+"))  # a bare + in a URL is a space
    except ValueError:
        raise InvalidInput(
            f"`{name}` must be an ISO 8601 timestamp.", code="invalid_datetime"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"`{name}` needs a time zone offset (or Z).", code="naive_datetime")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"`{name}` is out of range.", code="invalid_datetime") from None


def _text_param(request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    if "\x00" in raw:
        raise InvalidInput(f"`{name}` must not contain NUL characters.", code="invalid_parameter")
    return raw


def _customer_id(external_id: str) -> int | None:
    return Customer.objects.filter(external_id=external_id).values_list("id", flat=True).first()


def _meter_id(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput("`meter` is a meter id.", code="invalid_meter") from None


class EventListIngest(generics.ListAPIView):
    """GET: events newest first (R-M7). POST: one event or {"events": [...]} (R-M8)."""

    serializer_class = EventSerializer
    pagination_class = EventCursorPagination
    filter_backends = []
    parser_classes = [JSONParser]
    row_filter = None

    def get_queryset(self):
        customer_id = None
        customer = _text_param(self.request, "customer")
        if customer:
            customer_id = _customer_id(customer)
            if customer_id is None:
                return selectors.event_list().none()
        meter = None
        meter_param = _text_param(self.request, "meter")
        if meter_param:
            meter = selectors.meter_get(meter_id=_meter_id(meter_param))
            compiled = selectors.meter_compiled(meter)
            self.row_filter = lambda event: selectors.event_counted_by(compiled, event)
        return selectors.event_list(
            customer_id=customer_id,
            name=_text_param(self.request, "name"),
            since=_datetime_param(self.request, "since"),
            until=_datetime_param(self.request, "until"),
            meter=meter,
        )

    def post(self, request):
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise DomainError(
                f"The body is over {MAX_BODY_BYTES} bytes.", code="payload_too_large", status=413
            )
        try:
            body = request.data
        except RecursionError:
            raise ParseError("JSON nested too deeply.") from None
        if type(body) is dict and "events" in body:
            events = body["events"]
        elif type(body) is dict:
            events = [body]
        else:
            raise InvalidInput('Send one event object or {"events": [...]}.', code="invalid_body")
        result = services.event_ingest_batch(events=events)
        return Response(result.as_dict(), status=status.HTTP_200_OK)


class MeterListCreate(generics.ListCreateAPIView):
    serializer_class = MeterSerializer
    filter_backends = []

    def get_queryset(self):
        wanted = self.request.query_params.get("status", MeterStatus.ACTIVE)
        if wanted not in (*MeterStatus.values, "all"):
            raise InvalidInput("`status` is active, archived or all.", code="invalid_status")
        return selectors.meter_list(status=None if wanted == "all" else wanted)

    def create(self, request, *args, **kwargs):
        serializer = MeterInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        meter = services.meter_create(**serializer.validated_data)
        return Response(MeterSerializer(meter).data, status=status.HTTP_201_CREATED)


class MeterDetail(generics.RetrieveUpdateAPIView):
    serializer_class = MeterSerializer
    http_method_names = ["get", "patch", "head", "options"]

    def get_object(self):
        return selectors.meter_get(meter_id=self.kwargs["meter_id"])

    def update(self, request, *args, **kwargs):
        serializer = MeterInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        meter = services.meter_update(meter=self.get_object(), **serializer.validated_data)
        return Response(MeterSerializer(meter).data)


class MeterArchive(APIView):
    @extend_schema(request=None, responses=MeterSerializer)
    def post(self, request, meter_id: int):
        meter = services.meter_archive(meter=selectors.meter_get(meter_id=meter_id))
        return Response(MeterSerializer(meter).data)


class MeterSummaries(APIView):
    """Usage per local hour / day / week / month (R-M7), per customer or all customers."""

    @extend_schema(
        parameters=[
            OpenApiParameter("start", OpenApiTypes.DATETIME, required=True),
            OpenApiParameter("end", OpenApiTypes.DATETIME, required=True),
            OpenApiParameter("window", str, enum=["hour", "day", "week", "month"]),
            OpenApiParameter("timezone", str, description="IANA zone, default UTC"),
            OpenApiParameter("customer", str, description="external_id; all customers if absent"),
        ],
        responses=SummarySerializer,
    )
    def get(self, request, meter_id: int):
        meter = selectors.meter_get(meter_id=meter_id)
        start = _datetime_param(request, "start", required=True)
        end = _datetime_param(request, "end", required=True)
        if end <= start:
            raise InvalidInput("`end` must be after `start`.", code="invalid_range")
        window = request.query_params.get("window", "day")
        if window not in ("hour", "day", "week", "month"):
            raise InvalidInput("`window` is hour, day, week or month.", code="invalid_window")
        tz = _text_param(request, "timezone") or "UTC"
        try:
            validate_timezone(tz)
        except ValueError as exc:
            raise InvalidInput(str(exc), code="invalid_timezone") from None
        customer_id = None
        customer = _text_param(request, "customer")
        if customer:
            customer_id = _customer_id(customer)
            if customer_id is None:
                raise NotFound(f"No customer {customer!r}.", code="unknown_customer")
        try:
            summary = selectors.meter_summaries(
                meter=meter,
                start=start,
                end=end,
                window=window,
                tz=tz,
                customer_id=customer_id,
            )
        except TooManyWindows as exc:
            raise InvalidInput(
                str(exc),
                code="too_many_windows",
                details={"limit": selectors.MAX_SUMMARY_WINDOWS},
            ) from None
        except ValueError as exc:  # dates beyond the calendar's range
            raise InvalidInput(str(exc), code="invalid_range") from None
        return Response(summary_data(summary))
