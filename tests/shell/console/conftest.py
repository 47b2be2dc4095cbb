"""Fixtures of the console's browser tests: Debian's Chromium, a page, a bridge to point it at.

`browser` is one Chromium for the whole tests/shell/console package. Package scope, not session: a
live sync Playwright keeps the main thread's event loop marked as running, which would break
every asyncio test pytest runs after this package; it stops when the package's tests are done.
Without Debian's chromium or the playwright package the browser tests are skipped, the reason
listed by `-ra`; under CI=true they fail instead. Pages reach loopback only: any other request
is refused inside the browser and listed by `offsite_requests`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import shutil
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest

from tests.shell.console import ConsoleSite, Screenshot, signed_in_client
from tests.support import database
from tests.support.bridge import (
    ADMIN_KEY,
    API_KEY,
    RULES,
    make_settings,
    run_bridge,
    seed_config,
    sim_config,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

CI = os.environ.get("CI", "").lower() == "true"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()

T = TypeVar("T")


def off_thread(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run()` in a worker thread: this thread's event loop belongs to Playwright."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright not installed (pip install -e '.[dev]')"
    if shutil.which("chromium") is None:
        return "Debian chromium not installed (apt-get install chromium)"
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture(autouse=True)
def _plain_def_tests(request: pytest.FixtureRequest) -> None:
    if inspect.iscoroutinefunction(request.function):
        pytest.fail(
            "console tests are plain `def` tests: sync Playwright holds this thread's event "
            "loop (see tests/shell/console/__init__.py)"
        )


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    missing = _missing()
    if missing is not None:
        if CI:
            pytest.fail(f"browser tests cannot run: {missing} (CI=true: they must run)")
        pytest.skip(f"browser tests skipped: {missing}")
    from playwright.sync_api import sync_playwright

    # Nothing resolves but localhost and 127.0.0.1: not even a DNS query leaves the machine.
    args = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"]
    if os.geteuid() == 0:
        # Chromium will not start as root with its sandbox (Playwright leaves it off anyway)
        args.append("--no-sandbox")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), headless=True, args=args
        )
        yield chromium
        chromium.close()


@pytest.fixture
def offsite_requests() -> list[str]:
    """URLs the test's pages tried to load from anywhere but loopback (all refused)."""
    return []


@pytest.fixture
def page(
    browser: Browser,
    offsite_requests: list[str],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> Iterator[Page]:
    """A new tab in a fresh browser context (no cookies); a failed test leaves failure.png."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]

    def loopback_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            offsite_requests.append(route.request.url)
            route.abort("blockedbyclient")

    context.route("**/*", loopback_only)
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    try:
        yield tab
    finally:
        call = request.node.stash.get(_REPORTS, {}).get("call")
        if call is not None and call.failed:
            # the failure may have been the page crashing or closing: then there is no picture
            with contextlib.suppress(Exception):
                tab.screenshot(path=tmp_path / "failure.png", full_page=True)
                print(f"screenshot of the failed test's page: {tmp_path / 'failure.png'}")
        context.close()


@pytest.fixture
def screenshot(tmp_path: Path) -> Screenshot:
    """`screenshot(page, name)`: the whole page as `name`.png in the test's tmp folder and, when
    BRIDGE_SCREENSHOTS_DIR is set, in that folder too (pictures for the README)."""

    def take(tab: Page, name: str) -> Path:
        if not SCREENSHOT_NAME.fullmatch(name):
            raise ValueError(f"screenshot name {name!r}: use lower-case letters, digits, - and _")
        path = tmp_path / f"{name}.png"
        png = tab.screenshot(path=path, full_page=True)
        if folder := os.environ.get("BRIDGE_SCREENSHOTS_DIR"):
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / path.name).write_bytes(png)
        return path

    return take


@pytest.fixture
def console_overrides() -> dict[str, Any]:
    """Infrastructure settings of the console's bridge (`BRIDGE_…`); override in a module."""
    return {}


@pytest.fixture
def console_site(
    tmp_path: Path, sim: httpx.Client, console_overrides: dict[str, Any]
) -> Iterator[ConsoleSite]:
    """The bridge on loopback over a fresh, migrated SQLite file, configured for the simulator.

    SQLite only: the console reads through the same service layer the API tests run on both
    databases, and a PostgreSQL database per test would double the browser suite's time.
    """
    folder = tmp_path / "db"
    folder.mkdir()
    settings = make_settings(off_thread(database.create_sqlite(str(folder))), **console_overrides)
    off_thread(seed_config(settings, sim_config(str(sim.base_url).rstrip("/")), RULES))
    with (
        run_bridge(settings) as bridge,
        httpx.Client(base_url=bridge.url, headers={"X-API-Key": ADMIN_KEY}, timeout=30) as admin,
        httpx.Client(base_url=bridge.url, headers={"X-API-Key": API_KEY}, timeout=30) as hmis,
    ):
        yield ConsoleSite(
            base_url=bridge.url,
            admin_key=ADMIN_KEY,
            hmis_key=API_KEY,
            bridge=bridge,
            admin=admin,
            hmis=hmis,
            sim=sim,
        )


@pytest.fixture
def console(console_site: ConsoleSite) -> Iterator[httpx.Client]:
    """An httpx client signed in to the console (its session cookie, as a browser keeps it)."""
    with signed_in_client(console_site) as (client, _):
        yield client
