"""Real-browser tests of the operator console: Playwright (sync API) drives Debian's Chromium.

Console tests are plain `def` tests. A live sync Playwright marks this thread's event loop as
running between its calls, so nothing in a console test may call `asyncio.run()` or be `async`:
the bridge runs in its own thread (`app.platform.local_server.serve`) and is seeded over HTTP,
and the fixtures in conftest.py do their database work in a thread of their own.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.bridge import Bridge, bill

try:  # console tests import Playwright's names from here, so a missing package skips them
    from playwright.sync_api import Locator, Page, expect
except ImportError:  # the `browser` fixture then skips each test (CI=true: fails it)
    Locator = Page = Any  # type: ignore[misc,assignment]

    def expect(*_: object, **__: object) -> Any:  # type: ignore[misc]
        raise RuntimeError("the playwright package is not installed")


__all__ = [
    "AXE_JS",
    "ConsoleSite",
    "Locator",
    "Page",
    "Screenshot",
    "assert_accessible",
    "csrf_token",
    "expect",
    "sign_in",
    "signed_in_client",
]

AXE_JS = Path(__file__).parent / "axe" / "axe.min.js"

#: axe impacts that fail a test; `moderate` and `minor` are left to review
FAILING_IMPACTS = ("serious", "critical")

#: the `screenshot` fixture: `screenshot(page, "bills-list")` saves a PNG, returns its path
Screenshot = Callable[[Page, str], Path]


@dataclass
class ConsoleSite:
    """A bridge on loopback with a fresh SQLite database, configured against the simulator."""

    base_url: str
    admin_key: str
    hmis_key: str
    bridge: Bridge = field(repr=False)
    #: the bridge with the admin key, and with HMIS's key (to push bills, as HMIS would)
    admin: httpx.Client = field(repr=False)
    hmis: httpx.Client = field(repr=False)
    #: the simulator's /sim control routes (ledger, faults), reset for each test
    sim: httpx.Client = field(repr=False)

    def url(self, path: str) -> str:
        return self.base_url + path

    def push_bill(self, bill_id: str, **overrides: Any) -> dict[str, Any]:
        """Push `tests.support.bridge.bill(**overrides)` as HMIS would; its answer's body."""
        response = self.hmis.post(f"/bills/{bill_id}/push", json=bill(**overrides))
        assert response.status_code in (200, 201, 202), (response.status_code, response.text)
        result: dict[str, Any] = response.json()
        return result


def assert_accessible(page: Page) -> None:
    """Run axe-core on the page as it is now; fail listing every serious or critical violation.

    axe is evaluated, not added as a `<script>`: a page whose Content-Security-Policy allows only
    its own scripts refuses an inline script tag, and the console's pages should send one.
    """
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_JS.read_text(encoding="utf-8"))
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    failing = [v for v in results["violations"] if v["impact"] in FAILING_IMPACTS]
    if failing:
        raise AssertionError(
            f"{len(failing)} serious or critical accessibility violation(s) on {page.url}:\n"
            + "\n".join(_describe(v) for v in failing)
        )


def _describe(violation: dict[str, Any]) -> str:
    lines = [f"- {violation['id']} ({violation['impact']}): {violation['help']}"]
    for node in violation["nodes"]:
        # a target is a list of selectors, one per frame or shadow root on the way to the node
        lines.append(f"    {json.dumps(node['target'])}  {node['html'][:120]}")
    lines.append(f"    see {violation['helpUrl']}")
    return "\n".join(lines)


def sign_in(page: Page, site: ConsoleSite, target: str = "/console") -> None:
    """Open `target` and sign in on the page it sends the browser to."""
    page.goto(site.url(target))
    page.get_by_label("Admin key").fill(site.admin_key)
    page.get_by_role("button", name="Sign in").click()


@contextlib.contextmanager
def signed_in_client(site: ConsoleSite) -> Iterator[tuple[httpx.Client, str]]:
    """A plain HTTP client holding a console session, and that session's CSRF token."""
    with httpx.Client(base_url=site.base_url, timeout=30) as client:
        form = client.get("/console/sign-in").text
        token = re.search(r'name="sign_in_token" value="([^"]+)"', form)
        assert token
        fields = {"admin_key": site.admin_key, "sign_in_token": token.group(1), "next": "/console"}
        signed = client.post("/console/sign-in", data=fields)
        assert signed.status_code == 303, signed.text
        yield client, csrf_token(client)


def csrf_token(client: httpx.Client, path: str = "/console") -> str:
    """The session's CSRF token, as the forms of the page at `path` carry it."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found is not None
    return found[1]
