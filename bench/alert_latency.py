"""Event -> alert fired (DESIGN.md §6): under 1 s with on-ingest evaluation, exactly once.

Everything real: gunicorn (``harness.gunicorn``) and a Celery worker process on a Redis broker,
against the scratch PostgreSQL database, and a webhook receiver on 127.0.0.1 run by this
process. No celery-beat: the only path measured is the on-ingest one (usage listener ->
trigger + outbox event in the ingest transaction -> on-commit kick -> ``outbox_dispatch``
task -> ``deliver_webhook`` task -> signed POST).

Set-up, through the app's services: one ``count`` meter, one customer per crossing, and per
customer three usage alerts (R-A4 allows 25): thresholds 5, 50 and 500. Once the alerts
exist, every customer gets 4 events (R-A3: only usage after creation counts), so nothing has
fired yet. Each crossing is then one ``POST /api/v1/events`` with one event for a fresh
customer: it takes that customer from 4 to 5 and crosses exactly one threshold.

Crossings run one at a time (closed loop: the next POST is sent once the previous webhook has
arrived), so a latency is the pipeline's, not a queue's. For each crossing:

* ``trigger row``: a poller thread with its own PostgreSQL connection looks for the
  customer's ``AlertTrigger`` row from just before the POST is sent, sleeping 1 ms between
  queries; the printed poll period is the resolution.
* ``webhook``: the receiving server stamps the request once its body is read, after checking
  its ``Kota-Signature`` with ``alerts.signing.verify``.

Baseline, same run: the same one-event POST again for each customer (5 -> 6: the same alerts
are evaluated, nothing fires).

Exactly once: after that and a grace period, N crossings must have left exactly N trigger rows, N
``alert.triggered`` outbox events, N deliveries (one attempt each) and N received requests
with N distinct event ids, all signatures valid, and no trigger for the uncrossed alerts.

Environment: ``BENCH_DATABASE_URL`` (dropped and recreated), ``BENCH_ALERT_BROKER_URL``
(default ``redis://127.0.0.1:6379/5``; that Redis database is flushed at the start).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, suppress
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from . import harness

BROKER_URL = os.environ.get("BENCH_ALERT_BROKER_URL", "redis://127.0.0.1:6379/5")
CROSSINGS_FULL = 1000
CROSSINGS_QUICK = 50
WARMUP = 5
THRESHOLD = 5  # the crossed alert; usage before the measured POST is THRESHOLD - 1
OTHER_THRESHOLDS = (50, 500)  # not crossed: the evaluation still has to look at them
EVENT_NAME = "bench_alert_call"
POLL_SLEEP_S = 0.001
WAIT_S = 30.0  # per crossing, for the row and for the webhook
WORKER_READY_S = 90.0  # the first (warm-up) webhook also waits for the worker to start
GRACE_S = 3.0  # after the last crossing, before counting (late duplicates would show)
TARGET_S = 1.0


# --------------------------------------------------------------------------- processes


@contextmanager
def celery_worker(concurrency: int = 2):
    """A real Celery worker (prefork) on the bench database and broker; always stopped."""
    log_path = harness.ROOT / "var" / "bench_alert_worker.log"
    log_path.parent.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "DJANGO_DEBUG": "false",
        "DATABASE_CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
        # Webhooks go through urllib, which honours *_proxy variables: make sure a proxy in
        # the environment can't swallow the deliveries to the local receiver.
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    cmd = [
        str(Path(sys.executable).parent / "celery"),
        "-A",
        "config",
        "worker",
        f"--concurrency={concurrency}",
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-O",
        "fair",
        f"--hostname=bench-alert-{os.getpid()}@%h",
    ]
    with open(log_path, "wb") as log:
        # Its own process group, so its prefork children can be stopped with it.
        proc = subprocess.Popen(
            cmd, cwd=harness.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield proc, log_path
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # warm shutdown: finishes running tasks
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    # Prefork children left behind (normally they exit with their parent).
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def sigterm_as_exit():
    """A SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C, so subprocesses are stopped."""

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --------------------------------------------------------------------------- receiver


class Receiver:
    """The webhook receiver on 127.0.0.1: verifies each signature and stamps its arrival."""

    def __init__(self):
        self.secret = ""
        self.requests: list[dict] = []
        self.arrived: dict[str, float] = {}  # customer external id -> first arrival
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                at = time.perf_counter()
                receiver.record(body, self.headers, at)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/kota-webhooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def record(self, body: bytes, headers, at: float) -> None:
        from alerts.signing import HEADER, SignatureError, verify

        try:
            verify(self.secret, body, headers.get(HEADER, ""), now=int(time.time()))
            valid = True
        except SignatureError:
            valid = False
        try:
            data = json.loads(body)
        except ValueError:
            data = {}
        customer = (data.get("data") or {}).get("customer", "")
        with self.cond:
            self.requests.append(
                {
                    "at": at,
                    "valid": valid,
                    "type": data.get("type"),
                    "event_id": data.get("id"),
                    "header_event_id": headers.get("Kota-Event-Id"),
                    "trigger": (data.get("data") or {}).get("trigger"),
                    "customer": customer,
                }
            )
            if valid and data.get("type") == "alert.triggered":
                self.arrived.setdefault(customer, at)
            self.cond.notify_all()

    def wait_for(self, customer: str, timeout: float) -> float | None:
        with self.cond:
            self.cond.wait_for(lambda: customer in self.arrived, timeout=timeout)
            return self.arrived.get(customer)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


# --------------------------------------------------------------------------- DB poller


class TriggerPoller:
    """Polls for one customer's AlertTrigger row at a time, on its own connection."""

    def __init__(self, dsn: str, table: str):
        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=True)
        self.sql = f"SELECT 1 FROM {table} WHERE customer_id = %s LIMIT 1"
        self.lock = threading.Lock()
        self.armed = threading.Event()
        self.found = threading.Event()
        self.stopping = False
        self.target: int | None = None
        self.seen_at: float | None = None
        self.polls = 0
        self.poll_time = 0.0  # summed time between consecutive polls while armed
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def arm(self, customer_id: int) -> None:
        with self.lock:
            self.target, self.seen_at = customer_id, None
            self.found.clear()
            self.armed.set()

    def wait(self, timeout: float) -> float | None:
        self.found.wait(timeout)
        with self.lock:
            self.armed.clear()
            self.target = None
            return self.seen_at

    def _loop(self) -> None:
        cur = self.conn.cursor()
        last = None
        while not self.stopping:
            if not self.armed.wait(0.2):
                last = None
                continue
            with self.lock:
                target = self.target
            if target is None:
                continue
            cur.execute(self.sql, (target,), prepare=True)
            row = cur.fetchone()
            now = time.perf_counter()
            if last is not None:
                self.polls += 1
                self.poll_time += now - last
            last = now
            if row is not None:
                with self.lock:
                    if self.target == target and self.seen_at is None:
                        self.seen_at = now
                        self.armed.clear()
                        self.found.set()
                last = None
            else:
                time.sleep(POLL_SLEEP_S)

    @property
    def period_ms(self) -> float:
        return self.poll_time / self.polls * 1000 if self.polls else float("nan")

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.armed.set()
        self.thread.join(timeout=5)
        self.conn.close()


