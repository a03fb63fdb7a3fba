"""Evaluation of usage alerts (R-A1, R-A3) and quota alerts (R-L4): on ingest and by sweep.

* ``usage_listener`` is a ``metering.hooks`` usage listener: inside the ingest transaction,
  after the rollups (and quotas' balances) are written, it evaluates only the alerts and quota
  rules concerned by the batch and records triggers/firings; their emails, webhooks and
  access blocks are written in the same transaction and sent once it commits. A batch no
  alert or quota rule concerns costs one query.
* ``alerts_evaluate`` evaluates everything (or some customers) at an instant: the beat's
  safety net, and what the simulation-clock machinery calls after advancing a clock (R-A5).

Firing rule (crossing): a threshold fires when the value is ``>= threshold`` and it has no
trigger (firing) yet in its window, exactly once (unique constraint + insert in a savepoint:
a concurrent twin loses). A trigger row exists exactly for the thresholds already crossed,
so "no trigger yet" is "below before this batch" - and a crossing missed earlier is repaired
by the next batch or sweep. A jump across several thresholds (80 % -> 120 %) fires each of
them once. Cost on ingest: one query drops what already fired, one query per meter bounds
the values from day rollups, and exact values are read only where the bound reaches a
threshold; a customer far past (or far below) every threshold costs no meter read.

Windows (``every_period``): the billing period of the customer's live subscription (the most
recently created one) in its offer's zone; a customer without one uses calendar months in
UTC. ``one_time`` alerts have one window per customer, keyed by the alert's creation.
"Now" for a customer on a simulation clock is that clock's time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, Q
from django.utils import timezone

from billing import periods
from billing.models import Customer, Subscription, SubscriptionStatus
from billing.subscriptions import clock_now
from core.numbers import decimal_str
from core.outbox import outbox_publish
from metering.aggregation import Partial
from metering.models import Meter
from metering.selectors import (
    meter_customers_with_usage,
    meter_partial,
    meter_value_upper_bounds,
)
from quotas.balances import balance_partial
from quotas.models import AddOnPurchase, OfferService, ServiceKind, UsageBalance
from quotas.selectors import addons_for_offer
from quotas.services import access_remove, access_restore
from quotas.windows import QuotaTarget, Window

from ..models import (
    AccessBlock,
    AlertStatus,
    AlertTrigger,
    EmailKind,
    QuotaAlertFiring,
    QuotaAlertRule,
    Recurrence,
    UsageAlert,
)
from .emails import customer_recipients, email_delivery_create
from .quota_rules import quota_alert_rules_ensure_defaults

LIVE_STATUSES = (
    SubscriptionStatus.TRIALING,
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.PAST_DUE,
)
BUCKET = timedelta(minutes=15)
# A clock created after an alert: all its usage came after the alert (R-A3).
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)
ZERO = Decimal(0)
SWEEP_CHUNK = 500


def _future_tolerance() -> timedelta:
    # Events may be stamped a little in the future (DESIGN.md §4); they count at once.
    return timedelta(seconds=settings.KOTA_EVENT_FUTURE_TOLERANCE_SECONDS)


# --------------------------------------------------------------------------- customers


@dataclass(frozen=True, slots=True)
class CustomerNow:
    """A customer's "now" (its simulation clock's, R-A5) and the subscription giving periods."""

    customer_id: int
    now: datetime
    subscription: Subscription | None

    @property
    def clock_id(self) -> int | None:
        return self.subscription.clock_id if self.subscription else None

    def billing_window(self) -> tuple[datetime, datetime]:
        sub = self.subscription
        if sub is not None:
            if sub.current_period_start <= self.now < sub.current_period_end:
                return sub.current_period_start, sub.current_period_end
            if self.now >= sub.billing_anchor:
                return periods.period_at(
                    sub.billing_anchor, sub.offer.billing_interval, self.now, sub.offer.timezone
                )
        return periods.reset_window(self.now, "month", "UTC")


def customer_nows(
    customer_ids: Iterable[int], *, at: datetime | None = None
) -> dict[int, CustomerNow]:
    ids = list(customer_ids)
    subscriptions = (
        Subscription.objects.filter(customer_id__in=ids, status__in=LIVE_STATUSES)
        .select_related("offer", "clock")
        .order_by("customer_id", "created_at", "id")
    )
    # The most recent subscription wins, as for metering's event timestamps.
    chosen = {sub.customer_id: sub for sub in subscriptions}
    real_now = timezone.now()
    result = {}
    for pk in ids:
        sub = chosen.get(pk)
        now = at or (clock_now(sub.clock) if sub is not None and sub.clock_id else real_now)
        result[pk] = CustomerNow(pk, now, sub)
    return result


# --------------------------------------------------------------------------- usage alerts


@dataclass(frozen=True, slots=True)
class Span:
    """Where an alert looks for one customer: trigger key and counted range ``[start, end)``."""

    window_start: datetime
    window_end: datetime | None
    start: datetime
    end: datetime


def alert_created_for(alert: UsageAlert, who: CustomerNow) -> datetime:
    """R-A3's creation instant on the customer's time line (its clock's, R-A5)."""
    if who.clock_id is None:
        return alert.created_at
    raw = alert.clock_starts.get(str(who.clock_id))
    return datetime.fromisoformat(raw) if raw else BEGINNING


def alert_span(alert: UsageAlert, who: CustomerNow) -> Span:
    created = alert_created_for(alert, who)
    horizon = who.now + _future_tolerance()
    if alert.recurrence == Recurrence.ONE_TIME:
        return Span(alert.created_at, None, created, horizon)
    start, end = who.billing_window()
    return Span(start, end, max(start, created), min(end, horizon))


@dataclass(slots=True)
class _Candidate:
    alert: UsageAlert
    customer_id: int
    span: Span
    value: Decimal
    now: datetime

    @property
    def key(self) -> tuple[int, int, datetime]:
        return (self.alert.pk, self.customer_id, self.span.window_start)


class _Values:
    """Meter values per (meter, customer, range), read once per evaluation."""

    def __init__(self):
        self._cache: dict[tuple[int, int, datetime, datetime], Partial] = {}

    def partial(self, meter: Meter, customer_id: int, start: datetime, end: datetime) -> Partial:
        key = (meter.pk, customer_id, start, end)
        if key not in self._cache:
            self._cache[key] = (
                meter_partial(meter=meter, customer_id=customer_id, start=start, end=end)
                if start < end
                else Partial()
            )
        return self._cache[key]


def _touches(deltas: Sequence[Any], span: Span) -> bool:
    return any(d.bucket_start < span.end and d.bucket_start + BUCKET > span.start for d in deltas)


def _usage_candidates(
    alerts: Sequence[UsageAlert],
    customer_ids: Iterable[int],
    nows: dict[int, CustomerNow],
    values: _Values,
    deltas: dict[tuple[int, int], list[Any]] | None = None,
) -> list[_Candidate]:
    """(alert, customer) pairs with no trigger yet in their window whose value reached the
    threshold: i.e. that crossed it (in this batch, or earlier and missed). On ingest, only
    pairs whose range this batch touched.

    Cheap first: one query drops the pairs that already fired, one query per meter bounds
    the values from the day rollups; exact values are read only for pairs the bound can't
    rule out.
    """
    pairs = []
    for customer_id in customer_ids:
        who = nows[customer_id]
        for alert in alerts:
            if alert.customer_id not in (None, customer_id):
                continue
            span = alert_span(alert, who)
            if span.start >= span.end:
                continue
            if deltas is not None and not _touches(
                deltas.get((alert.meter_id, customer_id), ()), span
            ):
                continue
            pairs.append(_Candidate(alert, customer_id, span, ZERO, who.now))
    if not pairs:
        return []
    fired = set(
        AlertTrigger.objects.filter(
            alert_id__in={p.alert.pk for p in pairs},
            customer_id__in={p.customer_id for p in pairs},
            window_start__in={p.span.window_start for p in pairs},
        ).values_list("alert_id", "customer_id", "window_start")
    )
    pairs = [p for p in pairs if p.key not in fired]
    by_meter: dict[int, list[_Candidate]] = defaultdict(list)
    for p in pairs:
        by_meter[p.alert.meter_id].append(p)
    candidates = []
    for meter_pairs in by_meter.values():
        meter = meter_pairs[0].alert.meter
        bounds = meter_value_upper_bounds(
            meter=meter,
            customer_ids={p.customer_id for p in meter_pairs},
            start=min(p.span.start for p in meter_pairs),
            end=max(p.span.end for p in meter_pairs),
        )
        for p in meter_pairs:
            if bounds is not None and bounds.get(p.customer_id, ZERO) < p.alert.threshold:
                continue
            partial = values.partial(meter, p.customer_id, p.span.start, p.span.end)
            value = partial.value(meter.aggregation)
            if value is not None and value >= p.alert.threshold:
                p.value = value
                candidates.append(p)
    return candidates


def _insert_once(model, **fields):
    """Insert a row guarded by a unique constraint; None if it exists (or a twin won)."""
    try:
        with transaction.atomic():
            return model.objects.create(**fields)
    except IntegrityError:
        return None


def _record_triggers(
    candidates: list[_Candidate], nows: dict[int, CustomerNow]
) -> list[AlertTrigger]:
    if not candidates:
        return []
    existing = set(
        AlertTrigger.objects.filter(
            alert_id__in={c.alert.pk for c in candidates},
            customer_id__in={c.customer_id for c in candidates},
            window_start__in={c.span.window_start for c in candidates},
        ).values_list("alert_id", "customer_id", "window_start")
    )
    created = []
    for c in candidates:
        if c.key in existing:
            continue
        trigger = _insert_once(
            AlertTrigger,
            alert=c.alert,
            customer_id=c.customer_id,
            window_start=c.span.window_start,
            window_end=c.span.window_end,
            threshold=c.alert.threshold,
            value=c.value,
            triggered_at=c.now,
        )
        if trigger is not None:
            created.append(trigger)
    if created:
        _trigger_actions(created, nows)
    return created


def _trigger_actions(triggers: list[AlertTrigger], nows: dict[int, CustomerNow]) -> None:
    """R-A2: webhook, customer email, staff email, access removal — in this transaction."""
    customers = Customer.objects.in_bulk({t.customer_id for t in triggers})
    for trigger in triggers:
        alert, customer = trigger.alert, customers[trigger.customer_id]
        trigger.customer = customer
        payload = alert_trigger_payload(trigger)
        if alert.send_webhook:
            outbox_publish(
                type="alert.triggered",
                payload=payload,
                customer_external_id=customer.external_id,
                occurred_at=trigger.triggered_at,
            )
        context = {"alert": alert, "trigger": trigger, "customer": customer, "data": payload}
        if alert.email_customer:
            email_delivery_create(
                kind=EmailKind.USAGE_ALERT,
                key=f"usage_alert:{trigger.pk}",
                to=alert.customer_email_list or customer_recipients(customer),
                template="alerts/email/usage_alert",
                context=context,
                customer=customer,
            )
        if alert.staff_group_id:
            email_delivery_create(
                kind=EmailKind.STAFF_ALERT,
                key=f"staff_alert:{trigger.pk}",
                to=alert.staff_group.emails,
                template="alerts/email/staff_alert",
                context=context,
                customer=customer,
            )
        if alert.remove_access:
            _block_access(trigger, nows[trigger.customer_id])


def alert_trigger_payload(trigger: AlertTrigger) -> dict[str, Any]:
    alert = trigger.alert
    return {
        "trigger": trigger.pk,
        "alert": alert.pk,
        "title": alert.title,
        "meter": alert.meter_id,
        "customer": trigger.customer.external_id,
        "threshold": decimal_str(trigger.threshold),
        "value": decimal_str(trigger.value),
        "recurrence": alert.recurrence,
        "window_start": trigger.window_start.isoformat(),
        "window_end": trigger.window_end.isoformat() if trigger.window_end else None,
        "triggered_at": trigger.triggered_at.isoformat(),
    }


def _target(sub: Subscription, offer_service: OfferService) -> QuotaTarget:
    return QuotaTarget(
        subscription_id=sub.pk,
        offer_service_id=offer_service.pk,
        customer_id=sub.customer_id,
        meter_id=offer_service.service.meter_id,
        kind=offer_service.service.group.kind,
        reset_interval=offer_service.reset_interval,
        timezone=sub.offer.timezone,
        billing_interval=sub.offer.billing_interval,
        billing_anchor=sub.billing_anchor,
        started_at=sub.started_at,
        ended_at=sub.ended_at,
    )


@transaction.atomic
def access_block_lift(*, block: AccessBlock, at: datetime) -> AccessBlock:
    """An operator gives back access an alert removed (the console's "lift")."""
    if block.lifted_at is None:
        access_restore(subscription=block.subscription, offer_service_id=block.offer_service_id)
        block.lifted_at = at
        block.save(update_fields=["lifted_at"])
    return block


def _block_access(trigger: AlertTrigger, who: CustomerNow) -> None:
    """Block the customer's services measured by the alert's meter until their next reset."""
    offer_services = OfferService.objects.filter(
        service__meter_id=trigger.alert.meter_id,
        offer__subscriptions__customer_id=trigger.customer_id,
        offer__subscriptions__status__in=LIVE_STATUSES,
    ).select_related("service__group")
    subs = Subscription.objects.filter(
        customer_id=trigger.customer_id,
        status__in=LIVE_STATUSES,
        offer_id__in={os.offer_id for os in offer_services},
    ).select_related("offer")
    for sub in subs:
        for offer_service in offer_services:
            if offer_service.offer_id != sub.offer_id:
                continue
            # Quotas enforces it (the entitlement check reads it); this row is the audit log.
            until = access_remove(subscription=sub, offer_service=offer_service, at=who.now)
            AccessBlock.objects.get_or_create(
                trigger=trigger,
                subscription=sub,
                offer_service=offer_service,
                defaults={"blocked_at": who.now, "until": until},
            )


# --------------------------------------------------------------------------- quota alerts


@dataclass(slots=True)
class _QuotaState:
    subscription: Subscription
    offer_service: OfferService
    target: QuotaTarget
    window: Window  # the firing window: the quota's reset window, or the billing period
    balance_start: datetime
    now: datetime
    used: Decimal = ZERO
    limit: Decimal = ZERO
    resets_at: datetime | None = None


def _quota_offer_services(
    subscriptions: Sequence[Subscription], meter_ids: Iterable[int] | None
) -> dict[int, list[OfferService]]:
    """Finite metered offer services of these subscriptions' offers, with their rules."""
    offer_ids = {sub.offer_id for sub in subscriptions}
    if not offer_ids:
        return {}
    qs = (
        OfferService.objects.filter(offer_id__in=offer_ids, included__isnull=False)
        .exclude(service__group__kind=ServiceKind.ON_OFF)
        .exclude(service__meter__isnull=True)
        .select_related("service__group", "service__meter")
    )
    if meter_ids is not None:
        qs = qs.filter(service__meter_id__in=list(meter_ids))
    offer_services = list(qs)
    if not offer_services:
        return {}
    rules: dict[int, list[QuotaAlertRule]] = defaultdict(list)
    for rule in QuotaAlertRule.objects.filter(offer_service__in=offer_services):
        rules[rule.offer_service_id].append(rule)
    missing = [os.pk for os in offer_services if os.pk not in rules]
    if missing:  # once per offer service, ever (R-L4 defaults)
        quota_alert_rules_ensure_defaults(offer_service_ids=missing)
        for rule in QuotaAlertRule.objects.filter(offer_service_id__in=missing):
            rules[rule.offer_service_id].append(rule)
    by_offer: dict[int, list[OfferService]] = defaultdict(list)
    for os in offer_services:
        os.active_rules = sorted((r for r in rules[os.pk] if r.is_active), key=lambda r: r.percent)
        if os.active_rules:
            by_offer[os.offer_id].append(os)
    return by_offer


def _quota_states(
    subscriptions: Sequence[Subscription],
    meter_ids: Iterable[int] | None,
    at: datetime | None,
    pairs: set[tuple[int, int]] | None = None,
) -> list[_QuotaState]:
    """One state per (subscription, finite offer service with rules); ``pairs`` (customer id,
    meter id) keeps only the services whose meter the customer used (an ingest batch: only
    those can have crossed a rule in it)."""
    by_offer = _quota_offer_services(subscriptions, meter_ids)
    states = []
    for sub in subscriptions:
        now = at or clock_now(sub.clock)
        if now < sub.started_at or (sub.ended_at is not None and now >= sub.ended_at):
            continue
        for offer_service in by_offer.get(sub.offer_id, ()):
            if pairs is not None and (sub.customer_id, offer_service.service.meter_id) not in pairs:
                continue
            target = _target(sub, offer_service)
            window = target.window_at(now)
            firing_window = window
            if window.end is None:  # seat-based: a level, alerted once per billing period
                start, end = CustomerNow(sub.customer_id, now, sub).billing_window()
                firing_window = Window(start, end)
            states.append(_QuotaState(sub, offer_service, target, firing_window, window.start, now))
    if not states:
        return []
    balances = {
        (b.subscription_id, b.offer_service_id, b.window_start): b
        for b in UsageBalance.objects.filter(
            subscription_id__in={s.subscription.pk for s in states},
            offer_service_id__in={s.offer_service.pk for s in states},
            window_start__in={s.balance_start for s in states},
        )
    }
    purchases: dict[int, list[AddOnPurchase]] = defaultdict(list)
    for purchase in AddOnPurchase.objects.filter(
        subscription_id__in={s.subscription.pk for s in states}
    ).select_related("addon"):
        purchases[purchase.subscription_id].append(purchase)
    for state in states:
        balance = balances.get((state.subscription.pk, state.offer_service.pk, state.balance_start))
        aggregation = state.offer_service.service.meter.aggregation
        state.used = balance_partial(balance).value(aggregation) or ZERO
        extra = sum(
            (
                p.addon.quantity * p.quantity
                for p in purchases[state.subscription.pk]
                if p.addon.service_id == state.offer_service.service_id
                and p.purchased_at <= state.now
                and (p.canceled_at is None or p.canceled_at > state.now)
            ),
            ZERO,
        )
        state.limit = state.offer_service.included + extra
        state.resets_at = state.target.window_at(state.now).end
    return states


def _record_firings(states: list[_QuotaState]) -> list[QuotaAlertFiring]:
    due = [
        (state, rule)
        for state in states
        if state.used > 0
        for rule in state.offer_service.active_rules
        if state.used * 100 >= state.limit * rule.percent
    ]
    if not due:
        return []
    existing = set(
        QuotaAlertFiring.objects.filter(
            subscription_id__in={s.subscription.pk for s, _ in due},
            offer_service_id__in={s.offer_service.pk for s, _ in due},
            window_start__in={s.window.start for s, _ in due},
        ).values_list("subscription_id", "offer_service_id", "percent", "window_start")
    )
    fired = []
    for state, rule in due:
        key = (state.subscription.pk, state.offer_service.pk, rule.percent, state.window.start)
        if key in existing:
            continue
        firing = _insert_once(
            QuotaAlertFiring,
            subscription=state.subscription,
            offer_service=state.offer_service,
            percent=rule.percent,
            window_start=state.window.start,
            window_end=state.window.end,
            used=state.used,
            limit=state.limit,
            fired_at=state.now,
        )
        if firing is not None:
            existing.add(key)
            _quota_actions(firing, state)
            fired.append(firing)
    return fired


def quota_firing_payload(firing: QuotaAlertFiring, resets_at: datetime | None) -> dict[str, Any]:
    sub = firing.subscription
    return {
        "firing": firing.pk,
        "subscription": sub.pk,
        "customer": sub.customer.external_id,
        "offer": sub.offer.code,
        "service": firing.offer_service.service.code,
        "percent": firing.percent,
        "used": decimal_str(firing.used),
        "limit": decimal_str(firing.limit),
        "window_start": firing.window_start.isoformat(),
        "resets_at": resets_at.isoformat() if resets_at else None,
        "fired_at": firing.fired_at.isoformat(),
    }


def _quota_actions(firing: QuotaAlertFiring, state: _QuotaState) -> None:
    """R-L4: a webhook event and an email to the customer's owners and admins."""
    sub = state.subscription
    payload = quota_firing_payload(firing, state.resets_at)
    outbox_publish(
        type="quota.exhausted" if firing.percent >= 100 else "quota.threshold_reached",
        payload=payload,
        customer_external_id=sub.customer.external_id,
        occurred_at=firing.fired_at,
    )
    service = state.offer_service.service
    addons = [a for a in addons_for_offer(sub.offer) if a.service_id == service.pk]
    email_delivery_create(
        kind=EmailKind.QUOTA_ALERT,
        key=f"quota_alert:{firing.pk}",
        to=customer_recipients(sub.customer),
        template="alerts/email/quota_alert",
        context={
            "firing": firing,
            "subscription": sub,
            "customer": sub.customer,
            "offer": sub.offer,
            "service": service,
            "unit": service.meter.unit,
            "used": decimal_str(firing.used),
            "limit": decimal_str(firing.limit),
            "remaining": decimal_str(max(ZERO, firing.limit - firing.used)),
            "blocks": state.offer_service.limit_behaviour == "block",
            "resets_at": state.resets_at,
            "timezone": sub.offer.timezone,
            "addons": addons,
            "subscription_path": f"/my/subscriptions/{sub.pk}/",
        },
        customer=sub.customer,
    )


# --------------------------------------------------------------------------- entry points


def usage_listener(deltas: Sequence[Any]) -> None:
    """``metering.hooks`` usage listener: evaluate what this batch concerns, in its transaction."""
    if not deltas:
        return
    meter_ids = {d.meter_id for d in deltas}
    customer_ids = {d.customer_id for d in deltas}
    alerts_qs = (
        UsageAlert.objects.filter(status=AlertStatus.ACTIVE, meter_id__in=meter_ids)
        .filter(Q(customer__isnull=True) | Q(customer_id__in=customer_ids))
        .select_related("meter", "staff_group")
    )
    subscriptions_qs = Subscription.objects.filter(
        customer_id__in=customer_ids,
        status__in=LIVE_STATUSES,
        offer__offer_services__service__meter_id__in=meter_ids,
        offer__offer_services__included__isnull=False,
    )
    # One query decides whether anything concerns the batch (the common case: nothing).
    concerns = (
        Meter.objects.filter(pk__in=meter_ids)
        .annotate(alerts=Exists(alerts_qs), quotas=Exists(subscriptions_qs))
        .values_list("alerts", "quotas")
        .first()
    )
    if concerns is None or not any(concerns):
        return
    alerts = list(alerts_qs) if concerns[0] else []
    subscriptions = (
        list(
            Subscription.objects.filter(pk__in=subscriptions_qs.values("pk")).select_related(
                "offer", "clock", "customer"
            )
        )
        if concerns[1]
        else []
    )
    if alerts:
        by_pair: dict[tuple[int, int], list[Any]] = defaultdict(list)
        for delta in deltas:
            by_pair[(delta.meter_id, delta.customer_id)].append(delta)
        concerned = {c for m, c in by_pair if any(a.meter_id == m for a in alerts)}
        nows = customer_nows(concerned)
        candidates = _usage_candidates(alerts, sorted(concerned), nows, _Values(), by_pair)
        _record_triggers(candidates, nows)
    if subscriptions:
        pairs = {(d.customer_id, d.meter_id) for d in deltas}
        _record_firings(_quota_states(subscriptions, meter_ids, None, pairs))


def alerts_evaluate(
    *, customer_ids: Iterable[int] | None = None, at: datetime | None = None
) -> dict[str, int]:
    """Evaluate every active usage alert and quota rule; returns how many fired.

    ``customer_ids`` limits it to some customers (None: all). ``at`` evaluates as of that
    instant for all of them — the clock machinery passes its clock's new time and the
    customers on it (R-A5); by default each customer lives at its own now. Idempotent: what
    already fired in a window does not fire again.
    """
    ids = None if customer_ids is None else set(customer_ids)
    alerts = list(
        UsageAlert.objects.filter(status=AlertStatus.ACTIVE).select_related("meter", "staff_group")
    )
    if ids is not None:
        alerts = [a for a in alerts if a.customer_id is None or a.customer_id in ids]
    triggers = 0
    values = _Values()
    by_meter: dict[int, list[UsageAlert]] = defaultdict(list)
    for alert in alerts:
        by_meter[alert.meter_id].append(alert)
    for meter_alerts in by_meter.values():
        meter = meter_alerts[0].meter
        customers = {a.customer_id for a in meter_alerts if a.customer_id is not None}
        if any(a.customer_id is None for a in meter_alerts):
            customers |= ids if ids is not None else _customers_with_usage(meter)
        if ids is not None:
            customers &= ids
        nows = customer_nows(customers, at=at)
        with transaction.atomic():
            candidates = _usage_candidates(meter_alerts, sorted(customers), nows, values)
            triggers += len(_record_triggers(candidates, nows))

    subscriptions = Subscription.objects.filter(status__in=LIVE_STATUSES).select_related(
        "offer", "clock", "customer"
    )
    if ids is not None:
        subscriptions = subscriptions.filter(customer_id__in=ids)
    firings = 0
    pks = list(subscriptions.order_by("pk").values_list("pk", flat=True))
    for i in range(0, len(pks), SWEEP_CHUNK):
        with transaction.atomic():
            chunk = list(subscriptions.filter(pk__in=pks[i : i + SWEEP_CHUNK]).order_by("pk"))
            firings += len(_record_firings(_quota_states(chunk, None, at)))
    return {"triggers": triggers, "quota_firings": firings}


def _customers_with_usage(meter: Meter) -> set[int]:
    """Customers an all-customers alert may newly fire for: those with usage of the meter in
    the last ``KOTA_EVENT_MAX_AGE_DAYS`` (older events are refused, so older usage can't
    move a value now), and every customer on a simulation clock (its time is its own)."""
    since = timezone.now() - timedelta(days=settings.KOTA_EVENT_MAX_AGE_DAYS + 1)
    clocked = Subscription.objects.filter(
        status__in=LIVE_STATUSES, clock__isnull=False
    ).values_list("customer_id", flat=True)
    return meter_customers_with_usage(meter=meter, since=since) | set(clocked)


def clock_job_run(clock, at: datetime) -> list[dict[str, int]]:
    """Alert evaluation as a simulation clock's job, after periods and thresholds (R-A5)."""
    customer_ids = clock.subscriptions.values_list("customer_id", flat=True).distinct()
    fired = alerts_evaluate(customer_ids=list(customer_ids), at=at)
    return [fired] if any(fired.values()) else []
