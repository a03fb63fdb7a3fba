"""Metering writes: event ingestion (R-M8) with rollups, meters (R-M1..R-M4) and back-fill.

Ingestion
---------
``event_ingest_batch`` validates each event on its own (a rejected event is reported with its
index and never stored), resolves every customer in one query and each customer's "now" (its
simulation clock's when it has a live subscription on one), then writes, in ONE transaction:
the new events with a single ``INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING`` per
1,000 rows (the unique index, not a prior lookup, decides what is a duplicate, so concurrent
posts of one id count it once), one upsert per 1,000 rollup rows merging the batch's partials
(aggregated in Python first: one row per meter, customer, granularity and bucket), and then
the usage listeners (``metering.hooks``).

Meter changes and back-fill
---------------------------
Creating a meter, or changing what it counts, bumps its ``generation`` and records the
highest stored event row id as ``backfill_upto``, while holding the ingest lock exclusively
(``sql.ingest_lock_exclusive``): every ingesting transaction holds that lock shared, so each
batch commits entirely before the change (its events have ids <= ``backfill_upto``) or runs
entirely after it (it sees the new definition, writes new-generation rollups, and its events
get higher ids). The back-fill task folds exactly the events with ids <= ``backfill_upto`` into
the new generation, in chunks by id, merging with the same commutative upsert that concurrent
ingestion uses, so nothing is counted twice or missed. Its last step takes the exclusive lock
again to mark the meter done and call the rebuild listeners with no batch in flight; rollups
of older generations are then deleted in chunks. Until the back-fill is done, selectors read
the meter from raw events.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from billing.models import Customer, Subscription, SubscriptionStatus
from core.errors import Conflict, DomainError, InvalidInput

from . import sql
from .filters import FilterError, filter_to_json, parse_filter
from .hooks import UsageDelta, emit_meter_rebuilt, emit_usage
from .models import Aggregation, BackfillStatus, Event, Meter, MeterRollup, MeterStatus
from .rollups import CompiledMeter, accumulate, rollup_rows

MAX_ID_LENGTH = 255
MAX_PROPERTIES_BYTES = 64 * 1024
MAX_PROPERTIES_DEPTH = 8
BACKFILL_CHUNK = 5000
_CLEANUP_CHUNK = 10000

# ------------------------------------------------------------------------------ ingestion


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    duplicates: int
    rejected: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


class _Rejected(Exception):
    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message


def _check_text(value: Any, what: str, code: str) -> str:
    if type(value) is not str:
        raise _Rejected(code, f"`{what}` must be a string.")
    if not value or len(value) > MAX_ID_LENGTH:
        raise _Rejected(code, f"`{what}` must be 1 to {MAX_ID_LENGTH} characters.")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise _Rejected(code, f"`{what}` is not valid Unicode.") from None
    if "\x00" in value:
        raise _Rejected(code, f"`{what}` must not contain NUL characters.")
    return value


def _parse_timestamp(value: Any) -> datetime:
    if type(value) is not str or len(value) > 64:
        raise _Rejected("invalid_timestamp", "`timestamp` must be an ISO 8601 string.")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise _Rejected("invalid_timestamp", f"{value!r} is not an ISO 8601 timestamp.") from None
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise _Rejected("invalid_timestamp", "`timestamp` needs a time zone offset (or Z).")
    try:
        return ts.astimezone(UTC)
    except OverflowError:
        raise _Rejected("invalid_timestamp", "`timestamp` is out of range.") from None


# A NUL character, escaped by json.dumps; PostgreSQL refuses it in jsonb.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _depth_exceeds(value: Any, depth: int) -> bool:
    if depth > MAX_PROPERTIES_DEPTH:
        return True
    if type(value) is dict:
        return any(_depth_exceeds(v, depth + 1) for v in value.values() if type(v) in (dict, list))
    return any(_depth_exceeds(v, depth + 1) for v in value if type(v) in (dict, list))


def _serialize_properties(props: Any) -> str:
    """The properties object as stored (compact JSON), or ``_Rejected``."""
    if type(props) is not dict:
        raise _Rejected("invalid_properties", "`properties` must be a JSON object.")
    try:
        text = json.dumps(props, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        raise _Rejected(
            "invalid_properties", "`properties` must hold only finite JSON values."
        ) from None
    size = len(text)
    if not text.isascii():
        try:
            size = len(text.encode())
        except UnicodeEncodeError:
            raise _Rejected("invalid_properties", "`properties` is not valid Unicode.") from None
    if size > MAX_PROPERTIES_BYTES:
        raise _Rejected(
            "invalid_properties", f"`properties` is over {MAX_PROPERTIES_BYTES} bytes as JSON."
        )
    # Depth needs one bracket per level: only walk objects with enough of them.
    if text.count("{") + text.count("[") > MAX_PROPERTIES_DEPTH and _depth_exceeds(props, 1):
        raise _Rejected(
            "invalid_properties", f"`properties` nests deeper than {MAX_PROPERTIES_DEPTH} levels."
        )
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        raise _Rejected("invalid_properties", "`properties` must not contain NUL characters.")
    return text


def _clock_nows(customer_ids) -> dict[int, datetime]:
    """Customer id -> its simulation clock's now, for customers living on a clock (R-A5)."""
    rows = (
        Subscription.objects.filter(customer_id__in=customer_ids, clock__isnull=False)
        .exclude(status=SubscriptionStatus.ENDED)
        .order_by("customer_id", "created_at", "id")
        .values_list("customer_id", "clock__now")
    )
    return dict(rows)  # the most recent subscription wins


