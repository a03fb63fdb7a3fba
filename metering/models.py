import builtins

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from billing.models import Customer

from .aggregation import AGGREGATIONS
from .fields import ExactDecimalField
from .filters import FilterError, parse_filter


class Aggregation(models.TextChoices):
    COUNT = "count"
    SUM = "sum"
    MAX = "max"
    LAST = "last"


class MeterStatus(models.TextChoices):
    ACTIVE = "active"
    ARCHIVED = "archived"


class BackfillStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Meter(models.Model):
    """What to measure: one event name, an aggregation, a property and a filter (R-M1..R-M4).

    Rollups are kept per ``generation``: changing what a meter counts bumps it, so the new
    rollups are built beside the old ones (read and written by generation) and the old ones
    are deleted afterwards, without a long delete while ingestion waits. Back-fill progress is
    stored here; while a back-fill is not ``done`` readers compute from raw events.
    """

    name = models.CharField(max_length=100)
    event_name = models.CharField(max_length=255, db_index=True)
    aggregation = models.CharField(
        max_length=8, choices=Aggregation.choices, default=Aggregation.COUNT
    )
    property = models.CharField(
        max_length=255, blank=True, help_text="Dotted path into properties; not for count."
    )
    unit = models.CharField(max_length=32, blank=True, help_text='Display label, e.g. "calls".')
    filter = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=MeterStatus.choices, default="active")
    archived_at = models.DateTimeField(null=True, blank=True)
    archived_upto = models.BigIntegerField(
        null=True, blank=True, help_text="Highest event row id stored when archived."
    )
    generation = models.PositiveIntegerField(default=0, editable=False)
    backfill_status = models.CharField(
        max_length=8, choices=BackfillStatus.choices, default=BackfillStatus.DONE, editable=False
    )
    backfill_upto = models.BigIntegerField(
        default=0, editable=False, help_text="Back-fill covers stored events up to this row id."
    )
    backfill_cursor = models.BigIntegerField(default=0, editable=False)
    backfill_processed = models.BigIntegerField(default=0, editable=False)
    backfill_total = models.BigIntegerField(default=0, editable=False)
    backfill_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    backfilled_at = models.DateTimeField(null=True, blank=True, editable=False)
    backfill_error = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(aggregation="count") | ~Q(property=""),
                name="meter_property_unless_count",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        if self.aggregation not in AGGREGATIONS:
            return  # the choices validator reports it
        if self.aggregation != Aggregation.COUNT and not self.property.strip():
            raise ValidationError({"property": "A sum, max or last meter needs a property (R-M1)."})
        try:
            parse_filter(self.filter)
        except FilterError as exc:
            raise ValidationError({"filter": str(exc)}) from exc

    @builtins.property  # the `property` field shadows the builtin in this class body
    def backfill_percent(self) -> int:
        if self.backfill_status == BackfillStatus.DONE:
            return 100
        if not self.backfill_total:
            return 0
        return min(100, self.backfill_processed * 100 // self.backfill_total)


class Event(models.Model):
    """A usage event as received (R-M8); `event_id` refuses duplicates forever."""

    event_id = models.CharField(max_length=255, unique=True)
    name = models.CharField(max_length=255)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="events")
    timestamp = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["customer", "name", "timestamp"], name="event_cust_name_ts"),
            models.Index(fields=["name", "timestamp"], name="event_name_ts"),
            models.Index(fields=["timestamp"], name="event_ts"),
        ]

    def __str__(self) -> str:
        return self.event_id


class Granularity(models.IntegerChoices):
    """Rollup bucket sizes in seconds; every real zone offset is a multiple of 15 minutes."""

    QUARTER_HOUR = 900, "15 minutes"
    HOUR = 3600, "1 hour"
    DAY = 86400, "1 day"


class MeterRollup(models.Model):
    """The mergeable aggregation state (``aggregation.Partial``) of one meter for one customer
    over one UTC bucket, written in the ingesting transaction; usage is read from these."""

    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, db_index=False)
    generation = models.PositiveIntegerField()
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, db_index=False)
    granularity = models.PositiveIntegerField(choices=Granularity.choices)
    bucket_start = models.DateTimeField()
    count = models.BigIntegerField(default=0)
    total = ExactDecimalField(default=0)
    maximum = ExactDecimalField(null=True)
    last_at = models.DateTimeField(null=True)
    last_key = models.CharField(max_length=255, blank=True, default="")
    last_value = ExactDecimalField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["meter", "generation", "customer", "granularity", "bucket_start"],
                name="rollup_unique_bucket",
            ),
            models.CheckConstraint(
                condition=Q(granularity__in=[900, 3600, 86400]), name="rollup_granularity"
            ),
            models.CheckConstraint(condition=Q(count__gte=0), name="rollup_count_gte_0"),
        ]
        indexes = [
            models.Index(
                fields=["meter", "generation", "granularity", "bucket_start"],
                name="rollup_meter_bucket",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.meter_id}/{self.customer_id} {self.granularity}s @ {self.bucket_start}"
