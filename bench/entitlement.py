"""Entitlement check over HTTP with 10 M stored events (issue 4).

``GET /api/v1/customers/{external_id}/entitlements/{service_code}`` against the floor
``GET /api/v1/customers/{external_id}`` (one row by a unique key through the same stack:
gunicorn, DRF, API-key authentication, PostgreSQL), in the same run, on the seed shared with
`usage` (``--reuse`` keeps it). Services are drawn among the five metered ones and the on/off
one, customers at random.

Two phases, each alternating blocks of both endpoints so they see the same conditions:
latency on one keep-alive connection, then throughput over BENCH_CONNECTIONS connections
(default: as many as gunicorn workers, BENCH_WORKERS, default 2). Target: p99 <= 3x the
floor's p99 (checked in both phases). A few answers are checked against the meter's value
read from rollups (``metering.selectors.meter_value``).

Sizes: BENCH_ENTITLEMENT_REQUESTS per endpoint and phase (4,000; --quick 200).
"""

import json
import random
from decimal import Decimal

from bench import harness

SERVICES = ("api-calls", "eu-api-calls", "llm-tokens", "storage", "seats", "sso")


def _phase(host, key, ent_jobs, cust_jobs, connections, rounds=4):
    """Alternate blocks of both endpoints; returns per-endpoint (latencies, seconds, statuses)."""
    out = {"entitlement": [[], 0.0, {}], "customer": [[], 0.0, {}]}
    for r in range(rounds):
        for name, jobs in (("customer", cust_jobs), ("entitlement", ent_jobs)):
            block = jobs[r::rounds]
            elapsed, lat, statuses = harness.http_run(host, key, block, connections)
            acc = out[name]
            acc[0].extend(lat)
            acc[1] += elapsed
            for code, n in statuses.items():
                acc[2][code] = acc[2].get(code, 0) + n
    return out


def run(args) -> bool:
    seed = harness.seed_usage(args)
    from django.utils import timezone

    from billing.models import Customer
    from metering import selectors
    from metering.models import Meter

    requests = harness.size("entitlement_requests", 4000, 200, args)
    workers = harness.size("workers", 2, 2, args)
    connections = harness.size("connections", workers, workers, args)
    key = harness.api_key()
    rng = random.Random(11)
    externals = list(Customer.objects.values_list("external_id", flat=True))
    ent_jobs = [
        (
            "GET",
            f"/api/v1/customers/{rng.choice(externals)}/entitlements/{rng.choice(SERVICES)}",
            None,
        )
        for _ in range(requests)
    ]
    cust_jobs = [
        ("GET", f"/api/v1/customers/{rng.choice(externals)}", None) for _ in range(requests)
    ]

    checks, wrong = 0, []
    with harness.gunicorn(workers=workers) as host:
        # warm every worker and the caches
        harness.http_run(host, key, ent_jobs[:200] + cust_jobs[:200], connections)
        single = _phase(host, key, ent_jobs, cust_jobs, 1)
        loaded = _phase(host, key, ent_jobs, cust_jobs, connections)
        # spot checks: `used` of api-calls (window = the billing period) = the meter's value
        client = harness.Client(host, key)
        meter = Meter.objects.get(name="API calls")
        ids = dict(Customer.objects.values_list("external_id", "id"))
        for ext in rng.sample(externals, 5):
            status, body = client.request("GET", f"/api/v1/customers/{ext}/entitlements/api-calls")
            used = Decimal(json.loads(body)["used"])
            expected = selectors.meter_value(
                meter=meter, customer_id=ids[ext], start=seed["period_start"], end=timezone.now()
            )
            checks += 1
            if status != 200 or used != expected:
                wrong.append(f"{ext}: used {used} != meter value {expected}")
        client.close()
    for line in wrong:
        print(f"  CHECK FAILED {line}")

    rows = [
        (
            "data",
            f"{seed['events']:,} events, {seed['customers']:,} customers with one subscription "
            f"each (3 offers, 6 services), seed "
            + ("reused" if seed["reused"] else f"{seed['seed_s']}s"),
        ),
        ("server", f"gunicorn {workers} sync workers"),
    ]
    verdicts = []
    all_ok = True
    for label, phase in (
        ("1 connection", single),
        (f"{connections} connections", loaded),
    ):
        ent_lat, ent_s, ent_status = phase["entitlement"]
        cus_lat, cus_s, cus_status = phase["customer"]
        ent, cus = harness.timing_summary(ent_lat), harness.timing_summary(cus_lat)
        ratio = ent["p99_ms"] / cus["p99_ms"]
        rows += [
            (
                f"[{label}] customer GET",
                f"{harness.timing_row(cus)}  {harness.fmt_rate(len(cus_lat) / cus_s)}",
            ),
            (
                f"[{label}] entitlement GET",
                f"{harness.timing_row(ent)}  {harness.fmt_rate(len(ent_lat) / ent_s)}",
            ),
            (
                f"[{label}] p99 ratio",
                f"{ratio:.2f}x (p50 ratio {ent['p50_ms'] / cus['p50_ms']:.2f}x)",
            ),
            (f"[{label}] statuses", f"entitlement {ent_status}, customer {cus_status}"),
        ]
        all_ok = all_ok and set(ent_status) == {200} and set(cus_status) == {200}
        verdicts.append((f"entitlement p99 <= 3x customer-read p99 ({label})", ratio <= 3))
    rows.append(
        ("answers checked", f"{checks - len(wrong)}/{checks} api-calls `used` = meter_value")
    )
    verdicts.append(("every answer 200 and checked values right", all_ok and not wrong))
    return harness.report("entitlement: GET entitlements over HTTP, 10 M events", rows, verdicts)
