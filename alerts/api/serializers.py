from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.models import Customer
from core.numbers import decimal_str
from metering.models import Meter

from ..models import AlertTrigger, Recurrence, StaffGroup, UsageAlert


@extend_schema_field({"type": "string", "example": "1000"})
class QuantityField(serializers.DecimalField):
    """A decimal travelling as a string without trailing zeros ("1000", "0.5")."""

    def __init__(self, **kwargs):
        super().__init__(max_digits=38, decimal_places=12, **kwargs)

    def to_representation(self, value):
        return decimal_str(Decimal(value))


class ActionsSerializer(serializers.Serializer):
    """What a firing does (R-A2)."""

    webhook = serializers.BooleanField(default=True, source="send_webhook")
    email_customer = serializers.BooleanField(default=False)
    customer_emails = serializers.ListField(
        child=serializers.EmailField(), default=list, max_length=50
    )
    staff_group = serializers.SlugRelatedField(
        slug_field="name", queryset=StaffGroup.objects.all(), allow_null=True, default=None
    )
    remove_access = serializers.BooleanField(default=False)

    def to_representation(self, alert: UsageAlert):
        return {
            "webhook": alert.send_webhook,
            "email_customer": alert.email_customer,
            "customer_emails": alert.customer_email_list,
            "staff_group": alert.staff_group.name if alert.staff_group_id else None,
            "remove_access": alert.remove_access,
        }


class UsageAlertSerializer(serializers.ModelSerializer):
    meter = serializers.PrimaryKeyRelatedField(queryset=Meter.objects.all())
    customer = serializers.SlugRelatedField(
        slug_field="external_id",
        queryset=Customer.objects.all(),
        allow_null=True,
        required=False,
        help_text="null: every customer.",
    )
    threshold = QuantityField(min_value=Decimal("0.000000000001"))
    recurrence = serializers.ChoiceField(choices=Recurrence.choices, default=Recurrence.ONE_TIME)
    actions = ActionsSerializer(source="*", required=False)

    class Meta:
        model = UsageAlert
        fields = [
            "id",
            "title",
            "meter",
            "customer",
            "threshold",
            "recurrence",
            "status",
            "actions",
            "created_at",
        ]
        read_only_fields = ["status", "created_at"]

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        if "customer_emails" in values:
            values["customer_emails"] = "\n".join(values["customer_emails"])
        return values


class AlertTriggerSerializer(serializers.ModelSerializer):
    customer = serializers.CharField(source="customer.external_id")
    value = QuantityField()
    threshold = QuantityField()

    class Meta:
        model = AlertTrigger
        fields = [
            "id",
            "alert",
            "customer",
            "value",
            "threshold",
            "window_start",
            "window_end",
            "triggered_at",
        ]