# Compiled meters by (id, updated_at, generation): a filter is parsed once, not per batch.
_compiled: dict[tuple[int, datetime, int], CompiledMeter] = {}


def _compile(meter_id, generation, event_name, aggregation, prop, filter_json) -> CompiledMeter:
    return CompiledMeter(
        id=meter_id,
        generation=generation,
        event_name=event_name,
        aggregation=aggregation,
        property=prop,
        filter=parse_filter(filter_json),
    )


def _active_meters(names: set[str]) -> dict[str, list[CompiledMeter]]:
    rows = list(
        Meter.objects.filter(status=MeterStatus.ACTIVE, event_name__in=names).values_list(
            "id", "updated_at", "generation", "event_name", "aggregation", "property"
        )
    )
    found = {row[:3]: _compiled.get(row[:3]) for row in rows}
    missing = [row for row in rows if found[row[:3]] is None]
    if missing:
        filters = dict(
            Meter.objects.filter(id__in=[row[0] for row in missing]).values_list("id", "filter")
        )
        if len(_compiled) > 10_000:
            _compiled.clear()
        for meter_id, updated_at, generation, name, aggregation, prop in missing:
            key = (meter_id, updated_at, generation)
            found[key] = _compiled[key] = _compile(
                meter_id, generation, name, aggregation, prop, filters.get(meter_id)
            )
    by_name: dict[str, list[CompiledMeter]] = {}
    for compiled in found.values():
        by_name.setdefault(compiled.event_name, []).append(compiled)
    return by_name


