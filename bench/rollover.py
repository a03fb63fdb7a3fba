"""Period close for 10,000 subscriptions (issue 5; DESIGN.md §6: under 60 s).

Set-up, through the app's own paths on a scratch PostgreSQL database (``BENCH_DATABASE_URL``
plus "_rollover" unless its name already ends so; dropped and recreated):

* the bench meters (``harness.meters_create``) and three monthly offers built with the quotas
  services: ``basic`` (fixed fee + LLM tokens, per-unit overage), ``pro`` (fixed fee + LLM
  tokens with package overage + API calls, notify only) and ``team`` (fixed fee + LLM tokens,
  per-unit overage + seats, seat-based, per-unit overage);
* N customers in bulk, one subscription each, offers in turn (``harness.subscribe_bulk``),
  started at ``start`` = midnight UTC 33 days ago. ``subscription_create`` puts a back-dated
  subscription in the period holding *now*; the period is set back to ``[start, end)``
  (``end`` = one month after ``start``, a few days ago) with one UPDATE: the row a
  subscription started at ``start`` has just before its first period end;
* usage for 85 % of the customers, ingested through ``metering.services.event_ingest_batch``
  in batches of 1,000 (~50,000 events for 10,000 subscriptions: 5 token events each, plus one
  API call (pro) or one seat level (team)); rollups and balances are the ingest path's.

Measured (one process, one connection):

* baseline: one trivial write per subscription in its own transaction (``UPDATE ... SET
  status = status`` through the ORM), N times;
* the close: ``quotas.closing.periods_close_due(clock=None, at=end + 1 s)``, what the beat's
  ``quotas.close_due_periods`` task runs: per subscription, quota resets, the period-end
  invoice (``invoice_issue``, finalized: number + ``invoice.created`` outbox event, whose
  on-commit kick goes to a real Redis broker, ``BENCH_ROLLOVER_BROKER_URL``, default
  ``redis://127.0.0.1:6379/7``, flushed before and after) and the roll;
* exactness: N ``PeriodClose`` rows with an invoice, each invoice total = fixed fee + the
  overage priced independently (``billing.pricing.price_usage`` on the seeded usage, rounded
  per line), every subscription rolled to ``[end, end + 1 month)``, one ``QuotaReset`` at
  ``end`` per usage-based service;
* idempotency: ``periods_close_due`` again, then ``subscription_roll`` for 1,000 of the ids
  (a retried worker with a stale list): nothing new written; both timed;
* queries per subscription: ``CaptureQueriesContext`` around ``subscription_roll`` for 50
  subscriptions, on the seeded state restored from a template database copy;
* the same close split over 2 processes (each calling ``subscription_roll`` for every other
  due id; Django set up before the clock starts), on the restored seed, checked the same way.

``BENCH_ROLLOVER_PROFILE=<n>``: also cProfile the close of n subscriptions (restored seed)
and print the hot spots; BENCH_ROLLOVER_KEEP_SEED=1 keeps the seeded template database
("<name>_seed"). Sizes: BENCH_ROLLOVER_SUBSCRIPTIONS (10,000; --quick 300).
"""

import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

from bench import harness

BROKER_URL = os.environ.get("BENCH_ROLLOVER_BROKER_URL", "redis://127.0.0.1:6379/7")
TARGET_S = 60.0
TARGET_N = 10_000
ACTIVE_SHARE = 0.85
TOKEN_EVENTS = 5
BATCH = 1000
QUERY_SAMPLE = 50
REROLL_SAMPLE = 1000
PROCESSES = 2

#: The offers: fixed fee, and per service (code, included, pricing or None, behaviour).
OFFERS = [
    {
        "code": "basic",
        "fee": "19.00",
        "services": [
            ("llm-tokens", "100000", {"model": "per_unit", "unit_price": "0.00002"}, "overage"),
        ],
    },
    {
        "code": "pro",
        "fee": "99.00",
        "services": [
            (
                "llm-tokens",
                "1000000",
                {"model": "package", "package_size": "100000", "package_price": "1.50"},
                "overage",
            ),
            ("api-calls", "1000", None, "notify"),
        ],
    },
    {
        "code": "team",
        "fee": "49.00",
        "services": [
            ("llm-tokens", "300000", {"model": "per_unit", "unit_price": "0.00001"}, "overage"),
            ("seats", "5", {"model": "per_unit", "unit_price": "8.00"}, "overage"),
        ],
    },
]
USAGE_BASED_CODES = {"llm-tokens", "api-calls"}