# --------------------------------------------------------------------------- set-up


def _flush_broker() -> None:
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()  # our own database number only


def _setup(n_customers: int, receiver_url: str):
    """Meter, webhook endpoint, customers and their alerts, through the app's services."""
    from alerts.models import WebhookEndpoint
    from alerts.services import usage_alert_create
    from billing.services import customer_create
    from core.services import api_key_create
    from metering.services import meter_create

    _, api_key = api_key_create(name="bench alert_latency")
    meter = meter_create(name="Bench alert calls", event_name=EVENT_NAME, unit="calls")
    endpoint = WebhookEndpoint(
        url=receiver_url, description="bench receiver", event_types=["alert.triggered"]
    )
    endpoint.full_clean()
    endpoint.save()
    customers, crossed_alerts = [], {}
    for i in range(n_customers):
        customer = customer_create(external_id=f"bench_alert_{i:05d}", name=f"Bench {i}")
        alert = usage_alert_create(
            title=f"bench {i} at {THRESHOLD}",
            meter=meter,
            customer=customer,
            threshold=Decimal(THRESHOLD),
        )
        for threshold in OTHER_THRESHOLDS:
            usage_alert_create(
                title=f"bench {i} at {threshold}",
                meter=meter,
                customer=customer,
                threshold=Decimal(threshold),
            )
        customers.append(customer)
        crossed_alerts[customer.pk] = alert.pk
    return api_key, endpoint, customers, crossed_alerts


