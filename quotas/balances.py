"""Cached usage balances: the fast path behind usage pages and entitlement checks.

The metering engine calls ``usage_listener`` inside the ingest transaction, after it wrote
its rollups, with one ``UsageDelta`` per (meter, customer, 15-minute bucket) of the batch.
Each delta lands in the balance row of every subscription service metered by that meter:

* **fast path** - the bucket lies wholly inside one window's counted range: the delta's
  ``Partial`` is merged into the row with one multi-row ``INSERT ... ON CONFLICT DO UPDATE``
  (count and total add up, max keeps the larger, last keeps the later (timestamp, key)). The
  merge is a single atomic statement, so concurrent ingests on PostgreSQL never lose updates;
  rows are written in key order so two batches cannot deadlock on each other.
* **edge path** - the bucket straddles a boundary that is not on a 15-minute line (a billing
  anchor at 10:07, a subscription that started at 10:07): the bucket's partial cannot be
  split, so the row is recomputed exactly from ``metering.selectors.meter_partial`` over the
  window's counted range, after taking the row's lock (so a concurrent ingest either is
  already visible or merges on top of the exact value afterwards).

``meter_rebuild_listener`` recomputes every balance of a meter whose rollups were rebuilt
(back-fill after a meter changed); ``balances_rebuild`` does the same for one subscription
(a subscription back-dated over events already received, an offer service whose reset
interval changed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from billing.models import Subscription
from metering import selectors as metering_selectors
from metering import sql as metering_sql
from metering.aggregation import Partial
from metering.models import Meter

from .models import ServiceKind, UsageBalance
from .windows import QuotaTarget, Window

BUCKET = timedelta(minutes=15)
# Seat-based windows never end; metering reads need an end: no event is accepted this far
# beyond "now" (real or a simulation clock's, which the ingest batch's buckets reflect).
HORIZON_MARGIN = timedelta(days=1)
EMPTY = Partial()

Key = tuple[int, int, datetime]  # (subscription_id, offer_service_id, window_start)

_TARGET_FIELDS = (
    "id",
    "customer_id",
    "offer__offer_services__id",
    "offer__offer_services__service__meter_id",
    "offer__offer_services__service__group__kind",
    "offer__offer_services__reset_interval",
    "offer__timezone",
    "offer__billing_interval",
    "billing_anchor",
    "started_at",
    "ended_at",
)


def quota_targets(
    *,
    customer_ids: Iterable[int] | None = None,
    meter_ids: Iterable[int] | None = None,
    subscription_ids: Iterable[int] | None = None,
    pairs: Iterable[tuple[int, int]] | None = None,
) -> list[QuotaTarget]:
    """The metered services of subscriptions, one query (filters combine with AND);
    ``pairs``: (customer id, meter id), only the services metering one of them."""
    # One filter() call: the offer-service join it creates is the one values_list() reads.
    conditions = Q(offer__offer_services__service__meter__isnull=False) & ~Q(
        offer__offer_services__service__group__kind=ServiceKind.ON_OFF
    )
    if customer_ids is not None:
        conditions &= Q(customer_id__in=list(customer_ids))
    if meter_ids is not None:
        conditions &= Q(offer__offer_services__service__meter_id__in=list(meter_ids))
    if subscription_ids is not None:
        conditions &= Q(id__in=list(subscription_ids))
    if pairs is not None:
        by_meter: dict[int, set[int]] = {}
        for customer_id, meter_id in pairs:
            by_meter.setdefault(meter_id, set()).add(customer_id)
        either = Q(pk__in=[])
        for meter_id, customers in sorted(by_meter.items()):
            either |= Q(
                offer__offer_services__service__meter_id=meter_id,
                customer_id__in=sorted(customers),
            )
        conditions &= either
    rows = Subscription.objects.filter(conditions).values_list(*_TARGET_FIELDS).order_by("id")
    return [
        QuotaTarget(
            subscription_id=sub_id,
            offer_service_id=os_id,
            customer_id=customer_id,
            meter_id=meter_id,
            kind=kind,
            reset_interval=reset_interval,
            timezone=tz,
            billing_interval=billing_interval,
            billing_anchor=anchor,
            started_at=started_at,
            ended_at=ended_at,
        )
        for (
            sub_id,
            customer_id,
            os_id,
            meter_id,
            kind,
            reset_interval,
            tz,
            billing_interval,
            anchor,
            started_at,
            ended_at,
        ) in rows
    ]


# --------------------------------------------------------------------------- the listener


def usage_listener(deltas: Sequence[Any]) -> None:
    """Merge a batch's usage deltas into balances (``metering.hooks`` usage listener).

    ``deltas``: ``UsageDelta(meter_id, customer_id, bucket_start, partial)`` values, at most
    one per (meter, customer, bucket). Runs inside the ingest transaction: the balances
    commit or roll back with the events.
    """
    if not deltas:
        return
    by_pair: dict[tuple[int, int], list[QuotaTarget]] = {}
    for target in quota_targets(pairs={(d.customer_id, d.meter_id) for d in deltas}):
        by_pair.setdefault((target.customer_id, target.meter_id), []).append(target)
    if not by_pair:
        return

    merges: dict[Key, tuple[datetime | None, Partial]] = {}
    edges: dict[Key, tuple[QuotaTarget, Window]] = {}
    for delta in deltas:
        start = delta.bucket_start
        end = start + BUCKET
        for target in by_pair.get((delta.customer_id, delta.meter_id), ()):
            for window in target.windows_between(start, end):
                key = (target.subscription_id, target.offer_service_id, window.start)
                if target.covers(window, start, end):
                    previous = merges.get(key, (window.end, EMPTY))[1]
                    merges[key] = (window.end, previous + delta.partial)
                else:
                    edges[key] = (target, window)
    for key, (_, window) in edges.items():
        # Taking the row lock in the same sorted statement as the merges (no deadlocks); the
        # exact recompute below covers this batch's events too, so the delta is not merged.
        merges[key] = (window.end, EMPTY)
    now = timezone.now()
    _upsert(merges, now)
    if edges:
        meters = Meter.objects.in_bulk({target.meter_id for target, _ in edges.values()})
        horizon = max([now, *(d.bucket_start for d in deltas)]) + HORIZON_MARGIN
        for key in sorted(edges):
            target, window = edges[key]
            _write_exact(key, target, window, meters[target.meter_id], now, horizon)


def meter_rebuild_listener(meter_id: int) -> None:
    """Recompute every balance fed by a meter whose rollups were rebuilt."""
    balances_rebuild(meter_id=meter_id)


# --------------------------------------------------------------------------- rebuilds


@transaction.atomic
def balances_rebuild(
    *, meter_id: int | None = None, subscription_id: int | None = None, now: datetime | None = None
) -> int:
    """Recompute balances exactly from the meters' rollups; returns the rows written.

    For a meter's back-fill, a subscription back-dated over events already received, or an
    offer service whose reset interval changed. Windows without events are found by halving
    ranges (one ``meter_partial`` read tells a whole range is empty), so a long subscription
    with daily windows costs reads in proportion to its busy windows, not to its age.
    """
    now = now or timezone.now()
    targets = quota_targets(
        meter_ids=None if meter_id is None else [meter_id],
        subscription_ids=None if subscription_id is None else [subscription_id],
    )
    meters = Meter.objects.in_bulk({t.meter_id for t in targets})
    horizon = _horizon(targets, now)
    written = 0
    for target in targets:
        meter = meters[target.meter_id]
        windows = list(target.windows_between(target.started_at, horizon))
        busy = _busy_windows(target, meter, windows, horizon)
        existing = set(
            UsageBalance.objects.filter(
                subscription_id=target.subscription_id, offer_service_id=target.offer_service_id
            ).values_list("window_start", flat=True)
        )
        keys = {w.start for w in busy}
        # Rows of windows that no longer exist (reset interval changed) or found empty.
        stale = existing - keys
        if stale:
            UsageBalance.objects.filter(
                subscription_id=target.subscription_id,
                offer_service_id=target.offer_service_id,
                window_start__in=stale,
            ).delete()
        for window in busy:
            key = (target.subscription_id, target.offer_service_id, window.start)
            _upsert({key: (window.end, EMPTY)}, now)
            _write_exact(key, target, window, meter, now, horizon)
            written += 1
    return written


def _horizon(targets: Sequence[QuotaTarget], now: datetime) -> datetime:
    """Events are never accepted far in the future; a day's margin covers every tolerance."""
    clocks = Subscription.objects.filter(
        id__in={t.subscription_id for t in targets}, clock__isnull=False
    ).values_list("clock__now", flat=True)
    return max([now, *clocks]) + HORIZON_MARGIN