def _db_suffix() -> str:
    base = os.environ.get("BENCH_DATABASE_URL", harness.DEFAULT_DB)
    return "" if urlsplit(base).path.rstrip("/").endswith("_rollover") else "_rollover"


def _admin(sql_statements: list[str]) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    parts = urlsplit(harness.database_url())
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for sql in sql_statements:
            conn.execute(sql)


def _names() -> tuple[str, str]:
    name = urlsplit(harness.database_url()).path.lstrip("/")
    return name, f"{name}_seed"


def snapshot() -> None:
    name, seed = _names()
    _admin(
        [
            f'DROP DATABASE IF EXISTS "{seed}" WITH (FORCE)',
            f'CREATE DATABASE "{seed}" TEMPLATE "{name}"',
        ]
    )


def restore() -> None:
    name, seed = _names()
    _admin(
        [
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f'CREATE DATABASE "{name}" TEMPLATE "{seed}"',
        ]
    )


def drop_snapshot() -> None:
    _, seed = _names()
    _admin([f'DROP DATABASE IF EXISTS "{seed}" WITH (FORCE)'])


def flush_broker() -> None:
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()


# --------------------------------------------------------------------------- seed


def catalog() -> list:
    from quotas import services as q

    meters = {m.name: m for m in harness.meters_create()}
    usage = q.service_group_create(name="Usage", kind="usage_based")
    seats = q.service_group_create(name="Seats", kind="seat_based")
    q.service_create(code="api-calls", name="API calls", group=usage, meter=meters["API calls"])
    q.service_create(code="llm-tokens", name="LLM tokens", group=usage, meter=meters["LLM tokens"])
    q.service_create(code="seats", name="Seats", group=seats, meter=meters["Active seats"])
    return [
        q.offer_create(
            code=spec["code"],
            name=spec["code"].title(),
            currency="USD",
            fixed_fee=Decimal(spec["fee"]),
            billing_interval="month",
            timezone="UTC",
            services=[
                {"service": code, "included": included, "limit_behaviour": behaviour}
                | ({"pricing": pricing} if pricing else {})
                for code, included, pricing, behaviour in spec["services"]
            ],
        )
        for spec in OFFERS
    ]


def usage_seed(customers: list[tuple[str, int]], start, end) -> tuple[list[dict], dict]:
    """The events to ingest and, per customer id, the usage they make (tokens, api calls,
    last seat level), computed here from the events themselves."""
    rng = random.Random(5)
    span = int((end - start).total_seconds()) - 1
    events, usage = [], {}
    for i, (external_id, cid) in enumerate(customers):
        spec = OFFERS[i % len(OFFERS)]
        included = Decimal(spec["services"][0][1])
        mine = {"tokens": Decimal(0), "calls": 0, "seats": None}
        usage[cid] = mine
        if rng.random() >= ACTIVE_SHARE:
            continue
        offsets = rng.sample(range(span), TOKEN_EVENTS + 1)
        for j in range(TOKEN_EVENTS):
            tokens = rng.randint(1, int(included * Decimal("0.5")))
            mine["tokens"] += tokens
            events.append(
                {
                    "id": f"ro-{cid}-{j}",
                    "name": "llm_request",
                    "customer": external_id,
                    "timestamp": (start + timedelta(seconds=offsets[j])).isoformat(),
                    "properties": {"model": "large", "tokens": tokens},
                }
            )
        extra_at = (start + timedelta(seconds=offsets[-1])).isoformat()
        if spec["code"] == "pro":
            mine["calls"] = 1
            events.append(
                {
                    "id": f"ro-{cid}-call",
                    "name": "api_call",
                    "customer": external_id,
                    "timestamp": extra_at,
                    "properties": {"status": 200, "region": "us"},
                }
            )
        elif spec["code"] == "team":
            level = rng.randint(1, 12)
            mine["seats"] = Decimal(level)
            events.append(
                {
                    "id": f"ro-{cid}-seats",
                    "name": "seats",
                    "customer": external_id,
                    "timestamp": extra_at,
                    "properties": {"active": level},
                }
            )
    rng.shuffle(events)
    return events, usage


def expected_totals(subscriptions: dict[int, tuple[int, str]], usage: dict) -> dict:
    """Subscription id -> invoice total, priced here with billing.pricing (no tax, no
    discount, no credit: fee + each service's overage rounded as its own line)."""
    from billing.pricing import parse_pricing, price_usage, round_money

    specs = {spec["code"]: spec for spec in OFFERS}
    totals = {}
    for sub_id, (cid, code) in subscriptions.items():
        spec = specs[code]
        mine = usage[cid]
        total = Decimal(spec["fee"])
        for service, included, pricing, _ in spec["services"]:
            if pricing is None:
                continue
            used = mine["tokens"] if service == "llm-tokens" else (mine["seats"] or Decimal(0))
            amount = price_usage(parse_pricing(pricing), used, Decimal(included))
            total += round_money(amount, "USD")
        totals[sub_id] = total
    return totals