def _pre_usage(client: harness.Client, customers) -> None:
    """THRESHOLD - 1 events per customer, after the alerts exist (R-A3): nothing fires."""
    events = [
        {"id": f"pre_{c.external_id}_{k}", "name": EVENT_NAME, "customer": c.external_id}
        for c in customers
        for k in range(THRESHOLD - 1)
    ]
    for i in range(0, len(events), 1000):
        status, body = client.request("POST", "/api/v1/events", {"events": events[i : i + 1000]})
        result = json.loads(body)
        if status != 200 or result.get("rejected"):
            raise RuntimeError(f"pre-usage batch refused: {status} {body[:300]!r}")


# --------------------------------------------------------------------------- the run


def _cross(client, poller, receiver, customer, wait_webhook_s):
    """One crossing: returns (post_s, trigger_s | None, webhook_s | None, t0_wall, error)."""
    event = {"id": f"cross_{customer.external_id}", "name": EVENT_NAME}
    event["customer"] = customer.external_id
    poller.arm(customer.pk)
    t0_wall = time.time()
    t0 = time.perf_counter()
    status, body = client.request("POST", "/api/v1/events", event)
    t_resp = time.perf_counter()
    error = ""
    if status != 200 or json.loads(body).get("accepted") != 1:
        error = f"POST {status} {body[:200]!r}"
    seen = poller.wait(WAIT_S)
    hook = receiver.wait_for(customer.external_id, wait_webhook_s)
    return (
        t_resp - t0,
        None if seen is None else seen - t0,
        None if hook is None else hook - t0,
        t0_wall,
        error,
    )


def _baseline(client, customers) -> list[float]:
    """The same one-event POST for the same customers, now past 5 and below 50: it evaluates
    the same alerts but fires nothing (and must not fire the fired one again)."""
    samples = []
    for customer in customers:
        event = {"id": f"again_{customer.external_id}", "name": EVENT_NAME}
        event["customer"] = customer.external_id
        t0 = time.perf_counter()
        status, body = client.request("POST", "/api/v1/events", event)
        samples.append(time.perf_counter() - t0)
        if status != 200 or json.loads(body).get("accepted") != 1:
            raise RuntimeError(f"baseline POST refused: {status} {body[:300]!r}")
    return samples


def _check_exactly_once(receiver, customers, crossed_alerts, other_ids) -> list[tuple[str, bool]]:
    from alerts.models import AlertTrigger, WebhookDelivery
    from core.models import OutboxEvent

    ids = {c.pk for c in customers}
    externals = {c.external_id for c in customers}
    n = len(customers)
    triggers = list(
        AlertTrigger.objects.filter(customer_id__in=ids).values_list("alert_id", "customer_id")
    )
    events = OutboxEvent.objects.filter(
        type="alert.triggered", customer_external_id__in=externals
    ).values_list("id", "dispatched_at")
    event_ids = {pk for pk, _ in events}
    deliveries = list(
        WebhookDelivery.objects.filter(event_id__in=event_ids).values_list("status", "attempts")
    )
    with receiver.cond:
        received = [r for r in receiver.requests if r["customer"] in externals]
    wanted_triggers = {(alert, pk) for pk, alert in crossed_alerts.items() if pk in ids}
    dispatched = sum(1 for _, at in events if at is not None)
    first_attempt = sum(1 for d in deliveries if d == ("succeeded", 1))
    event_ids_received = {r["event_id"] for r in received}
    uncrossed = AlertTrigger.objects.filter(alert_id__in=other_ids).count()
    # Each check: (label, count, expected count); the trigger rows must also be the right ones.
    checks = [
        ("trigger rows", len(triggers), n),
        ("  for the crossed (alert, customer) pairs", len(set(triggers) & wanted_triggers), n),
        ("alert.triggered outbox events", len(events), n),
        ("  dispatched", dispatched, n),
        ("webhook deliveries", len(deliveries), n),
        ("  succeeded at the 1st attempt", first_attempt, n),
        ("webhook requests received", len(received), n),
        ("  distinct event ids", len(event_ids_received), n),
        ("  distinct triggers", len({r["trigger"] for r in received}), n),
        ("  distinct customers", len({r["customer"] for r in received}), n),
        ("  valid signatures", sum(r["valid"] for r in received), n),
        ("triggers of the uncrossed alerts", uncrossed, 0),
    ]
    return [(f"{label}: {count}", count == expected) for label, count, expected in checks]


