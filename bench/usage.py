"""Current-period usage of one (meter, customer) with 10 M stored events (issue 3).

Three reads, interleaved sample by sample in one process on one connection:

* the app's usage read: ``metering.selectors.meter_value`` (rollups, plus raw events only for
  the last < 15 minutes of the window);
* the same value aggregated from raw events: ``meter_value_from_events`` (the app's reference,
  rows filtered in Python) and an equivalent SQL aggregate (filter and aggregation in SQL,
  the fastest a raw read can be);
* the floor: a single-row primary-key read (``Customer.objects.get(pk=...)``).

Targets (DESIGN.md §6): usage p99 <= 3x the PK read p99; usage >= 100x faster than the raw
aggregate. Every value read from rollups is checked against the raw SQL aggregate.
"""

import random
import time

from bench import harness


def run(args) -> bool:
    seed = harness.seed_usage(args)
    from django.db import connection
    from django.utils import timezone

    from billing.models import Customer
    from metering import selectors
    from metering.models import Meter

    samples = harness.size("usage_samples", 3000, 300, args)
    raw_samples = harness.size("usage_raw_samples", 300, 60, args)
    rng = random.Random(42)
    meters = list(Meter.objects.order_by("id"))
    specs = {m["name"]: m for m in harness.METERS}
    customer_ids = list(Customer.objects.values_list("id", flat=True))
    start = seed["period_start"]
    end = timezone.now()

    def raw_sql(meter, cid):
        spec = specs[meter.name]
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {spec['sql_value']} FROM metering_event WHERE customer_id = %s "
                f'AND name = %s AND "timestamp" >= %s AND "timestamp" < %s '
                f"AND {spec['sql_where']}",
                [cid, meter.event_name, start, end],
            )
            return cursor.fetchone()[0]

    # Warm the caches and the connection (not timed).
    for _ in range(50):
        m, c = rng.choice(meters), rng.choice(customer_ids)
        Customer.objects.get(pk=c)
        selectors.meter_value(meter=m, customer_id=c, start=start, end=end)
        raw_sql(m, c)

    pk_t, usage_t, raw_app_t, raw_sql_t = [], [], [], []
    mismatches = 0
    events_read = []
    pairs = [(rng.choice(meters), rng.choice(customer_ids)) for _ in range(samples)]
    for i, (meter, cid) in enumerate(pairs):
        t = time.perf_counter()
        Customer.objects.get(pk=cid)
        pk_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        value = selectors.meter_value(meter=meter, customer_id=cid, start=start, end=end)
        usage_t.append(time.perf_counter() - t)
        if i < raw_samples:
            t = time.perf_counter()
            expected = raw_sql(meter, cid)
            raw_sql_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            reference = selectors.meter_value_from_events(
                meter=meter, customer_id=cid, start=start, end=end
            )
            raw_app_t.append(time.perf_counter() - t)
            if not (value == expected == reference):
                mismatches += 1
                if mismatches <= 3:
                    print(f"  MISMATCH {meter.name} customer {cid}: {value} {expected} {reference}")
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM metering_event WHERE customer_id = %s AND name = %s "
                    'AND "timestamp" >= %s AND "timestamp" < %s',
                    [cid, meter.event_name, start, end],
                )
                events_read.append(cursor.fetchone()[0])

    pk, usage = harness.timing_summary(pk_t), harness.timing_summary(usage_t)
    raw_app, raw_sql_s = harness.timing_summary(raw_app_t), harness.timing_summary(raw_sql_t)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM metering_meterrollup")
        rollups = cursor.fetchone()[0]
    p99_ratio = usage["p99_ms"] / pk["p99_ms"]
    vs_sql = raw_sql_s["p50_ms"] / usage["p50_ms"]
    vs_app = raw_app["p50_ms"] / usage["p50_ms"]
    rows = [
        (
            "data",
            f"{seed['events']:,} events, {seed['customers']:,} customers, 5 meters, "
            f"{rollups:,} rollup rows",
        ),
        (
            "seed",
            "reused"
            if seed["reused"]
            else f"{seed['seed_s']}s (events {seed['events_load_s']}s, "
            f"back-fill {seed['backfill_s']}s)",
        ),
        ("window", f"{start:%Y-%m-%d %H:%M} .. now (current billing period), UTC"),
        (
            "raw events per read",
            f"mean {sum(events_read) / max(1, len(events_read)):,.0f}, "
            f"max {max(events_read, default=0):,} (one meter's event name, one customer)",
        ),
        ("PK read (Customer by pk)", harness.timing_row(pk)),
        ("usage read (meter_value)", harness.timing_row(usage)),
        ("raw SQL aggregate", harness.timing_row(raw_sql_s)),
        ("raw meter_value_from_events", harness.timing_row(raw_app)),
        ("usage p99 / PK p99", f"{p99_ratio:.2f}x"),
        ("raw SQL p50 / usage p50", f"{vs_sql:,.0f}x"),
        ("raw app p50 / usage p50", f"{vs_app:,.0f}x"),
        ("rollup vs raw mismatches", f"{mismatches} of {len(raw_sql_t)}"),
    ]
    return harness.report(
        "usage: current-period usage read, 10 M events",
        rows,
        [
            ("usage read p99 <= 3x PK read p99", p99_ratio <= 3),
            ("usage read >= 100x faster than raw SQL aggregate (p50)", vs_sql >= 100),
            ("usage read >= 100x faster than meter_value_from_events (p50)", vs_app >= 100),
            ("rollup values equal raw aggregates", mismatches == 0),
        ],
    )
