"""The add-on purchase form shared by the customer pages and the console (R-L5, R-L6)."""

from django import forms

from .services import MAX_ADDON_UNITS


class AddOnQuantityForm(forms.Form):
    quantity = forms.IntegerField(min_value=1, max_value=MAX_ADDON_UNITS, initial=1)
