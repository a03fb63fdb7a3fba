"""Console forms for the meter chart, the events explorer and the meter filter editor (R-M7,
R-M3). They only parse and check input; reads go through ``selectors``."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django import forms
from unfold.widgets import (
    INPUT_CLASSES,
    SELECT_CLASSES,
    UnfoldAdminSelectWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
)

from billing import selectors as billing_selectors
from billing.periods import validate_timezone
from core.errors import NotFound

from . import selectors
from .models import Meter
from .selectors import CHART_WINDOWS

MAX_CHART_METERS = 10
DEFAULT_CHART_DAYS = 30


def _customer_id(external_id: str) -> int:
    try:
        return billing_selectors.customer_get(external_id=external_id).id
    except NotFound as exc:
        raise forms.ValidationError(str(exc)) from None


class _DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self):
        super().__init__(attrs={"class": " ".join(INPUT_CLASSES)}, format="%Y-%m-%d")


class _DateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self):
        super().__init__(attrs={"class": " ".join(INPUT_CLASSES)}, format="%Y-%m-%dT%H:%M")


class MeterChartForm(forms.Form):
    """What to chart: meters, whole local days ``start``..``end`` (inclusive), a window, a
    time zone and optionally one customer."""

    meters = forms.ModelMultipleChoiceField(
        queryset=Meter.objects.none(),
        widget=forms.SelectMultiple(attrs={"class": " ".join(SELECT_CLASSES), "size": 6}),
        help_text=f"Up to {MAX_CHART_METERS}; hold Ctrl (or ⌘) to pick several.",
    )
    start = forms.DateField(widget=_DateInput())
    end = forms.DateField(widget=_DateInput(), help_text="Included.")
    window = forms.ChoiceField(
        choices=[(w, w) for w in CHART_WINDOWS], widget=UnfoldAdminSelectWidget
    )
    timezone = forms.CharField(
        initial="UTC", widget=UnfoldAdminTextInputWidget, help_text="IANA name, e.g. Europe/Paris."
    )
    customer = forms.CharField(
        required=False,
        widget=UnfoldAdminTextInputWidget,
        help_text="A customer's external ID; empty for all customers.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["meters"].queryset = selectors.meter_list(status=None)

    @classmethod
    def defaults(cls, today) -> dict:
        """The last ``DEFAULT_CHART_DAYS`` days by day in UTC, for the first active meters."""
        first_meters = selectors.meter_list().values_list("pk", flat=True)[:3]
        return {
            "meters": [str(pk) for pk in first_meters],
            "start": (today - timedelta(days=DEFAULT_CHART_DAYS - 1)).isoformat(),
            "end": today.isoformat(),
            "window": "day",
            "timezone": "UTC",
            "customer": "",
        }

    def clean_meters(self):
        meters = self.cleaned_data["meters"]
        if len(meters) > MAX_CHART_METERS:
            raise forms.ValidationError(f"Choose at most {MAX_CHART_METERS} meters.")
        return meters

    def clean_timezone(self):
        try:
            return validate_timezone(self.cleaned_data["timezone"].strip())
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_customer(self):
        external_id = self.cleaned_data["customer"].strip()
        return _customer_id(external_id) if external_id else None

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            self.add_error("end", "The end is before the start.")
        return data

    def local_range(self) -> tuple[datetime, datetime]:
        """``[start 00:00, day after end 00:00)`` in the chosen zone."""
        zone = ZoneInfo(self.cleaned_data["timezone"])
        start = datetime.combine(self.cleaned_data["start"], time(), tzinfo=zone)
        end = datetime.combine(self.cleaned_data["end"] + timedelta(days=1), time(), tzinfo=zone)
        return start, end


class EventExplorerForm(forms.Form):
    """Filters of the events explorer; every one is optional (R-M7)."""

    customer = forms.CharField(
        required=False, widget=UnfoldAdminTextInputWidget, help_text="External ID."
    )
    name = forms.CharField(required=False, label="Event name", widget=UnfoldAdminTextInputWidget)
    meter = forms.ModelChoiceField(
        queryset=Meter.objects.none(),
        required=False,
        widget=UnfoldAdminSelectWidget,
        help_text="Only the events the meter counts (its event name, filter and property).",
    )
    since = forms.DateTimeField(required=False, widget=_DateTimeInput(), help_text="UTC.")
    until = forms.DateTimeField(required=False, widget=_DateTimeInput(), help_text="UTC, excluded.")
    event_id = forms.CharField(
        required=False,
        label="Event ID",
        widget=UnfoldAdminTextInputWidget,
        help_text="Exact match.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["meter"].queryset = selectors.meter_list(status=None)

    def clean_customer(self):
        external_id = self.cleaned_data["customer"].strip()
        return _customer_id(external_id) if external_id else None

    def event_list_criteria(self) -> dict:
        """Keyword arguments for ``selectors.event_list``."""
        data = self.cleaned_data
        return {
            "customer_id": data["customer"],
            "name": data["name"].strip() or None,
            "meter": data["meter"],
            "since": data["since"],
            "until": data["until"],
            "event_id": data["event_id"].strip() or None,
        }


FILTER_HELP = (
    "Count only the events whose properties match. Each condition is property, comparator, "
    "value; a group joins its conditions with AND or OR, and groups nest. A value that reads "
    "as a number (42, -1.5, 1e3) is stored as a number and compared as one; true and false "
    'are booleans; put a value in double quotes ("42") to compare it as text. An event '
    "without a property used here is not counted (R-M4). Leave empty to count every event."
)


class FilterEditorWidget(UnfoldAdminTextareaWidget):
    """The filter JSON (API.md) in a textarea that ``filter_editor.js`` replaces with a
    structured editor, keeping the textarea as the submitted value and the raw fallback.
    Its template is in the app's templates/: the default form renderer reads app directories,
    not the project's."""

    template_name = "metering/widgets/filter_editor.html"

    class Media:
        js = ["metering/filter_editor.js"]
        css = {"all": ["metering/console.css"]}


class MeterAdminForm(forms.ModelForm):
    """The meter form of the console: the filter through the structured editor. Validation
    stays ``Meter.clean`` (``parse_filter`` names the bad clause)."""

    class Meta:
        model = Meter
        fields = ["name", "event_name", "aggregation", "property", "unit", "filter"]
        widgets = {"filter": FilterEditorWidget}
        help_texts = {"filter": FILTER_HELP}