def event_ingest_batch(*, events: list[dict], now: datetime | None = None) -> IngestResult:
    """Ingest 1..KOTA_EVENT_BATCH_MAX events (R-M8); see the module docstring.

    ``now`` replaces real time for validation and default timestamps (customers on a
    simulation clock use their clock's now instead). Raises ``InvalidInput`` (code
    ``empty_batch`` / ``invalid_body``) or ``DomainError`` 413 ``batch_too_large`` for the
    batch as a whole; per-event problems are in ``IngestResult.rejected``.
    """
    if not isinstance(events, list):
        raise InvalidInput("`events` must be a list of event objects.", code="invalid_body")
    if not events:
        raise InvalidInput("A batch holds at least one event.", code="empty_batch")
    limit = settings.KOTA_EVENT_BATCH_MAX
    if len(events) > limit:
        raise DomainError(
            f"A batch holds at most {limit} events; this one has {len(events)}.",
            code="batch_too_large",
            status=413,
            details={"limit": limit, "received": len(events)},
        )

    rejected: dict[int, tuple[str | None, str, str]] = {}  # index -> (id, code, message)
    parsed = []
    ts_cache: dict[str, datetime] = {}
    for index, raw in enumerate(events):
        event_id = None
        try:
            if type(raw) is not dict:
                raise _Rejected("invalid_event", "An event must be a JSON object.")
            event_id = _check_text(raw.get("id"), "id", "invalid_id")
            name = _check_text(raw.get("name"), "name", "invalid_name")
            customer = _check_text(raw.get("customer"), "customer", "invalid_customer")
            ts_raw = raw.get("timestamp")
            ts = None
            if ts_raw is not None:
                ts = ts_cache.get(ts_raw) if type(ts_raw) is str else None
                if ts is None:
                    ts = _parse_timestamp(ts_raw)
                    ts_cache[ts_raw] = ts
            props = raw.get("properties")
            if props is None:
                props = {}
                props_json = "{}"
            else:
                props_json = _serialize_properties(props)
        except _Rejected as exc:
            rejected[index] = (event_id if type(event_id) is str else None, exc.code, exc.message)
            continue
        parsed.append((index, event_id, name, customer, ts, props, props_json))

    customers = dict(
        Customer.objects.filter(external_id__in={p[3] for p in parsed}).values_list(
            "external_id", "id"
        )
    )
    clock_nows = _clock_nows(list(customers.values())) if customers else {}
    real_now = now or timezone.now()
    tolerance = timedelta(seconds=settings.KOTA_EVENT_FUTURE_TOLERANCE_SECONDS)
    max_age = timedelta(days=settings.KOTA_EVENT_MAX_AGE_DAYS)
    latest_ok, earliest_ok = real_now + tolerance, real_now - max_age

    candidates: dict[str, tuple] = {}  # event_id -> (row, properties)
    duplicates = 0
    for index, event_id, name, customer, ts, props, props_json in parsed:
        customer_id = customers.get(customer)
        if customer_id is None:
            rejected[index] = (event_id, "unknown_customer", f"No customer {customer!r}.")
            continue
        clock_now = clock_nows.get(customer_id)
        if clock_now is None:
            ts = ts or real_now
            latest, earliest = latest_ok, earliest_ok
        else:
            ts = ts or clock_now
            latest, earliest = clock_now + tolerance, clock_now - max_age
        if ts > latest:
            rejected[index] = (
                event_id,
                "timestamp_in_future",
                f"`timestamp` is more than {tolerance.seconds} s in the future.",
            )
            continue
        if ts < earliest:
            rejected[index] = (
                event_id,
                "timestamp_too_old",
                f"`timestamp` is older than {max_age.days} days.",
            )
            continue
        if event_id in candidates:
            duplicates += 1
            continue
        candidates[event_id] = ((event_id, name, customer_id, ts, props_json), props)

    accepted = 0
    if candidates:
        with transaction.atomic():
            sql.ingest_lock_shared()
            received_at = timezone.now()
            inserted = sql.events_insert([row + (received_at,) for row, _ in candidates.values()])
            accepted = len(inserted)
            duplicates += len(candidates) - accepted
            meters = _active_meters({row[1] for row, _ in candidates.values()})
            if meters and inserted:
                partials = accumulate(
                    meters,
                    (
                        (row[0], row[1], row[2], row[3], props)
                        for row, props in candidates.values()
                        if row[0] in inserted
                    ),
                )
                generations = {m.id: m.generation for ms in meters.values() for m in ms}
                sql.rollups_upsert(rollup_rows(partials, generations))
                emit_usage([UsageDelta(m, c, b, p) for (m, c, b), p in sorted(partials.items())])

    # An event refused on its content whose id is already known is a repeat: acknowledge it.
    known = {rej[0] for rej in rejected.values() if rej[0] is not None}
    if known:
        existing = known & candidates.keys()
        existing |= set(
            Event.objects.filter(event_id__in=known - existing).values_list("event_id", flat=True)
        )
        for index in [i for i, rej in rejected.items() if rej[0] in existing]:
            del rejected[index]
            duplicates += 1

    return IngestResult(
        accepted=accepted,
        duplicates=duplicates,
        rejected=[
            {"index": index, "id": event_id, "code": code, "message": message}
            for index, (event_id, code, message) in sorted(rejected.items())
        ],
    )


# ------------------------------------------------------------------------------ meters

_DEFINITION = ("event_name", "aggregation", "property", "filter")
_EDITABLE = ("name", "unit", *_DEFINITION)


def _clean_definition(values: dict[str, Any]) -> dict[str, Any]:
    """Validate a meter's fields (R-M1, R-M3); return them normalised."""
    out = dict(values)
    for key, limit, code in (("name", 100, "invalid_name"), ("event_name", 255, "invalid_name")):
        text = out[key]
        if not isinstance(text, str) or not text.strip() or len(text) > limit:
            raise InvalidInput(
                f"`{key}` must be a non-empty string of at most {limit} characters.",
                code=code if key == "name" else "invalid_event_name",
                details={"field": key},
            )
    if out["aggregation"] not in Aggregation.values:
        raise InvalidInput(
            f"`aggregation` must be one of {', '.join(Aggregation.values)}.",
            code="invalid_aggregation",
            details={"field": "aggregation"},
        )
    prop = out.get("property") or ""
    if not isinstance(prop, str) or len(prop) > 255:
        raise InvalidInput("`property` must be a string.", code="invalid_property")
    prop = prop.strip()
    if out["aggregation"] == Aggregation.COUNT:
        if prop:
            raise InvalidInput(
                "A count meter counts events; it takes no `property` (R-M1).",
                code="property_not_allowed",
                details={"field": "property"},
            )
    elif not prop:
        raise InvalidInput(
            f"A {out['aggregation']} meter needs the `property` it aggregates (R-M1).",
            code="property_required",
            details={"field": "property"},
        )
    out["property"] = prop
    unit = out.get("unit") or ""
    if not isinstance(unit, str) or len(unit) > 32:
        raise InvalidInput("`unit` is a label of at most 32 characters.", code="invalid_unit")
    out["unit"] = unit
    try:
        out["filter"] = filter_to_json(parse_filter(out.get("filter")))
    except FilterError as exc:
        raise InvalidInput(
            f"Invalid filter: {exc}", code="invalid_filter", details={"path": exc.path}
        ) from None
    return out