def _stages(customers, t0_walls: dict[int, float]) -> dict[str, list[float]]:
    """Where the time goes, from the app's own timestamps (same machine clock, wall time)."""
    from alerts.models import AlertTrigger, WebhookDelivery
    from core.models import OutboxEvent

    ids = [c.pk for c in customers]
    trigger_at = dict(
        AlertTrigger.objects.filter(customer_id__in=ids).values_list("customer_id", "created_at")
    )
    by_external = {c.external_id: c.pk for c in customers}
    event_customer = {
        pk: by_external[ext]
        for pk, ext in OutboxEvent.objects.filter(
            type="alert.triggered", customer_external_id__in=by_external
        ).values_list("id", "customer_external_id")
    }
    delivery_at = {
        event_customer[event_id]: (created, delivered)
        for event_id, created, delivered in WebhookDelivery.objects.filter(
            event_id__in=event_customer
        ).values_list("event_id", "created_at", "delivered_at")
    }
    stages: dict[str, list[float]] = {
        "POST sent -> trigger row inserted": [],
        "POST sent -> webhook delivery row created": [],
        "POST sent -> delivery marked succeeded": [],
    }
    for pk, t0 in t0_walls.items():
        if pk in trigger_at:
            stages["POST sent -> trigger row inserted"].append(trigger_at[pk].timestamp() - t0)
        if pk in delivery_at:
            created, delivered = delivery_at[pk]
            stages["POST sent -> webhook delivery row created"].append(created.timestamp() - t0)
            if delivered is not None:
                stages["POST sent -> delivery marked succeeded"].append(delivered.timestamp() - t0)
    return stages


def _fmt(samples: list[float]) -> str:
    s = harness.timing_summary(samples)
    top = max(samples) * 1000 if samples else float("nan")
    return (
        f"p50 {s['p50_ms']:7.1f} ms   p99 {s['p99_ms']:7.1f} ms   "
        f"mean {s['mean_ms']:7.1f} ms   max {top:7.1f} ms   (n={s['n']})"
    )


