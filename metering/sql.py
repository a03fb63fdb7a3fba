"""The few SQL statements metering needs that the ORM cannot say, for PostgreSQL and SQLite.

* ``events_insert``: ``INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING event_id``: the
  unique index decides which events are new, atomically, under any concurrency.
* ``rollups_upsert``: ``INSERT ... ON CONFLICT DO UPDATE`` merging an ``aggregation.Partial``
  into its row in SQL (count and total add, maximum is the greater, last is the row with the
  greater (last_at, last_key)), so concurrent batches on one bucket never lose an update.
* The ingest lock: every ingesting transaction holds a shared lock; changing what a meter
  counts takes it exclusively. A meter change therefore happens between batches, never
  across one, which is what makes back-fill watermarks exact (see ``services``).

Both statements are one code path; only three spellings differ: the ``jsonb`` cast, exact
decimal arithmetic (PostgreSQL ``numeric`` vs. the ``kota_dec_*`` functions registered below
on each SQLite connection, which keeps decimals as text) and the binary collation used to
order event keys (code point order, as Python compares strings).
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.backends.signals import connection_created
from django.db.models import Aggregate, CharField, Func

from .aggregation import _CONTEXT
from .fields import ExactDecimalField

# pg_advisory_xact_lock key ("kota" + 1): ingestion shares it, meter changes take it alone.
INGEST_LOCK_KEY = 0x6B6F7461_0001
# Rows per statement: well below SQLite's 32,766 bound variables with 11 columns.
ROWS_PER_STATEMENT = 1000


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


# --------------------------------------------------------------------------- locks


def ingest_lock_shared() -> None:
    """Held by an ingesting transaction until it ends (a no-op on SQLite, whose IMMEDIATE
    transactions already run one writer at a time)."""
    if is_postgres():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [INGEST_LOCK_KEY])


def ingest_lock_exclusive() -> None:
    """Waits for in-flight ingesting transactions and holds new ones until this one ends."""
    if is_postgres():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [INGEST_LOCK_KEY])


# --------------------------------------------------------------------------- row sets


def rows_select(types: tuple[str, ...]) -> str:
    """``SELECT * FROM json_to_recordset(%s::json) AS r(c0 t0, c1 t1, ...)``: on PostgreSQL a
    multi-row insert passes its rows as one JSON document (``rows_param``), so a batch of any
    size is one parameter (a thousand-row ``VALUES`` list, or one array per column, costs
    more to bind and quote on the client than to run). Rows come out in the document's
    order, so sorted rows still lock in key order."""
    columns = ", ".join(f"c{i} {t}" for i, t in enumerate(types))
    return f"SELECT * FROM json_to_recordset(%s::json) AS r({columns})"


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError("naive datetime")
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # a JSON string: PostgreSQL reads it with numeric's input, exactly
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def rows_param(rows: list[tuple]) -> list[str]:
    """The parameters of ``rows_select``: the rows as JSON objects ``{"c0": ..., ...}``."""
    if not rows:
        return ["[]"]
    keys = [f"c{i}" for i in range(len(rows[0]))]
    return [
        json.dumps(
            [dict(zip(keys, row, strict=True)) for row in rows],
            default=_json_default,
            separators=(",", ":"),
        )
    ]


# --------------------------------------------------------------------------- events

_EVENT_TYPES = ("text", "text", "bigint", "timestamptz", "jsonb", "timestamptz")


def events_insert(rows: list[tuple]) -> set[str]:
    """Insert ``(event_id, name, customer_id, timestamp, properties_json, received_at)`` rows;
    return the event ids actually inserted (the others already existed).

    Rows are sorted by event id so that two batches sharing ids lock them in one order.
    """
    if not rows:
        return set()
    rows = sorted(rows)
    pg = is_postgres()
    adapt = connection.ops.adapt_datetimefield_value
    table = connection.ops.quote_name("metering_event")
    columns = '(event_id, name, customer_id, "timestamp", properties, received_at)'
    if pg:
        with connection.cursor() as cursor:
            dumps = json.dumps
            document = ",".join(
                # properties are JSON text already: embedded as they are, not re-encoded
                f'{{"c0":{dumps(event_id)},"c1":{dumps(name)},"c2":{int(customer_id)},'
                f'"c3":"{_json_default(ts)}","c4":{props},"c5":"{_json_default(received)}"}}'
                for event_id, name, customer_id, ts, props, received in rows
            )
            cursor.execute(
                f"INSERT INTO {table} {columns} {rows_select(_EVENT_TYPES)} "
                "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                [f"[{document}]"],
            )
            return {r[0] for r in cursor.fetchall()}
    row_sql = "(%s,%s,%s,%s,%s,%s)"
    inserted: set[str] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            params: list[Any] = []
            for event_id, name, customer_id, timestamp, props, received_at in chunk:
                params += (event_id, name, customer_id, adapt(timestamp), props)
                params.append(adapt(received_at))
            cursor.execute(
                f"INSERT INTO {table} {columns} "
                f"VALUES {','.join([row_sql] * len(chunk))} "
                "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                params,
            )
            inserted.update(r[0] for r in cursor.fetchall())
    return inserted


# --------------------------------------------------------------------------- rollups

_ROLLUP_COLUMNS = (
    "meter_id",
    "generation",
    "customer_id",
    "granularity",
    "bucket_start",
    "count",
    "total",
    "maximum",
    "last_at",
    "last_key",
    "last_value",
)


_ROLLUP_TYPES = (
    "bigint",
    "integer",
    "bigint",
    "integer",
    "timestamptz",
    "bigint",
    "numeric",
    "numeric",
    "timestamptz",
    "text",
    "numeric",
)


def _rollup_upsert_sql(rows: int) -> str:
    q = connection.ops.quote_name
    pg = is_postgres()
    cols = ", ".join(q(c) for c in _ROLLUP_COLUMNS)
    key = ", ".join(q(c) for c in _ROLLUP_COLUMNS[:5])
    add = "r.total + excluded.total" if pg else "kota_dec_add(r.total, excluded.total)"
    greatest = (
        "GREATEST(r.maximum, excluded.maximum)"
        if pg
        else "kota_dec_max(r.maximum, excluded.maximum)"
    )
    collate = ' COLLATE "C"' if pg else ""
    newer = (
        "(excluded.last_at IS NOT NULL AND (r.last_at IS NULL OR excluded.last_at > r.last_at "
        "OR (excluded.last_at = r.last_at "
        f"AND excluded.last_key{collate} > r.last_key{collate})))"
    )
    if pg:  # ``rows`` is ignored: one JSON document
        values = rows_select(_ROLLUP_TYPES)
    else:
        values = "VALUES " + ",".join(["(" + ",".join(["%s"] * len(_ROLLUP_COLUMNS)) + ")"] * rows)
    return (
        f"INSERT INTO {q('metering_meterrollup')} AS r ({cols}) {values} "
        f"ON CONFLICT ({key}) DO UPDATE SET "
        f'"count" = r."count" + excluded."count", '
        f"total = {add}, maximum = {greatest}, "
        f"last_at = CASE WHEN {newer} THEN excluded.last_at ELSE r.last_at END, "
        f"last_key = CASE WHEN {newer} THEN excluded.last_key ELSE r.last_key END, "
        f"last_value = CASE WHEN {newer} THEN excluded.last_value ELSE r.last_value END"
    )


def rollups_upsert(rows: list[tuple]) -> None:
    """Merge ``(meter_id, generation, customer_id, granularity, bucket_start, count, total,
    maximum, last_at, last_key, last_value)`` rows into the rollup table; at most one row per
    key. Rows are written in key order so that concurrent writers lock rows in one order."""
    if not rows:
        return
    rows = sorted(rows, key=lambda r: r[:5])
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        if is_postgres():
            cursor.execute(_rollup_upsert_sql(0), rows_param(rows))
            return
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            params: list[Any] = []
            for row in chunk:
                m, g, c, gran, bucket, count, total, maximum, last_at, key, last = row
                params += (m, g, c, gran, adapt(bucket), count, str(total))
                params += (_text(maximum), adapt(last_at), key, _text(last))
            cursor.execute(_rollup_upsert_sql(len(chunk)), params)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


# --------------------------------------------------------------------------- ORM helpers


class DecimalSum(Aggregate):
    """SUM over an ``ExactDecimalField``, exact on both databases."""

    function = "SUM"
    name = "DecimalSum"

    def __init__(self, expression, **extra):
        super().__init__(expression, output_field=ExactDecimalField(), **extra)

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, function="kota_dec_sum", **extra_context)


class DecimalMax(Aggregate):
    """MAX over an ``ExactDecimalField`` (numeric, not textual, order on SQLite)."""

    function = "MAX"
    name = "DecimalMax"

    def __init__(self, expression, **extra):
        super().__init__(expression, output_field=ExactDecimalField(), **extra)

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, function="kota_dec_max_agg", **extra_context)


class CodePointOrder(Func):
    """A string expression compared by code point (Python's order), e.g. to order event keys."""

    template = "%(expressions)s"

    def __init__(self, expression, **extra):
        super().__init__(expression, output_field=CharField(), **extra)

    def as_postgresql(self, compiler, connection, **extra_context):
        return super().as_sql(
            compiler, connection, template='%(expressions)s COLLATE "C"', **extra_context
        )


# --------------------------------------------------------------------------- SQLite functions


def _dec(value: Any) -> Decimal | None:
    if value is None:
        return None
    return Decimal(value) if isinstance(value, str) else Decimal(str(value))


def _dec_add(a: Any, b: Any) -> str | None:
    a, b = _dec(a), _dec(b)
    if a is None or b is None:
        return None
    return str(_CONTEXT.add(a, b))


def _dec_max(a: Any, b: Any) -> str | None:
    a, b = _dec(a), _dec(b)
    if a is None:
        return None if b is None else str(b)
    if b is None or a >= b:
        return str(a)
    return str(b)


class _DecSum:
    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: Any) -> None:
        value = _dec(value)
        if value is not None:
            self.total = value if self.total is None else _CONTEXT.add(self.total, value)

    def finalize(self) -> str | None:
        return None if self.total is None else str(self.total)


class _DecMax:
    def __init__(self) -> None:
        self.best: Decimal | None = None

    def step(self, value: Any) -> None:
        value = _dec(value)
        if value is not None and (self.best is None or value > self.best):
            self.best = value

    def finalize(self) -> str | None:
        return None if self.best is None else str(self.best)


def register_sqlite_functions(sender, connection, **kwargs) -> None:
    if connection.vendor != "sqlite":
        return
    raw = connection.connection
    raw.create_function("kota_dec_add", 2, _dec_add, deterministic=True)
    raw.create_function("kota_dec_max", 2, _dec_max, deterministic=True)
    raw.create_aggregate("kota_dec_sum", 1, _DecSum)
    raw.create_aggregate("kota_dec_max_agg", 1, _DecMax)


connection_created.connect(register_sqlite_functions, dispatch_uid="metering_sqlite_functions")
