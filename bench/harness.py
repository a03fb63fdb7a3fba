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


def database_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)


def setup_django(fresh: bool = True) -> None:
    """Point Django at the bench database, recreate it when asked, and migrate."""
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
    width = max(len(label) for label, _ in rows) if rows else 10
    print(f"\n== {title}")
    for label, value in rows:
        print(f"  {label.ljust(width)}  {value}")
    for target, met in verdicts:
        print(f"  target {'MET   ' if met else 'MISSED'}  {target}")
    sys.stdout.flush()
    return all(met for _, met in verdicts)