def _busy_windows(
    target: QuotaTarget, meter: Meter, windows: list[Window], horizon: datetime
) -> list[Window]:
    """The windows (of a contiguous run) whose counted range holds at least one event."""
    if not windows:
        return []
    start = target.counted(windows[0])[0]
    end = min(target.counted(windows[-1])[1] or horizon, horizon)
    if start >= end or _exact_partial(meter, target.customer_id, start, end).count == 0:
        return []
    if len(windows) == 1:
        return windows
    middle = len(windows) // 2
    return _busy_windows(target, meter, windows[:middle], horizon) + _busy_windows(
        target, meter, windows[middle:], horizon
    )


# --------------------------------------------------------------------------- writing


def _exact_partial(meter: Meter, customer_id: int, start: datetime, end: datetime) -> Partial:
    if start >= end:
        return EMPTY
    return metering_selectors.meter_partial(
        meter=meter, customer_id=customer_id, start=start, end=end
    )


def _write_exact(
    key: Key,
    target: QuotaTarget,
    window: Window,
    meter: Meter,
    now: datetime,
    horizon: datetime,
) -> None:
    """Overwrite a (locked) row with the exact partial of its window's counted range."""
    start, end = target.counted(window)
    partial = _exact_partial(meter, target.customer_id, start, min(end or horizon, horizon))
    UsageBalance.objects.filter(
        subscription_id=key[0], offer_service_id=key[1], window_start=key[2]
    ).update(
        count=partial.count,
        total=partial.total,
        maximum=partial.maximum,
        last_at=partial.last_at,
        last_key=partial.last_key,
        last_value=partial.last_value,
        updated_at=now,
    )