def run(args) -> bool:
    n = CROSSINGS_QUICK if getattr(args, "quick", False) else CROSSINGS_FULL
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    with sigterm_as_exit():
        os.environ["CELERY_BROKER_URL"] = BROKER_URL
        if "django" in sys.modules:  # another benchmark ran first in this process
            from django.db import connections

            connections.close_all()
        harness.setup_django(fresh=True)
        _flush_broker()
        from alerts.models import AlertTrigger, UsageAlert

        with Receiver() as receiver:
            api_key, endpoint, customers, crossed = _setup(WARMUP + n, receiver.url)
            receiver.secret = endpoint.secret
            other_ids = list(
                UsageAlert.objects.exclude(pk__in=crossed.values()).values_list("pk", flat=True)
            )
            warmups, measured = customers[:WARMUP], customers[WARMUP:]
            with (
                harness.gunicorn() as host,
                celery_worker() as (worker, worker_log),
                TriggerPoller(harness.database_url(), AlertTrigger._meta.db_table) as poller,
            ):
                client = harness.Client(host, api_key)
                try:
                    _pre_usage(client, customers)
                    early = AlertTrigger.objects.count()
                    if early:
                        raise RuntimeError(f"{early} alerts fired below their threshold")
                    for i, customer in enumerate(warmups):
                        *_, error = _cross(
                            client, poller, receiver, customer, WORKER_READY_S if i == 0 else WAIT_S
                        )
                        if error or customer.external_id not in receiver.arrived:
                            tail = worker_log.read_text(errors="replace")[-2000:]
                            raise RuntimeError(
                                f"warm-up crossing failed ({error or 'no webhook'}); "
                                f"worker alive: {worker.poll() is None}; worker log:\n{tail}"
                            )
                    post_s, trigger_s, hook_s, t0_walls, errors = [], [], [], {}, []
                    missing_rows = missing_hooks = 0
                    run_start = time.perf_counter()
                    for customer in measured:
                        post, trig, hook, t0_wall, error = _cross(
                            client, poller, receiver, customer, WAIT_S
                        )
                        post_s.append(post)
                        t0_walls[customer.pk] = t0_wall
                        if error:
                            errors.append(error)
                        if trig is None:
                            missing_rows += 1
                        else:
                            trigger_s.append(trig)
                        if hook is None:
                            missing_hooks += 1
                        else:
                            hook_s.append(hook)
                    run_s = time.perf_counter() - run_start
                    baseline_s = _baseline(client, measured)
                    time.sleep(GRACE_S)
                    checks = _check_exactly_once(receiver, measured, crossed, other_ids)
                    stages = _stages(measured, t0_walls)
                finally:
                    client.close()
            worker_rc = worker.returncode

    rows = [
        ("crossings", f"{n} measured (+{WARMUP} warm-up), one at a time, {run_s:.1f} s"),
        ("set-up", f"{len(customers)} customers x 3 alerts (thresholds "
                   f"{THRESHOLD}, {', '.join(map(str, OTHER_THRESHOLDS))}); "
                   f"{THRESHOLD - 1} events each before"),
        ("servers", "gunicorn 2 workers; celery worker prefork x2 on "
                    f"{BROKER_URL}; PostgreSQL"),
        ("baseline: POST crossing nothing", _fmt(baseline_s)),
        ("POST crossing (response)", _fmt(post_s)),
        ("event -> AlertTrigger row visible", _fmt(trigger_s)),
        ("  poll period (resolution)", f"{poller.period_ms:.2f} ms"),
        ("event -> signed webhook received", _fmt(hook_s)),
    ]  # fmt: skip
    for label, samples in stages.items():
        rows.append((f"  {label}", _fmt(samples)))
    if missing_rows or missing_hooks or errors:
        rows.append(
            ("missing", f"{missing_rows} rows, {missing_hooks} webhooks within {WAIT_S:.0f} s")
        )
        rows.append(("errors", f"{len(errors)}: {errors[:3]}"))
    rows.append(("worker exit code", str(worker_rc)))
    rows.append(("total time", f"{time.monotonic() - started:.1f} s"))
    rows.append(
        (
            "load average (1 min), start / end",
            f"{load_before:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (shared machine)",
        )
    )
    for label, ok in checks:
        rows.append((f"exactly once: {label}", "ok" if ok else "WRONG"))
    trigger_p99 = harness.percentile(trigger_s, 99) * 1000
    hook_p99 = harness.percentile(hook_s, 99) * 1000
    complete = not missing_rows and not missing_hooks and not errors
    return harness.report(
        "alert_latency: POST /api/v1/events crossing a usage alert -> trigger row, webhook",
        rows,
        [
            (f"trigger row p99 < {TARGET_S:.0f} s ({trigger_p99:.1f} ms)",
             complete and trigger_p99 < TARGET_S * 1000),
            (f"signed webhook p99 < {TARGET_S:.0f} s ({hook_p99:.1f} ms)",
             complete and hook_p99 < TARGET_S * 1000),
            (f"exactly once: {n} crossings -> {n} triggers, {n} webhooks, no duplicates",
             all(ok for _, ok in checks)),
        ],
    )  # fmt: skip
