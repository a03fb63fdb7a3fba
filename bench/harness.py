"""Shared pieces for the benchmarks: a scratch PostgreSQL database, a gunicorn server, an HTTP
client with keep-alive, percentiles and the printed report.

Every benchmark prints its figures next to a baseline measured in the same run on the same
machine (DESIGN.md §6), so the ratios mean something on any hardware.
"""

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/kota_bench"


_db_suffix = ""


def database_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    if _db_suffix:
        parts = urlsplit(url)
        url = parts._replace(path=parts.path + _db_suffix).geturl()
    return url


def setup_django(fresh: bool = True, db_suffix: str = "") -> None:
    """Point Django at the bench database (BENCH_DATABASE_URL, plus ``db_suffix`` for a
    benchmark that must not drop the shared seed), recreate it when asked, and migrate."""
    global _db_suffix
    _db_suffix = db_suffix
    url = database_url()
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    os.environ["DJANGO_DEBUG"] = "false"
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
    if fresh:
        _recreate_database(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _recreate_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn(workers: int = 2, threads: int = 1):
    """The app as it runs in production: gunicorn + the production-like settings."""
    port = free_port()
    env = {**os.environ, "DJANGO_DEBUG": "false", "DATABASE_CONN_MAX_AGE": "600"}
    cmd = [
        str(Path(sys.executable).parent / "gunicorn"),
        "config.wsgi",
        f"--bind=127.0.0.1:{port}",
        f"--workers={workers}",
        f"--threads={threads}",
        "--log-level=warning",
        "--timeout=120",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        _wait_for_port(port)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not listen on {port} within {timeout}s")


class Client:
    """A keep-alive HTTP/1.1 client: one connection, reused like a real backend would."""

    def __init__(self, host: str, api_key: str):
        self.host = host
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection(host, timeout=120)

    def request(self, method: str, path: str, body=None) -> tuple[int, bytes]:
        data = body if isinstance(body, bytes | None) else json.dumps(body).encode()
        self.conn.request(method, path, body=data, headers=self.headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def timing_summary(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "mean_ms": statistics.fmean(ms) if ms else float("nan"),
    }


def report(title: str, rows: list[tuple[str, str]], verdicts: list[tuple[str, bool]]) -> bool:
    """Print one benchmark's figures and its targets; returns whether every target was met."""
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    rows = [*rows, ("machine load (1/5/15 min)", f"{load} on {os.cpu_count()} cores (shared)")]
    width = max(len(label) for label, _ in rows)
    print(f"\n== {title}")
    for label, value in rows:
        print(f"  {label.ljust(width)}  {value}")
    for target, met in verdicts:
        print(f"  target {'MET   ' if met else 'MISSED'}  {target}")
    sys.stdout.flush()
    return all(met for _, met in verdicts)


# --------------------------------------------------------------------------- options and sizes


def reuse_requested(args) -> bool:
    """`--reuse` (or BENCH_REUSE=1): keep an already-seeded bench database if it fits."""
    return bool(getattr(args, "reuse", False)) or os.environ.get("BENCH_REUSE", "") not in (
        "",
        "0",
    )


def size(name: str, full: int, quick: int, args) -> int:
    """A size: BENCH_<NAME> from the environment, else the full or the --quick default."""
    raw = os.environ.get(f"BENCH_{name.upper()}")
    if raw:
        return int(raw.replace("_", ""))
    return quick if getattr(args, "quick", False) else full


def fmt_rate(per_s: float) -> str:
    return f"{per_s:,.0f}/s"


def fmt_ms(ms: float) -> str:
    return f"{ms:.3f} ms"


def timing_row(summary: dict[str, float]) -> str:
    return (
        f"p50 {fmt_ms(summary['p50_ms'])}  p99 {fmt_ms(summary['p99_ms'])}  "
        f"mean {fmt_ms(summary['mean_ms'])}  (n={summary['n']:,})"
    )


def log(message: str) -> None:
    print(f"  .. {message}", flush=True)


# --------------------------------------------------------------------------- database helpers


def pg_connect(autocommit: bool = True):
    """A raw psycopg connection to the bench database (outside Django)."""
    import psycopg

    return psycopg.connect(database_url(), autocommit=autocommit)


def database_exists() -> bool:
    import psycopg

    parts = urlsplit(database_url())
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [parts.path.lstrip("/")]
        ).fetchone()
    return row is not None


def api_key(name: str = "bench") -> str:
    """A fresh API key (raw value) for the HTTP benchmarks."""
    from core.models import ApiKey, generate_api_key, hash_api_key

    raw = generate_api_key()
    ApiKey.objects.create(name=name, prefix=raw[:12], digest=hash_api_key(raw))
    return raw


def customers_bulk(count: int, prefix: str = "cus_") -> list[tuple[str, int]]:
    """``count`` customers created in bulk; returns (external_id, id) in creation order."""
    from billing.models import Customer

    Customer.objects.bulk_create(
        [
            Customer(external_id=f"{prefix}{i:06d}", name=f"Customer {i}", email="")
            for i in range(count)
        ],
        batch_size=5000,
    )
    return list(
        Customer.objects.filter(external_id__startswith=prefix)
        .order_by("id")
        .values_list("external_id", "id")
    )


# --------------------------------------------------------------------------- catalog

#: The meters every benchmark uses: (name, event_name, aggregation, property, filter, SQL
#: equivalent of the filter and value over raw events, for the raw-aggregate baselines).
METERS = [
    {
        "name": "API calls",
        "event_name": "api_call",
        "aggregation": "count",
        "property": "",
        "filter": {
            "conjunction": "and",
            "clauses": [{"property": "status", "operator": "less_than", "value": 500}],
        },
        "sql_where": "(properties->>'status')::numeric < 500",
        "sql_value": "COUNT(*)",
        "sql_prop": None,
    },
    {
        "name": "EU API calls",
        "event_name": "api_call",
        "aggregation": "count",
        "property": "",
        "filter": {
            "conjunction": "and",
            "clauses": [{"property": "region", "operator": "equals", "value": "eu"}],
        },
        "sql_where": "properties->>'region' = 'eu'",
        "sql_value": "COUNT(*)",
        "sql_prop": None,
    },
    {
        "name": "LLM tokens",
        "event_name": "llm_request",
        "aggregation": "sum",
        "property": "tokens",
        "filter": {
            "conjunction": "and",
            "clauses": [{"property": "model", "operator": "not_equals", "value": "free"}],
        },
        "sql_where": "properties->>'model' <> 'free' AND properties ? 'tokens'",
        "sql_value": "COALESCE(SUM((properties->>'tokens')::numeric), 0)",
        "sql_prop": "(properties->>'tokens')::numeric",
    },
    {
        "name": "Storage peak",
        "event_name": "storage",
        "aggregation": "max",
        "property": "gb",
        "filter": {
            "conjunction": "and",
            "clauses": [{"property": "tier", "operator": "not_equals", "value": "archive"}],
        },
        "sql_where": "properties->>'tier' <> 'archive' AND properties ? 'gb'",
        "sql_value": "MAX((properties->>'gb')::numeric)",
        "sql_prop": "(properties->>'gb')::numeric",
    },
    {
        "name": "Active seats",
        "event_name": "seats",
        "aggregation": "last",
        "property": "active",
        "filter": {
            "conjunction": "and",
            "clauses": [{"property": "active", "operator": "greater_than_or_equals", "value": 0}],
        },
        "sql_where": "(properties->>'active')::numeric >= 0",
        # the value of the latest (timestamp, event_id) event, as the app decides "last"
        "sql_value": "(ARRAY_AGG((properties->>'active')::numeric "
        'ORDER BY "timestamp" DESC, event_id COLLATE "C" DESC))[1]',
        "sql_prop": "(properties->>'active')::numeric",
    },
]

#: Share of events per event name (api_call, llm_request, storage, seats).
EVENT_MIX = (("api_call", 0.5), ("llm_request", 0.3), ("storage", 0.1), ("seats", 0.1))


def meters_create() -> list:
    """The five meters, through the service (so rollups and listeners are live)."""
    from metering.services import meter_create

    return [
        meter_create(
            name=m["name"],
            event_name=m["event_name"],
            aggregation=m["aggregation"],
            property=m["property"],
            filter=m["filter"],
        )
        for m in METERS
    ]


def catalog_create(meters: list) -> list:
    """Service groups, services and three offers (as quotas/demo.py builds them) through the
    quotas services; returns the offers."""
    from quotas import services as q

    usage = q.service_group_create(name="Usage", kind="usage_based")
    seats = q.service_group_create(name="Seats", kind="seat_based")
    features = q.service_group_create(name="Features", kind="on_off")
    by_name = {m.name: m for m in meters}
    q.service_create(code="api-calls", name="API calls", group=usage, meter=by_name["API calls"])
    q.service_create(
        code="eu-api-calls", name="EU API calls", group=usage, meter=by_name["EU API calls"]
    )
    q.service_create(code="llm-tokens", name="LLM tokens", group=usage, meter=by_name["LLM tokens"])
    q.service_create(code="storage", name="Storage", group=usage, meter=by_name["Storage peak"])
    q.service_create(code="seats", name="Seats", group=seats, meter=by_name["Active seats"])
    q.service_create(code="sso", name="Single sign-on", group=features)
    offers = []
    for level, (code, calls, tokens) in enumerate(
        [("starter", 50_000, 1_000_000), ("pro", 500_000, 10_000_000), ("scale", None, None)]
    ):
        services = [
            {
                "service": "api-calls",
                "included": None if calls is None else str(calls),
                "limit_behaviour": "block",
            },
            {"service": "eu-api-calls", "included": "100000", "limit_behaviour": "notify"},
            {
                "service": "llm-tokens",
                "included": None if tokens is None else str(tokens),
                "limit_behaviour": "overage",
                "pricing": {"model": "per_unit", "unit_price": "0.00002"},
                "reset_interval": "day" if level == 0 else "billing_period",
            },
            {"service": "storage", "included": "1000", "limit_behaviour": "notify"},
            {"service": "seats", "included": str(10 * (level + 1)), "limit_behaviour": "block"},
            {"service": "sso", "included": level >= 1},
        ]
        offers.append(
            q.offer_create(
                code=code,
                name=code.title(),
                currency="USD",
                billing_interval="month",
                timezone="UTC",
                level=level,
                services=services,
            )
        )
    return offers


def subscribe_all(customer_ids: list[int], offers: list, start) -> float:
    """One subscription per customer (offers in turn) through ``subscription_start``;
    returns the seconds taken."""
    from billing.models import Customer
    from quotas.services import subscription_start

    t0 = time.perf_counter()
    customers = Customer.objects.in_bulk(customer_ids)
    for i, cid in enumerate(customer_ids):
        subscription_start(customer=customers[cid], offer=offers[i % len(offers)], start=start)
    return time.perf_counter() - t0


def subscribe_bulk(customer_ids: list[int], offers: list, start) -> float:
    """Like ``subscribe_all`` but fast, for an empty events table only: the first customer
    of each offer subscribes through ``subscription_start``; the others get a copy of that
    subscription in bulk (no balance to seed: no event is stored yet)."""
    from billing.models import Customer, Subscription
    from quotas.services import subscription_start

    t0 = time.perf_counter()
    templates = [
        subscription_start(customer=Customer.objects.get(pk=cid), offer=offer, start=start)
        for cid, offer in zip(customer_ids, offers, strict=False)
    ]
    fields = [
        f.name
        for f in Subscription._meta.concrete_fields
        if f.name not in ("id", "customer", "created_at")
    ]
    rest = [
        Subscription(
            customer_id=cid,
            **{name: getattr(templates[i % len(templates)], name) for name in fields},
        )
        for i, cid in enumerate(customer_ids)
        if i >= len(templates)
    ]
    Subscription.objects.bulk_create(rest, batch_size=5000)
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- HTTP load


def http_run(
    host: str,
    key: str,
    jobs: list[tuple[str, str, object]],
    connections: int,
    on_response=None,
) -> tuple[float, list[float], dict[int, int]]:
    """Send ``jobs`` (method, path, body) over ``connections`` keep-alive connections (one
    thread each, pulling from a shared queue; ``on_response(status, body)`` is called in the
    sending thread, so keep it cheap and thread-safe). Returns (elapsed s, per-request latencies in s,
    count per HTTP status). Bodies should be pre-encoded bytes so the client stays light."""
    import threading

    lock = threading.Lock()
    it = iter(jobs)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[BaseException] = []

    def worker():
        client = Client(host, key)
        mine: list[float] = []
        seen: dict[int, int] = {}
        try:
            while True:
                with lock:
                    job = next(it, None)
                if job is None:
                    break
                method, path, body = job
                t = time.perf_counter()
                code, payload = client.request(method, path, body)
                mine.append(time.perf_counter() - t)
                if on_response is not None:
                    on_response(code, payload)
                seen[code] = seen.get(code, 0) + 1
        except BaseException as exc:  # reported after the join
            errors.append(exc)
        finally:
            client.close()
            with lock:
                latencies.extend(mine)
                for code, n in seen.items():
                    statuses[code] = statuses.get(code, 0) + n

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return elapsed, latencies, statuses


# --------------------------------------------------------------------------- the 10 M seed

SEED_VERSION = 2


def drop_indexes(cursor, table: str) -> list[str]:
    """Drop a table's secondary indexes, unique and foreign-key constraints (not the primary
    key) for a bulk load; returns the statements that rebuild them exactly as they were."""
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('u', 'f')",
        [table],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid = %s::regclass AND NOT indisprimary "
        "AND indexrelid NOT IN (SELECT conindid FROM pg_constraint WHERE conrelid = %s::regclass)",
        [table, table],
    )
    indexes = cursor.fetchall()
    for name, _ in constraints:
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f"DROP INDEX {name}")
    rebuild = [ddl for _, ddl in indexes]
    # unique first (its index), foreign keys last (validated in one pass)
    for name, ddl in sorted(constraints, key=lambda c: c[1].startswith("FOREIGN")):
        rebuild.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {ddl}')
    return rebuild


