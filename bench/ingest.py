"""Ingest through the HTTP API (issue 3): POST /api/v1/events, batches of 1,000, gunicorn +
PostgreSQL, against a raw COPY of the same rows into the same table, in the same run.

Set-up (not timed): a fresh database (BENCH_DATABASE_URL + "_ingest", so the shared 10 M seed
survives), the five meters through ``metering.services.meter_create`` (rollups live), the
catalog and offers through the quotas services, customers in bulk, and one subscription per
customer (so the quota usage listener writes balances and the alerts listener evaluates quota
rules on every batch, as in production). Every request body is encoded before the clock
starts; several client threads keep the gunicorn workers busy.

The baseline: ``COPY`` of exactly the rows stored (same columns, same JSON text) into a fresh
``LIKE metering_event INCLUDING ALL`` table (same indexes, unique constraint and customer
foreign key), from one connection, after the HTTP run.

Sizes: BENCH_INGEST_EVENTS (1,000,000; --quick 30,000), BENCH_INGEST_CUSTOMERS (10,000;
--quick 1,000), BENCH_WORKERS (gunicorn workers, 3), BENCH_CONNECTIONS (client threads, 4);
BENCH_INGEST_SUBSCRIPTIONS=0 leaves the customers without subscriptions (no quota work).
"""

import datetime as dt
import json
import random
import threading
import time

from bench import harness

BATCH = 1000


def _events(total: int, customers: list[tuple[str, int]], rng: random.Random, now):
    """(request bodies, COPY rows): one realistic stream, timestamps within the last hour."""
    names = [n for n, _ in harness.EVENT_MIX]
    weights = [w for _, w in harness.EVENT_MIX]
    bodies, rows = [], []
    step = dt.timedelta(seconds=3600 / total)
    base = now - dt.timedelta(hours=1)
    for b in range(0, total, BATCH):
        batch = []
        for i in range(b, min(total, b + BATCH)):
            name = rng.choices(names, weights)[0]
            if name == "api_call":
                props = {
                    "region": rng.choice(("eu", "us", "ap")),
                    "status": 500 if rng.random() < 0.05 else 200,
                }
            elif name == "llm_request":
                props = {
                    "model": rng.choice(("small", "large", "free")),
                    "tokens": rng.randint(1, 2000),
                }
            elif name == "storage":
                props = {
                    "tier": rng.choice(("hot", "cold", "archive")),
                    "gb": round(rng.random() * 500, 2),
                }
            else:
                props = {"active": rng.randint(1, 8)}  # below every seat quota
            external_id, customer_id = rng.choice(customers)
            ts = base + step * i
            event_id = f"in-{i:09d}"
            batch.append(
                {
                    "id": event_id,
                    "name": name,
                    "customer": external_id,
                    "timestamp": ts.isoformat().replace("+00:00", "Z"),
                    "properties": props,
                }
            )
            rows.append(
                f"{event_id}\t{name}\t{customer_id}\t{ts.isoformat()}\t"
                f"{json.dumps(props, separators=(',', ':'))}\n"
            )
        bodies.append(json.dumps({"events": batch}).encode())
    return bodies, rows


def _copy_baseline(rows: list[str]) -> float:
    """Seconds to COPY ``rows`` into a fresh copy of the events table (same indexes)."""
    with harness.pg_connect() as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy_event")
        conn.execute("CREATE TABLE bench_copy_event (LIKE metering_event INCLUDING ALL)")
        conn.execute(
            "ALTER TABLE bench_copy_event ADD FOREIGN KEY (customer_id) "
            "REFERENCES billing_customer (id) DEFERRABLE INITIALLY DEFERRED"
        )
        received = dt.datetime.now(dt.UTC).isoformat()
        data = "".join(f"{r[:-1]}\t{received}\n" for r in rows).encode()
        conn.execute("CHECKPOINT")
        t = time.perf_counter()
        with (
            conn.transaction(),
            conn.cursor().copy(
                'COPY bench_copy_event (event_id, name, customer_id, "timestamp", '
                "properties, received_at) FROM STDIN"
            ) as copy,
        ):
            for offset in range(0, len(data), 1 << 20):
                copy.write(data[offset : offset + (1 << 20)])
        elapsed = time.perf_counter() - t
        copied = conn.execute("SELECT count(*) FROM bench_copy_event").fetchone()[0]
        assert copied == len(rows), f"COPY stored {copied} of {len(rows)}"
        conn.execute("DROP TABLE bench_copy_event")
    return elapsed