def meter_create(
    *,
    name: str,
    event_name: str,
    aggregation: str = Aggregation.COUNT,
    property: str = "",
    unit: str = "",
    filter: dict | None = None,
) -> Meter:
    """Create a meter (R-M1..R-M4) and back-fill it from the events already stored."""
    values = _clean_definition(
        {
            "name": name,
            "event_name": event_name,
            "aggregation": aggregation,
            "property": property,
            "unit": unit,
            "filter": filter,
        }
    )
    with transaction.atomic():
        sql.ingest_lock_exclusive()
        meter = Meter.objects.create(**values)
        _backfill_schedule(meter)
    return meter


def meter_update(*, meter: Meter, **changes: Any) -> Meter:
    """Change a meter's fields; a change of what it counts re-builds its rollups.

    Accepts ``name``, ``unit``, ``event_name``, ``aggregation``, ``property``, ``filter``.
    Switching to ``count`` without a ``property`` clears the property. Archived meters are
    frozen (409 ``meter_archived``).
    """
    unknown = set(changes) - set(_EDITABLE)
    if unknown:
        raise InvalidInput(
            f"Cannot change {', '.join(sorted(unknown))}.",
            code="not_editable",
            details={"fields": sorted(unknown)},
        )
    if changes.get("aggregation") == Aggregation.COUNT and "property" not in changes:
        changes["property"] = ""
    with transaction.atomic():
        # Exclusive even for a rename: meter changes are rare, and deciding under the lock
        # which fields really changed needs the lock taken before the row is read.
        sql.ingest_lock_exclusive()
        fresh = Meter.objects.select_for_update(no_key=True).filter(pk=meter.pk).first()
        if fresh is None:
            raise Conflict("The meter was deleted.", code="unknown_meter")
        if fresh.status == MeterStatus.ARCHIVED:
            raise Conflict("An archived meter cannot be changed.", code="meter_archived")
        current = {key: getattr(fresh, key) for key in _EDITABLE}
        values = _clean_definition({**current, **changes})
        redefined = any(values[key] != current[key] for key in _DEFINITION)
        for key in _EDITABLE:
            setattr(fresh, key, values[key])
        fresh.save()
        if redefined:
            _backfill_schedule(fresh)
    return fresh


def meter_archive(*, meter: Meter) -> Meter:
    """Stop counting new events; rollups and events stay. Archiving twice is a no-op."""
    with transaction.atomic():
        sql.ingest_lock_exclusive()
        fresh = Meter.objects.select_for_update(no_key=True).get(pk=meter.pk)
        if fresh.status != MeterStatus.ARCHIVED:
            fresh.status = MeterStatus.ARCHIVED
            fresh.archived_at = timezone.now()
            fresh.archived_upto = _max_event_id()
            fresh.save(update_fields=["status", "archived_at", "archived_upto", "updated_at"])
    return fresh


def meter_backfill_start(*, meter: Meter) -> Meter:
    """Re-build a meter's rollups from stored events (e.g. after a failed back-fill)."""
    with transaction.atomic():
        sql.ingest_lock_exclusive()
        fresh = Meter.objects.select_for_update(no_key=True).get(pk=meter.pk)
        _backfill_schedule(fresh)
    return fresh


def _max_event_id() -> int:
    return Event.objects.aggregate(m=Max("id"))["m"] or 0


