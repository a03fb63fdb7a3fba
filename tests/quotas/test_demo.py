"""load_demo: the rule book's examples and the add-ons of R-L5, idempotent."""

import pytest
from django.core.management import call_command

from billing.models import Offer, Subscription
from quotas.demo import demo_load
from quotas.models import AddOn
from quotas.selectors import addons_for_offer, offer_get

pytestmark = pytest.mark.django_db


def test_demo_add_ons_are_for_business_and_above_and_loading_twice_changes_nothing():
    demo_load()
    counts = (Offer.objects.count(), Subscription.objects.count(), AddOn.objects.count())
    call_command("load_demo")
    assert (Offer.objects.count(), Subscription.objects.count(), AddOn.objects.count()) == counts
    assert set(AddOn.objects.values_list("code", "min_level")) == {
        ("more-actions", 2),
        ("more-automations", 2),
    }
    available = {
        code: [a.code for a in addons_for_offer(offer_get(code=code))]
        for code in ("free", "unlimited", "business", "enterprise")
    }
    assert available == {
        "free": [],
        "unlimited": [],
        "business": ["more-actions"],  # automations are unlimited from Business up (R-L1)
        "enterprise": ["more-actions"],
    }