def run(args) -> bool:
    total = harness.size("ingest_events", 1_000_000, 30_000, args)
    n_customers = harness.size("ingest_customers", 10_000, 1_000, args)
    workers = harness.size("workers", 3, 3, args)
    connections = harness.size("connections", 4, 4, args)
    harness.setup_django(fresh=True, db_suffix="_ingest")
    from django.db import connection
    from django.utils import timezone

    t = time.perf_counter()
    meters = harness.meters_create()
    offers = harness.catalog_create(meters)
    customers = harness.customers_bulk(n_customers)
    now = timezone.now()
    period_start = (now - dt.timedelta(days=25)).replace(hour=0, minute=0, second=0, microsecond=0)
    subscribed = harness.size("ingest_subscriptions", 1, 1, args) != 0
    if subscribed:
        harness.subscribe_bulk([cid for _, cid in customers], offers, period_start)
    key = harness.api_key()
    harness.log(
        f"catalog, {n_customers:,} customers and subscriptions: {time.perf_counter() - t:.1f}s"
    )
    t = time.perf_counter()
    bodies, rows = _events(total, customers, random.Random(7), now)
    harness.log(f"{total:,} events encoded in {time.perf_counter() - t:.1f}s")

    lock = threading.Lock()
    counts = {"accepted": 0, "duplicates": 0, "rejected": 0, "bad": 0}

    def on_response(status, payload):
        if status != 200:
            with lock:
                counts["bad"] += 1
                if counts["bad"] <= 3:
                    print(f"  HTTP {status}: {payload[:300]!r}")
            return
        result = json.loads(payload)
        with lock:
            counts["accepted"] += result["accepted"]
            counts["duplicates"] += result["duplicates"]
            counts["rejected"] += len(result["rejected"])

    jobs = [("POST", "/api/v1/events", body) for body in bodies]
    warm = min(len(jobs) // 10, 2 * workers)
    with harness.gunicorn(workers=workers) as host:
        harness.http_run(host, key, jobs[:warm], connections, on_response)
        elapsed, latencies, statuses = harness.http_run(
            host, key, jobs[warm:], connections, on_response
        )
    timed_events = total - warm * BATCH
    rate = timed_events / elapsed

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT event_id) FROM metering_event")
        stored, distinct = cursor.fetchone()
        cursor.execute(
            "SELECT m.name, sum(r.count) FROM metering_meterrollup r "
            "JOIN metering_meter m ON m.id = r.meter_id WHERE r.granularity = 86400 GROUP BY 1"
        )
        rolled = dict(cursor.fetchall())
        rollup_errors = []
        for spec in harness.METERS:
            cursor.execute(
                f"SELECT count(*) FROM metering_event WHERE name = %s AND {spec['sql_where']}",
                [spec["event_name"]],
            )
            expected = cursor.fetchone()[0]
            if rolled.get(spec["name"], 0) != expected:
                rollup_errors.append(f"{spec['name']}: {rolled.get(spec['name'])} != {expected}")
        cursor.execute("SELECT count(*), coalesce(sum(count), 0) FROM quotas_usagebalance")
        balance_rows, _ = cursor.fetchone()
    for line in rollup_errors:
        print(f"  ROLLUP MISMATCH {line}")

    copy_s = _copy_baseline(rows)
    copy_rate = total / copy_s
    ratio = rate / copy_rate
    lat = harness.timing_summary(latencies)
    rows_out = [
        (
            "sizes",
            f"{total:,} events in batches of {BATCH:,}, {n_customers:,} customers, "
            f"5 meters with filters, {n_customers if subscribed else 0:,} subscriptions",
        ),
        ("server", f"gunicorn {workers} sync workers, {connections} client connections"),
        (
            "HTTP ingest",
            f"{harness.fmt_rate(rate)} ({timed_events:,} events in {elapsed:.1f}s, "
            f"{warm} warm-up batches not timed)",
        ),
        ("batch latency", harness.timing_row(lat)),
        ("raw COPY, same rows", f"{harness.fmt_rate(copy_rate)} ({total:,} rows in {copy_s:.1f}s)"),
        ("HTTP / COPY", f"{ratio:.2f}"),
        (
            "responses",
            f"{statuses}; accepted {counts['accepted']:,}, duplicates "
            f"{counts['duplicates']:,}, rejected {counts['rejected']:,}",
        ),
        ("stored", f"{stored:,} events ({distinct:,} distinct ids), {balance_rows:,} balance rows"),
        ("rollups vs raw", "equal" if not rollup_errors else f"{len(rollup_errors)} mismatches"),
    ]
    lossless = stored == distinct == total == counts["accepted"] and counts["bad"] == 0
    return harness.report(
        "ingest: POST /api/v1/events (gunicorn, PostgreSQL)",
        rows_out,
        [
            (">= 20,000 events/s", rate >= 20_000),
            (">= 0.5 x raw COPY rate", ratio >= 0.5),
            ("stored = sent (none lost or doubled)", lossless),
            ("day rollups equal raw counts", not rollup_errors),
        ],
    )