_COLUMNS = (
    "subscription_id",
    "offer_service_id",
    "window_start",
    "window_end",
    "count",
    "total",
    "maximum",
    "last_at",
    "last_key",
    "last_value",
    "updated_at",
)
_TYPES = (
    "bigint",
    "bigint",
    "timestamptz",
    "timestamptz",
    "bigint",
    "numeric",
    "numeric",
    "timestamptz",
    "text",
    "numeric",
    "timestamptz",
)
ROWS_PER_STATEMENT = 1000  # 11,000 parameters: below SQLite's 32,766


def _upsert_sql(rows: int) -> str:
    """The merge of ``metering.sql``'s rollup upsert, on balance rows: exact decimals
    (PostgreSQL numeric; metering's ``kota_dec_*`` functions on SQLite, which keeps them as
    text) and event keys ordered by code point, as Python (``Partial``) orders them."""
    qn = connection.ops.quote_name
    pg = metering_sql.is_postgres()
    add = "b.total + excluded.total" if pg else "kota_dec_add(b.total, excluded.total)"
    greatest = (
        "GREATEST(b.maximum, excluded.maximum)"
        if pg
        else "kota_dec_max(b.maximum, excluded.maximum)"
    )
    collate = ' COLLATE "C"' if pg else ""
    newer = (
        "(excluded.last_at IS NOT NULL AND (b.last_at IS NULL OR excluded.last_at > b.last_at "
        "OR (excluded.last_at = b.last_at "
        f"AND excluded.last_key{collate} > b.last_key{collate})))"
    )
    if pg:  # one JSON document (``rows`` is ignored)
        values = metering_sql.rows_select(_TYPES)
    else:
        values = "VALUES " + ",".join(["(" + ",".join(["%s"] * len(_COLUMNS)) + ")"] * rows)
    return (
        f"INSERT INTO {qn(UsageBalance._meta.db_table)} AS b "
        f"({', '.join(qn(c) for c in _COLUMNS)}) {values} "
        "ON CONFLICT (subscription_id, offer_service_id, window_start) DO UPDATE SET "
        f'"count" = b."count" + excluded."count", total = {add}, maximum = {greatest}, '
        f"last_at = CASE WHEN {newer} THEN excluded.last_at ELSE b.last_at END, "
        f"last_key = CASE WHEN {newer} THEN excluded.last_key ELSE b.last_key END, "
        f"last_value = CASE WHEN {newer} THEN excluded.last_value ELSE b.last_value END, "
        "updated_at = excluded.updated_at"
    )


def _upsert(rows: dict[Key, tuple[datetime | None, Partial]], now: datetime) -> None:
    """Merge partials into balance rows (creating them), in key order, atomically per row."""
    if not rows:
        return
    pg = metering_sql.is_postgres()
    dt = connection.ops.adapt_datetimefield_value

    def dec(value: Decimal | None) -> Any:
        return value if value is None or pg else str(value)

    items = sorted(rows.items(), key=lambda item: item[0])
    if pg:
        table = [
            (sub_id, os_id, start, end, p.count, p.total, p.maximum, p.last_at, p.last_key)
            + (p.last_value, now)
            for (sub_id, os_id, start), (end, p) in items
        ]
        with connection.cursor() as cursor:
            cursor.execute(_upsert_sql(0), metering_sql.rows_param(table))
        return
    with connection.cursor() as cursor:
        for offset in range(0, len(items), ROWS_PER_STATEMENT):
            part = items[offset : offset + ROWS_PER_STATEMENT]
            params: list[Any] = []
            for (sub_id, os_id, window_start), (window_end, p) in part:
                params += [
                    sub_id,
                    os_id,
                    dt(window_start),
                    None if window_end is None else dt(window_end),
                    p.count,
                    dec(p.total),
                    dec(p.maximum),
                    None if p.last_at is None else dt(p.last_at),
                    p.last_key,
                    dec(p.last_value),
                    dt(now),
                ]
            cursor.execute(_upsert_sql(len(part)), params)


def balance_partial(balance: UsageBalance | None) -> Partial:
    """A balance row as the ``Partial`` it caches (empty for no row)."""
    if balance is None:
        return EMPTY
    return Partial(
        count=balance.count,
        total=balance.total,
        maximum=balance.maximum,
        last_at=balance.last_at,
        last_key=balance.last_key,
        last_value=balance.last_value,
    )


def balance_ensure(*, target: QuotaTarget, window: Window, now: datetime) -> None:
    """Make sure the balance row of ``window`` exists (merging nothing into it)."""
    _upsert(
        {(target.subscription_id, target.offer_service_id, window.start): (window.end, EMPTY)}, now
    )
