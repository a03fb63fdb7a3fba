"""Current-period usage of one (meter, customer) with 10 M stored events (issue 3).

Three reads, interleaved sample by sample in one process on one connection:

* the app's usage read: ``metering.selectors.meter_value`` (rollups, plus raw events only for
  the last < 15 minutes of the window);
* the same value aggregated from raw events: ``meter_value_from_events`` (the app's reference,
  rows filtered in Python) and an equivalent SQL aggregate (filter and aggregation in SQL,
  the fastest a raw read can be);
* the floor: a single-row primary-key read (``Customer.objects.get(pk=...)``).

Customers come in two groups: typical ones and the hot 1 % that sends 30 % of the events
(see ``harness.seed_usage``); (meter, customer) pairs are drawn at random in each.

Targets (DESIGN.md §6): usage p99 <= 3x the PK read p99; usage >= 100x faster than the raw
aggregate. Every value read from rollups is checked against both raw aggregates.

Sizes: BENCH_USAGE_SAMPLES (typical pairs, 3,000; --quick 300), BENCH_USAGE_RAW_SAMPLES (300;
60), BENCH_USAGE_HOT_SAMPLES (1,000; 100), BENCH_USAGE_HOT_RAW_SAMPLES (20; 3).
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

    rng = random.Random(42)
    meters = list(Meter.objects.order_by("id"))
    specs = {m["name"]: m for m in harness.METERS}
    ids = list(Customer.objects.order_by("id").values_list("id", flat=True))
    hot_n = seed["hot_customers"]
    groups = {
        "typical": (
            ids[hot_n:],
            harness.size("usage_samples", 3000, 300, args),
            harness.size("usage_raw_samples", 300, 60, args),
        ),
        "hot": (
            ids[:hot_n],
            harness.size("usage_hot_samples", 1000, 100, args),
            harness.size("usage_hot_raw_samples", 20, 3, args),
        ),
    }
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

    def events_of(meter, cid):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM metering_event WHERE customer_id = %s AND name = %s "
                'AND "timestamp" >= %s AND "timestamp" < %s',
                [cid, meter.event_name, start, end],
            )
            return cursor.fetchone()[0]

    # Warm the connection and the caches (not timed).
    for _ in range(50):
        m, c = rng.choice(meters), rng.choice(ids)
        Customer.objects.get(pk=c)
        selectors.meter_value(meter=m, customer_id=c, start=start, end=end)

    pk_all, usage_all = [], []
    mismatches = checked = 0
    results = {}
    for group, (pool, samples, raw_samples) in groups.items():
        pk_t, usage_t, raw_app_t, raw_sql_t, events_read = [], [], [], [], []
        pairs = [(rng.choice(meters), rng.choice(pool)) for _ in range(samples)]
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
                checked += 1
                if not (value == expected == reference):
                    mismatches += 1
                    if mismatches <= 3:
                        print(f"  MISMATCH {meter.name} #{cid}: {value} {expected} {reference}")
                events_read.append(events_of(meter, cid))
        pk_all += pk_t
        usage_all += usage_t
        results[group] = {
            "customers": len(pool),
            "pk": harness.timing_summary(pk_t),
            "usage": harness.timing_summary(usage_t),
            "raw_sql": harness.timing_summary(raw_sql_t),
            "raw_app": harness.timing_summary(raw_app_t),
            "events": events_read,
        }

    pk, usage = harness.timing_summary(pk_all), harness.timing_summary(usage_all)
    p99_ratio = usage["p99_ms"] / pk["p99_ms"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM metering_meterrollup")
        rollups = cursor.fetchone()[0]
    seeded = (
        "reused an earlier seed"
        if seed["reused"]
        else f"{seed['seed_s']}s (events {seed['events_load_s']}s, rollups "
        f"{'in SQL + balances rebuilt by the app' if seed.get('rollups_mode') == 'sql' else 'by the app back-fill'}"
        f" {seed['backfill_s']}s)"
    )
    rows = [
        (
            "data",
            f"{seed['events']:,} events, {seed['customers']:,} customers "
            f"({hot_n} hot ones send {seed['hot_share']:.0%} of the events), 5 meters, "
            f"{rollups:,} rollup rows",
        ),
        ("seed", seeded),
        ("window", f"{start:%Y-%m-%d %H:%M} .. now (the current billing period), UTC"),
        ("PK read (Customer by pk)", harness.timing_row(pk)),
        ("usage read (meter_value)", harness.timing_row(usage)),
        ("usage p99 / PK p99", f"{p99_ratio:.2f}x"),
    ]
    verdicts = [("usage read p99 <= 3x PK read p99", p99_ratio <= 3)]
    for group, r in results.items():
        ev = r["events"]
        vs_sql = r["raw_sql"]["p50_ms"] / r["usage"]["p50_ms"]
        vs_app = r["raw_app"]["p50_ms"] / r["usage"]["p50_ms"]
        rows += [
            (
                f"[{group}] raw events per read",
                f"mean {sum(ev) / max(1, len(ev)):,.0f}, max {max(ev, default=0):,} "
                f"(one customer's events of the meter's name; {r['customers']:,} customers)",
            ),
            (f"[{group}] usage read", harness.timing_row(r["usage"])),
            (f"[{group}] raw SQL aggregate", harness.timing_row(r["raw_sql"])),
            (f"[{group}] meter_value_from_events", harness.timing_row(r["raw_app"])),
            (f"[{group}] raw p50 / usage p50", f"SQL {vs_sql:,.1f}x, app reference {vs_app:,.1f}x"),
        ]
        verdicts += [
            (f"usage >= 100x faster than raw SQL aggregate, {group} customer (p50)", vs_sql >= 100),
            (f"usage >= 100x faster than meter_value_from_events, {group} (p50)", vs_app >= 100),
        ]
    rows.append(("rollup vs raw mismatches", f"{mismatches} of {checked}"))
    verdicts.append(("rollup values equal raw aggregates", mismatches == 0))
    return harness.report("usage: current-period usage read, 10 M events", rows, verdicts)
