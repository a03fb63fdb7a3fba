from django.db import models
from django.db.models import Q

from billing.models import Customer


class Aggregation(models.TextChoices):
    COUNT = "count"
    SUM = "sum"
    MAX = "max"
    LAST = "last"


class MeterStatus(models.TextChoices):
    ACTIVE = "active"
    ARCHIVED = "archived"


class Meter(models.Model):
    """What to measure: one event name, an aggregation, a property and a filter (R-M1..R-M4)."""

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