_QUARTER_ROLLUPS_SQL = """
INSERT INTO metering_meterrollup (meter_id, generation, customer_id, granularity, bucket_start,
  "count", total, maximum, last_at, last_key, last_value)
SELECT %(meter)s, %(generation)s, customer_id, 900, b, count(*), COALESCE(sum(v), 0), max(v),
  (array_agg("timestamp" ORDER BY "timestamp" DESC, event_id COLLATE "C" DESC)
     FILTER (WHERE v IS NOT NULL))[1],
  COALESCE((array_agg(event_id ORDER BY "timestamp" DESC, event_id COLLATE "C" DESC)
     FILTER (WHERE v IS NOT NULL))[1], ''),
  (array_agg(v ORDER BY "timestamp" DESC, event_id COLLATE "C" DESC)
     FILTER (WHERE v IS NOT NULL))[1]
FROM (SELECT customer_id, event_id, "timestamp", {value} AS v,
        to_timestamp(floor(extract(epoch FROM "timestamp") / 900) * 900) AS b
      FROM metering_event WHERE name = %(event_name)s AND {where}) e
GROUP BY customer_id, b
"""

_COARSER_ROLLUPS_SQL = """
INSERT INTO metering_meterrollup (meter_id, generation, customer_id, granularity, bucket_start,
  "count", total, maximum, last_at, last_key, last_value)
SELECT meter_id, generation, customer_id, %(granularity)s,
  to_timestamp(floor(extract(epoch FROM bucket_start) / %(granularity)s) * %(granularity)s) AS b,
  sum("count"), sum(total), max(maximum),
  (array_agg(last_at ORDER BY last_at DESC NULLS LAST, last_key COLLATE "C" DESC))[1],
  (array_agg(last_key ORDER BY last_at DESC NULLS LAST, last_key COLLATE "C" DESC))[1],
  (array_agg(last_value ORDER BY last_at DESC NULLS LAST, last_key COLLATE "C" DESC))[1]
FROM metering_meterrollup
WHERE meter_id = %(meter)s AND generation = %(generation)s AND granularity = 900
GROUP BY meter_id, generation, customer_id, b
"""


