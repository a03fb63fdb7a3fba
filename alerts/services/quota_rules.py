"""Quota alert rules (R-L4): 90 % and 100 % by default for every finite quota."""

from collections.abc import Iterable

from django.conf import settings

from quotas.models import OfferService, ServiceKind

from ..models import QuotaAlertRule


def default_percents() -> list[int]:
    return list(settings.KOTA_QUOTA_ALERT_DEFAULT_PERCENTS)


def quota_offer_services() -> "Iterable[OfferService]":
    """Offer services a quota alert can watch: metered, with a finite quantity."""
    return OfferService.objects.filter(included__isnull=False).exclude(
        service__group__kind=ServiceKind.ON_OFF
    )


def quota_alert_rules_ensure_defaults(*, offer_service_ids: Iterable[int] | None = None) -> int:
    """Give each finite quota without any rule the default rules; returns how many were made.

    Idempotent and race-safe (the unique constraint ignores a concurrent twin). An offer
    service that has rules keeps them as the operator left them: to silence one, make its
    rules inactive rather than deleting them (with no rule at all the defaults come back).
    """
    candidates = quota_offer_services().filter(quota_alert_rules__isnull=True)
    if offer_service_ids is not None:
        candidates = candidates.filter(pk__in=list(offer_service_ids))
    ids = list(candidates.values_list("pk", flat=True))
    rules = [
        QuotaAlertRule(offer_service_id=pk, percent=percent)
        for pk in ids
        for percent in default_percents()
    ]
    QuotaAlertRule.objects.bulk_create(rules, ignore_conflicts=True)
    return len(rules)
