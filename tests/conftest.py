import os
import shutil

import pytest
from rest_framework.test import APIClient

from core.services import api_key_create

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(config, items):
    """`postgres_only` tests (row locks, concurrent writers) skip on SQLite, visibly."""
    from django.db import connection

    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (runs in CI's PostgreSQL pass)")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


BROWSER_SKIP_NOTICE = "NOTICE: browser tests skipped: install Debian's chromium to run them."


def pytest_terminal_summary(terminalreporter):
    """Repeat the browser skip notice at the end of every run (plain `make test`, -q too):
    a skipped test is otherwise only an `s` in the progress line."""
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if isinstance(report.longrepr, tuple) and BROWSER_SKIP_NOTICE in report.longrepr[2]
    ]
    if skipped:
        terminalreporter.write_sep("-", "browser tests")
        terminalreporter.write_line(f"{BROWSER_SKIP_NOTICE} ({len(skipped)} skipped)", yellow=True)


@pytest.fixture
def api_key(db):
    _, raw = api_key_create(name="tests")
    return raw


@pytest.fixture
def api(api_key):
    """An API client authenticated with a real API key, as an operator's backend is."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client


@pytest.fixture
def anon_api():
    return APIClient()


@pytest.fixture
def staff_user(db, django_user_model):
    return django_user_model.objects.create_user(
        username="staff", password="staff-pass-123", is_staff=True, is_superuser=True
    )


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright; skipped with a notice when missing locally."""
    if not CHROMIUM:
        if os.environ.get("KOTA_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required (KOTA_REQUIRE_BROWSER=1) but was not found.")
        pytest.skip(BROWSER_SKIP_NOTICE)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls made by the
    # test itself are still synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()