def rollups_build_sql(cursor, meters) -> None:
    """The rollups ``metering.rollups`` would write for the stored events, built in SQL: the
    meter's filter and value (``METERS``' SQL spellings), 15-minute partials per customer
    (count, exact sum, max, and "last" by (timestamp, event_id) in code-point order), then the
    hour and day partials merged from them, as ``rollups.rollup_rows`` does."""
    specs = {m["name"]: m for m in METERS}
    for meter in meters:
        spec = specs[meter.name]
        args = {"meter": meter.id, "generation": meter.generation, "event_name": meter.event_name}
        value = spec["sql_prop"] or "NULL::numeric"
        cursor.execute(
            _QUARTER_ROLLUPS_SQL.format(value=value, where=spec["sql_where"]),
            args,
        )
        for granularity in (3600, 86400):
            cursor.execute(_COARSER_ROLLUPS_SQL, {**args, "granularity": granularity})


#: The first 1 % of the customers ("hot") send this share of the events.
HOT_SHARE = 0.3

_EVENTS_SQL = """
INSERT INTO metering_event (event_id, name, customer_id, "timestamp", properties, received_at)
SELECT 'ev-' || g,
  CASE WHEN r < 0.5 THEN 'api_call' WHEN r < 0.8 THEN 'llm_request'
       WHEN r < 0.9 THEN 'storage' ELSE 'seats' END,
  CASE WHEN random() < %(hot_share)s THEN %(cmin)s + floor(random() * %(nhot)s)::bigint
       ELSE %(cmin)s + %(nhot)s + floor(random() * (%(ncust)s - %(nhot)s))::bigint END,
  %(start)s::timestamptz + random() * (%(end)s::timestamptz - %(start)s::timestamptz),
  CASE WHEN r < 0.5 THEN jsonb_build_object(
         'region', (ARRAY['eu','us','ap'])[1 + floor(random() * 3)::int],
         'status', CASE WHEN random() < 0.05 THEN 500 ELSE 200 END)
       WHEN r < 0.8 THEN jsonb_build_object(
         'model', (ARRAY['small','large','free'])[1 + floor(random() * 3)::int],
         'tokens', 1 + floor(random() * 2000)::int)
       WHEN r < 0.9 THEN jsonb_build_object(
         'tier', (ARRAY['hot','cold','archive'])[1 + floor(random() * 3)::int],
         'gb', round((random() * 500)::numeric, 2))
       ELSE jsonb_build_object('active', floor(random() * 50)::int) END,
  now()
FROM (SELECT g, random() AS r FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g) s
"""


