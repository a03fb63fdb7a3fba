from rest_framework import serializers

from core.numbers import decimal_str
from metering.models import Aggregation, Event, Meter


class MeterInputSerializer(serializers.Serializer):
    """Shapes and types only; the rules (R-M1 property, R-M3 filter) are the service's."""

    name = serializers.CharField(max_length=100)
    event_name = serializers.CharField(max_length=255)
    aggregation = serializers.ChoiceField(choices=Aggregation.choices, default=Aggregation.COUNT)
    property = serializers.CharField(max_length=255, allow_blank=True, required=False)
    unit = serializers.CharField(max_length=32, allow_blank=True, required=False)
    filter = serializers.JSONField(allow_null=True, required=False)


class MeterSerializer(serializers.ModelSerializer):
    backfill = serializers.SerializerMethodField()

    class Meta:
        model = Meter
        fields = [
            "id",
            "name",
            "event_name",
            "aggregation",
            "property",
            "unit",
            "filter",
            "status",
            "archived_at",
            "backfill",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_backfill(self, meter: Meter) -> dict:
        return {
            "status": meter.backfill_status,
            "processed": meter.backfill_processed,
            "total": meter.backfill_total,
            "percent": meter.backfill_percent,
            "finished_at": meter.backfilled_at,
        }


class EventSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="event_id")
    customer = serializers.CharField(source="customer.external_id")

    class Meta:
        model = Event
        fields = ["id", "name", "customer", "timestamp", "properties", "received_at"]
        read_only_fields = fields


def summary_data(summary) -> dict:
    def text(value):
        return None if value is None else decimal_str(value)

    return {
        "data": [
            {"start": w.start.isoformat(), "end": w.end.isoformat(), "value": text(w.value)}
            for w in summary.windows
        ],
        "total": text(summary.total_value),
    }


class SummaryWindowSerializer(serializers.Serializer):
    """Schema of one window of GET /meters/{id}/summaries (the view builds the dict)."""

    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    value = serializers.CharField(allow_null=True)


class SummarySerializer(serializers.Serializer):
    data = SummaryWindowSerializer(many=True)
    total = serializers.CharField(allow_null=True)