def _backfill_schedule(meter: Meter) -> None:
    """Start a new rollup generation; called holding the exclusive ingest lock."""
    meter.generation += 1
    meter.backfill_upto = _max_event_id()
    meter.backfill_cursor = 0
    meter.backfill_processed = 0
    meter.backfill_total = 0
    meter.backfill_started_at = None
    meter.backfill_error = ""
    if Event.objects.filter(name=meter.event_name, id__lte=meter.backfill_upto).exists():
        meter.backfill_status = BackfillStatus.PENDING
        meter.backfilled_at = None
    else:  # nothing stored to count: the (empty) new generation is complete already
        meter.backfill_status = BackfillStatus.DONE
        meter.backfilled_at = timezone.now()
    meter.save()
    if meter.backfill_status == BackfillStatus.DONE:
        emit_meter_rebuilt(meter.id)
    if meter.backfill_status == BackfillStatus.PENDING or meter.generation > 1:
        from .tasks import meter_backfill  # tasks wrap services: imported late

        meter_id, generation = meter.id, meter.generation
        transaction.on_commit(lambda: meter_backfill.delay(meter_id, generation))


def meter_backfill_run(
    *, meter_id: int, generation: int, chunk_size: int | None = None
) -> Meter | None:
    """Fold stored events with ids <= ``backfill_upto`` into the meter's rollups.

    Safe to run twice and to resume: progress (a cursor on event ids) commits with each
    chunk; a run for a stale ``generation`` stops. Returns the meter, or None if stale.
    """
    chunk_size = chunk_size or BACKFILL_CHUNK
    while True:
        with transaction.atomic():
            # NO KEY UPDATE: concurrent batches check their rollups' foreign key to this row
            # (FOR KEY SHARE, at commit); a plain FOR UPDATE would deadlock with them.
            meter = Meter.objects.select_for_update(no_key=True).filter(pk=meter_id).first()
            if meter is None or meter.generation != generation:
                return None
            if meter.backfill_status == BackfillStatus.FAILED:
                return meter
            if meter.backfill_status == BackfillStatus.DONE:
                break
            events = Event.objects.filter(
                name=meter.event_name, id__lte=meter.backfill_upto
            ).order_by("id")
            if meter.backfill_status == BackfillStatus.PENDING:
                meter.backfill_status = BackfillStatus.RUNNING
                meter.backfill_started_at = timezone.now()
                meter.backfill_total = events.filter(id__gt=meter.backfill_cursor).count()
            rows = list(
                events.filter(id__gt=meter.backfill_cursor).values_list(
                    "id", "event_id", "customer_id", "timestamp", "properties"
                )[:chunk_size]
            )
            compiled = _compile(
                meter.id,
                generation,
                meter.event_name,
                meter.aggregation,
                meter.property,
                meter.filter,
            )
            partials = accumulate(
                {meter.event_name: [compiled]},
                ((r[1], meter.event_name, r[2], r[3], r[4]) for r in rows),
            )
            sql.rollups_upsert(rollup_rows(partials, {meter.id: generation}))
            meter.backfill_processed += len(rows)
            meter.backfill_cursor = rows[-1][0] if rows else meter.backfill_upto
            meter.save(
                update_fields=[
                    "backfill_status",
                    "backfill_started_at",
                    "backfill_total",
                    "backfill_processed",
                    "backfill_cursor",
                ]
            )
        if len(rows) < chunk_size:
            meter = _backfill_finish(meter_id, generation)
            if meter is None:
                return None
            break
    _rollups_cleanup(meter_id, generation)
    return meter


def _backfill_finish(meter_id: int, generation: int) -> Meter | None:
    with transaction.atomic():
        sql.ingest_lock_exclusive()
        meter = Meter.objects.select_for_update(no_key=True).filter(pk=meter_id).first()
        if meter is None or meter.generation != generation:
            return None
        if meter.backfill_status == BackfillStatus.RUNNING:
            meter.backfill_status = BackfillStatus.DONE
            meter.backfilled_at = timezone.now()
            meter.backfill_total = max(meter.backfill_total, meter.backfill_processed)
            meter.save(update_fields=["backfill_status", "backfilled_at", "backfill_total"])
            emit_meter_rebuilt(meter.id)
    return meter


def meter_backfill_fail(*, meter_id: int, generation: int, error: str) -> None:
    """Record a crashed back-fill (readers keep using raw events; an operator can restart)."""
    Meter.objects.filter(pk=meter_id, generation=generation).exclude(
        backfill_status=BackfillStatus.DONE
    ).update(backfill_status=BackfillStatus.FAILED, backfill_error=error[:2000])


def _rollups_cleanup(meter_id: int, generation: int) -> None:
    """Delete rollups of replaced generations, a chunk per transaction."""
    while True:
        ids = list(
            MeterRollup.objects.filter(meter_id=meter_id, generation__lt=generation).values_list(
                "id", flat=True
            )[:_CLEANUP_CHUNK]
        )
        if not ids:
            return
        MeterRollup.objects.filter(id__in=ids).delete()