def seed_usage(args) -> dict:
    """The shared 10 M-event database of `usage` and `entitlement` (sizes: BENCH_EVENTS,
    BENCH_CUSTOMERS; the first 1 % of the customers are "hot" and send HOT_SHARE of the
    events). With `--reuse` an existing seed of the same sizes is kept.

    1. meters (metering service), catalog and offers (quotas services), customers (bulk),
       one subscription each (``subscription_start``, anchored at ``period_start``), all
       before any event: the app's own paths, cheap on an empty events table;
    2. events generated server-side (``INSERT ... SELECT generate_series``, a bulk load like
       COPY) with the table's secondary indexes and constraints dropped, then rebuilt;
    3. rollups and balances built by the app's back-fill (``meter_backfill_start`` runs
       ``meter_backfill_run`` eagerly; its end calls the quota rebuild listener).
    """
    import datetime as dt

    events = size("events", 10_000_000, 100_000, args)
    customers = size("customers", 1_000, 50, args)
    rollups_mode = os.environ.get("BENCH_ROLLUPS", "sql")  # or "backfill" (the app's, slow)
    hot = max(1, customers // 100)
    wanted = {
        "version": SEED_VERSION,
        "events": events,
        "customers": customers,
        "hot_customers": hot,
        "hot_share": HOT_SHARE,
    }
    if reuse_requested(args) and database_exists():
        setup_django(fresh=False)
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('bench_seed') IS NOT NULL")
            found = None
            if cursor.fetchone()[0]:
                cursor.execute("SELECT meta FROM bench_seed")
                row = cursor.fetchone()
                found = json.loads(row[0]) if row and isinstance(row[0], str) else row and row[0]
        if found and all(found.get(k) == v for k, v in wanted.items()):
            log(f"reusing the seeded database ({events:,} events, {customers:,} customers)")
            found["reused"] = True
            found["period_start"] = dt.datetime.fromisoformat(found["period_start"])
            return found
        log("no matching seed in the database: seeding it afresh")

    setup_django(fresh=True)
    from celery import current_app
    from django.db import connection, transaction
    from django.utils import timezone

    from metering.hooks import emit_meter_rebuilt
    from metering.models import Meter, MeterRollup
    from metering.services import meter_backfill_start
    from quotas.models import UsageBalance

    now = timezone.now()
    # The current billing period started 25 days ago at midnight UTC: "now" is inside it.
    period_start = (now - dt.timedelta(days=25)).replace(hour=0, minute=0, second=0, microsecond=0)
    t_all = time.perf_counter()
    meters = meters_create()
    offers = catalog_create(meters)
    ids = [cid for _, cid in customers_bulk(customers)]
    t = time.perf_counter()
    subscribe_all(ids, offers, period_start)
    log(f"{customers:,} customers subscribed in {time.perf_counter() - t:.1f}s")

    t_events = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '512MB'")
        rebuild = drop_indexes(cursor, "metering_event")
        cursor.execute("SELECT setseed(0.42)")  # the same events on every seed
        assert ids == list(range(ids[0], ids[0] + len(ids))), "customer ids not contiguous"
        chunk = 1_000_000
        end = now - dt.timedelta(minutes=1)
        for lo in range(1, events + 1, chunk):
            hi = min(events, lo + chunk - 1)
            cursor.execute(
                _EVENTS_SQL,
                {
                    "cmin": ids[0],
                    "ncust": len(ids),
                    "nhot": hot,
                    "hot_share": HOT_SHARE,
                    "start": period_start,
                    "end": end,
                    "lo": lo,
                    "hi": hi,
                },
            )
            log(f"events {hi:,}/{events:,} ({time.perf_counter() - t_events:.0f}s)")
        t = time.perf_counter()
        for ddl in rebuild:
            cursor.execute(ddl)
        cursor.execute("ANALYZE metering_event")
        log(f"indexes and constraints rebuilt in {time.perf_counter() - t:.1f}s")
    events_s = time.perf_counter() - t_events

    t_backfill = time.perf_counter()
    if rollups_mode == "backfill":
        # The app's back-fill, run eagerly in this process (Celery task, its own chunks).
        current_app.conf.task_always_eager = True
        for meter in meters:
            t = time.perf_counter()
            meter_backfill_start(meter=meter)
            log(f"back-fill of {meter.name!r}: {time.perf_counter() - t:.1f}s")
        current_app.conf.task_always_eager = False
    else:
        # Rollups in SQL, then what the end of a back-fill does: the rebuild listeners
        # (quotas recomputes every balance of the meter from the rollups).
        with connection.cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = '512MB'")
            cursor.execute("SET work_mem = '256MB'")
            rebuild = drop_indexes(cursor, "metering_meterrollup")
            rollups_build_sql(cursor, meters)
            log(f"rollups built in SQL in {time.perf_counter() - t_backfill:.1f}s")
            for ddl in rebuild:
                cursor.execute(ddl)
            cursor.execute("ANALYZE metering_meterrollup")
            cursor.execute("RESET work_mem")
        log(f"rollups indexed in {time.perf_counter() - t_backfill:.1f}s")
        for meter in meters:
            t = time.perf_counter()
            with transaction.atomic():
                emit_meter_rebuilt(meter.id)
            log(f"balances of {meter.name!r} rebuilt: {time.perf_counter() - t:.1f}s")
    backfill_s = time.perf_counter() - t_backfill
    assert all(m.backfill_status == "done" for m in Meter.objects.all()), "back-fill not done"
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    meta = {
        **wanted,
        "period_start": period_start.isoformat(),
        "events_load_s": round(events_s, 1),
        "backfill_s": round(backfill_s, 1),
        "rollups_mode": rollups_mode,
        "seed_s": round(time.perf_counter() - t_all, 1),
        "rollups": MeterRollup.objects.count(),
        "balances": UsageBalance.objects.count(),
    }
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_seed (meta jsonb NOT NULL)")
        cursor.execute("INSERT INTO bench_seed VALUES (%s::jsonb)", [json.dumps(meta)])
    log(
        f"seeded in {meta['seed_s']}s: events {events_s:.0f}s, back-fill {backfill_s:.0f}s, "
        f"{meta['rollups']:,} rollup rows, {meta['balances']:,} balance rows"
    )
    meta["reused"] = False
    meta["period_start"] = period_start
    return meta