def seed(n: int) -> dict:
    from django.db import connection

    from billing import periods
    from billing.models import Subscription
    from metering.services import event_ingest_batch

    now = datetime.now(UTC)
    start = (now - timedelta(days=33)).replace(hour=0, minute=0, second=0, microsecond=0)
    end = periods.shift(start, "month", 1, "UTC")
    assert periods.period_at(start, "month", start, "UTC") == (start, end)
    t0 = time.perf_counter()
    offers = catalog()
    customers = harness.customers_bulk(n, prefix="ro_")
    ids = [cid for _, cid in customers]
    harness.subscribe_bulk(ids, offers, start)
    # subscription_create puts a back-dated subscription in the period holding now: set the
    # rows to the period they had before their first period end.
    Subscription.objects.update(current_period_start=start, current_period_end=end)
    harness.log(f"{n:,} customers subscribed in {time.perf_counter() - t0:.1f}s")

    events, usage = usage_seed(customers, start, end)
    t = time.perf_counter()
    for lo in range(0, len(events), BATCH):
        result = event_ingest_batch(events=events[lo : lo + BATCH])
        part = len(events[lo : lo + BATCH])
        assert result.accepted == part and not result.rejected, result
    ingest_s = time.perf_counter() - t
    harness.log(
        f"{len(events):,} events ingested through event_ingest_batch in {ingest_s:.1f}s "
        f"({len(events) / ingest_s:,.0f}/s)"
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    offer_code = {o.id: o.code for o in offers}
    subscriptions = {
        sub_id: (cid, offer_code[offer_id])
        for sub_id, cid, offer_id in Subscription.objects.values_list(
            "id", "customer_id", "offer_id"
        )
    }
    resets = sum(
        sum(1 for s in OFFERS_BY_CODE[code]["services"] if s[0] in USAGE_BASED_CODES)
        for _, code in subscriptions.values()
    )
    return {
        "start": start,
        "end": end,
        "new_end": periods.shift(start, "month", 2, "UTC"),
        "at": end + timedelta(seconds=1),
        "ids": sorted(subscriptions),
        "expected": expected_totals(subscriptions, usage),
        "resets": resets,
        "events": len(events),
        "ingest_s": ingest_s,
        "active": sum(1 for u in usage.values() if u["tokens"] > 0),
    }


OFFERS_BY_CODE = {spec["code"]: spec for spec in OFFERS}


# --------------------------------------------------------------------------- checks


def verify(state: dict) -> tuple[bool, str]:
    """Every subscription closed once, invoiced exactly, reset and rolled."""
    from billing.models import Invoice, InvoiceReason, PeriodClose, Subscription
    from quotas.models import QuotaReset

    n = len(state["ids"])
    start, end = state["start"], state["end"]
    closes = PeriodClose.objects.filter(period_start=start, period_end=end)
    n_closes = closes.count()
    n_with_invoice = closes.filter(invoice__isnull=False).count()
    totals = dict(
        Invoice.objects.filter(
            reason=InvoiceReason.PERIOD_END, period_start=start, period_end=end
        ).values_list("subscription_id", "total")
    )
    wrong = [pk for pk, total in state["expected"].items() if totals.get(pk) != total]
    rolled = Subscription.objects.filter(
        current_period_start=end, current_period_end=state["new_end"]
    ).count()
    resets = QuotaReset.objects.filter(window_start=end).count()
    all_resets = QuotaReset.objects.count()
    ok = (
        n_closes == n
        and n_with_invoice == n
        and len(totals) == n
        and not wrong
        and rolled == n
        and resets == state["resets"] == all_resets
    )
    detail = (
        f"{n_closes:,} closes ({n_with_invoice:,} with invoice), {len(totals):,} invoices, "
        f"{n - len(wrong):,}/{n:,} totals exact, {rolled:,} rolled to [end, end+1 month), "
        f"{resets:,}/{state['resets']:,} resets at end"
    )
    if wrong:
        pk = wrong[0]
        detail += f"; e.g. subscription {pk}: {totals.get(pk)} != {state['expected'][pk]}"
    return ok, detail


def _counts() -> dict[str, int]:
    from billing.models import Invoice, InvoiceLine, PeriodClose
    from core.models import OutboxEvent
    from quotas.models import QuotaReset

    return {
        "period_closes": PeriodClose.objects.count(),
        "invoices": Invoice.objects.count(),
        "invoice_lines": InvoiceLine.objects.count(),
        "quota_resets": QuotaReset.objects.count(),
        "outbox_events": OutboxEvent.objects.count(),
    }


# --------------------------------------------------------------------------- measurements


def baseline(ids: list[int]) -> float:
    from django.db import transaction
    from django.db.models import F

    from billing.models import Subscription

    t = time.perf_counter()
    for pk in ids:
        with transaction.atomic():
            Subscription.objects.filter(pk=pk).update(status=F("status"))
    return time.perf_counter() - t


def query_sample(state: dict) -> tuple[float, float, list[tuple[str, float, float]]]:
    """Queries and time per subscription_roll over a sample; the statements taking the most
    time (per subscription: how many, ms)."""
    from collections import Counter

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from quotas.closing import subscription_roll

    ids = state["ids"]
    sample = ids[:: max(1, len(ids) // QUERY_SAMPLE)][:QUERY_SAMPLE]
    kinds: Counter = Counter()
    spent: Counter = Counter()
    total = 0
    elapsed = 0.0
    for pk in sample:
        with CaptureQueriesContext(connection) as ctx:
            t = time.perf_counter()
            one = subscription_roll(subscription_id=pk, at=state["at"])
            elapsed += time.perf_counter() - t
        assert len(one.closes) == 1
        total += len(ctx.captured_queries)
        for q in ctx.captured_queries:
            kinds[_statement_kind(q["sql"])] += 1
            spent[_statement_kind(q["sql"])] += float(q["time"])
    per = total / len(sample)
    top = [
        (k, kinds[k] / len(sample), spent[k] / len(sample) * 1000) for k, _ in spent.most_common(12)
    ]
    return per, elapsed / len(sample), top


def _statement_kind(sql: str) -> str:
    import re

    head = sql.split(" WHERE ")[0]
    head = re.sub(r"SELECT .*? FROM", "SELECT … FROM", head, count=1, flags=re.S)
    head = re.sub(r"VALUES .*", "VALUES …", head, flags=re.S)
    head = re.sub(r"SET .*", "SET …", head, flags=re.S)
    head = re.sub(r"\s+INNER JOIN .*", " JOIN …", head, flags=re.S)
    return head[:90]


def parallel(state: dict, processes: int) -> tuple[float, list[float]]:
    """``processes`` workers, each rolling every ``processes``-th due subscription."""
    env = {**os.environ, "DATABASE_URL": harness.database_url(), "PYTHONUNBUFFERED": "1"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.rollover",
                str(i),
                str(processes),
                state["at"].isoformat(),
            ],
            cwd=harness.ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    for proc in procs:
        line = proc.stdout.readline()
        assert line.strip() == "ready", line
    t = time.perf_counter()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [json.loads(proc.stdout.readline()) for proc in procs]
    wall = time.perf_counter() - t
    for proc in procs:
        proc.wait(timeout=60)
        assert proc.returncode == 0
    assert sum(r["closed"] for r in results) == len(state["ids"]), results
    return wall, [r["elapsed"] for r in results]


def worker(index: int, of: int, at_iso: str) -> None:
    """A worker process of ``parallel``: set up, say ready, wait for go, roll its share."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    os.environ["DJANGO_DEBUG"] = "false"
    django.setup()
    from quotas.closing import subscription_roll, subscriptions_due

    at = datetime.fromisoformat(at_iso)
    mine = subscriptions_due(clock=None, at=at)[index::of]
    print("ready", flush=True)
    sys.stdin.readline()
    t = time.perf_counter()
    closed = 0
    for pk in mine:
        closed += len(subscription_roll(subscription_id=pk, at=at).closes)
    print(json.dumps({"elapsed": time.perf_counter() - t, "closed": closed}), flush=True)


def profile(state: dict, n: int) -> None:
    import cProfile
    import pstats

    from django.db import reset_queries

    from quotas.closing import subscription_roll

    prof = cProfile.Profile()
    ids = state["ids"][:n]
    reset_queries()
    prof.enable()
    for pk in ids:
        subscription_roll(subscription_id=pk, at=state["at"])
    prof.disable()
    stats = pstats.Stats(prof)
    print(f"\n== cProfile of {len(ids):,} closes (subscription_roll), by cumulative time")
    stats.sort_stats("cumulative").print_stats(r"kota|/work/|quotas|billing|metering|core", 45)
    print("== by own time")
    stats.sort_stats("tottime").print_stats(25)


# --------------------------------------------------------------------------- run


def run(args) -> bool:
    os.environ["CELERY_BROKER_URL"] = BROKER_URL
    harness.setup_django(fresh=True, db_suffix=_db_suffix())
    flush_broker()
    n = harness.size("rollover_subscriptions", TARGET_N, 300, args)
    target_s = TARGET_S * n / TARGET_N
    state = seed(n)
    ids = state["ids"]
    snapshot()

    from quotas.closing import periods_close_due, subscription_roll

    base_s = baseline(ids)
    harness.log(f"baseline: {n:,} one-UPDATE transactions in {base_s:.1f}s")

    t = time.perf_counter()
    report = periods_close_due(clock=None, at=state["at"])
    close_s = time.perf_counter() - t
    harness.log(f"close: {len(report.closes):,} periods closed in {close_s:.1f}s")
    ok_single, detail_single = verify(state)

    before = _counts()
    t = time.perf_counter()
    again = periods_close_due(clock=None, at=state["at"])
    again_s = time.perf_counter() - t
    t = time.perf_counter()
    reroll_ids = ids[:: max(1, len(ids) // REROLL_SAMPLE)]
    rerolled = [subscription_roll(subscription_id=pk, at=state["at"]) for pk in reroll_ids]
    reroll_s = time.perf_counter() - t
    idempotent = (
        not again.closes
        and not again.resets
        and not any(r.closes or r.resets for r in rerolled)
        and _counts() == before
    )

    restore()
    per_sub_queries, sample_ms, top_statements = query_sample(state)
    sample_ms *= 1000

    restore()
    par_wall, par_each = parallel(state, PROCESSES)
    ok_parallel, detail_parallel = verify(state)
    harness.log(f"{PROCESSES} processes: {n:,} closed in {par_wall:.1f}s")

    profile_n = int(os.environ.get("BENCH_ROLLOVER_PROFILE", "0") or 0)
    if profile_n:
        restore()
        profile(state, min(profile_n, n))
    if os.environ.get("BENCH_ROLLOVER_KEEP_SEED", "") in ("", "0"):
        drop_snapshot()
    flush_broker()

    rows = [
        ("subscriptions (basic/pro/team)", f"{n:,}, {state['active']:,} with usage"),
        (
            "usage seeded",
            f"{state['events']:,} events via event_ingest_batch in {state['ingest_s']:.1f}s "
            f"({state['events'] / state['ingest_s']:,.0f}/s)",
        ),
        (
            "baseline: 1 UPDATE/txn x N",
            f"{base_s:.2f}s  ({harness.fmt_rate(n / base_s)}, {base_s / n * 1000:.2f} ms each)",
        ),
        (
            "close, 1 process",
            f"{close_s:.2f}s  ({harness.fmt_rate(n / close_s)}, {close_s / n * 1000:.2f} ms "
            f"each, {close_s / base_s:.1f}x baseline)",
        ),
        (
            "queries per subscription",
            f"{per_sub_queries:.1f} (sample of {QUERY_SAMPLE}, "
            f"{sample_ms:.2f} ms each while captured)",
        ),  # fmt: skip
        *[(f"  {v:4.1f} x {ms:6.2f} ms", k) for k, v, ms in top_statements],
        (
            f"close, {PROCESSES} processes",
            f"{par_wall:.2f}s  ({harness.fmt_rate(n / par_wall)}, workers "
            f"{' / '.join(f'{s:.1f}s' for s in par_each)}, {close_s / par_wall:.2f}x speed-up)",
        ),
        ("exact after 1 process", detail_single),
        (f"exact after {PROCESSES} processes", detail_parallel),
        (
            "close again (idempotent)",
            f"periods_close_due {again_s * 1000:.1f} ms; subscription_roll x "
            f"{len(reroll_ids):,}: {reroll_s:.2f}s ({reroll_s / len(reroll_ids) * 1000:.2f} ms "
            f"each); new rows: {'none' if idempotent else 'SOME'}",
        ),
    ]
    verdicts = [
        (f"close of {n:,} periods under {target_s:.0f} s (60 s per 10,000)", close_s < target_s),
        ("invoices exact, every period closed and rolled (1 process)", ok_single),
        (f"invoices exact, every period closed and rolled ({PROCESSES} processes)", ok_parallel),
        ("closing again writes nothing", idempotent),
    ]
    return harness.report("rollover: period close (issue 5)", rows, verdicts)


if __name__ == "__main__":
    worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
