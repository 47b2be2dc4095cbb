"""The browser-test infrastructure works: Chromium reaches a seeded bridge on loopback and only
loopback, screenshots land where they should, and axe fails a page on serious violations."""

from __future__ import annotations

import hashlib
import re
import struct
from pathlib import Path

import pytest

from tests.shell.console import AXE_JS, ConsoleSite, Page, Screenshot, assert_accessible, expect

GOOD_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Bills needing review</title></head>
<body><main><h1>Bills needing review</h1>
<form><label for="bill">Bill id</label> <input id="bill" name="bill">
<button type="submit">Find</button></form>
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="">
</main></body></html>"""

# moderate and minor findings only (no <main> landmark, no <h1>, content outside landmarks)
MODERATE_ONLY_PAGE = """<!doctype html>
<html lang="en"><head><title>Bills</title></head><body><h2>Bills</h2><p>None</p></body></html>"""

BAD_PAGE = """<!doctype html>
<html lang="en"><head><title>Bills</title></head><body><main><h1>Bills</h1>
<img id="logo" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
<button id="retry"></button>
</main></body></html>"""


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_browser_reads_what_was_pushed_to_the_bridge(
    page: Page, console_site: ConsoleSite, screenshot: Screenshot, offsite_requests: list[str]
) -> None:
    posted = console_site.push_bill("B-1")
    assert posted["status"] == "posted"

    response = page.goto(console_site.url("/health/live"))
    assert response is not None and response.status == 200
    status, bill = page.evaluate(
        """async ([key]) => {
            const r = await fetch('/bills/B-1', {headers: {'X-API-Key': key}});
            return [r.status, await r.json()];
        }""",
        [console_site.admin_key],
    )
    assert status == 200
    assert bill["status"] == "posted"
    assert bill["sap_document_number"] == posted["sap_document_number"]
    assert png_size(screenshot(page, "health-live")) == (1280, 800)
    assert offsite_requests == []


def test_screenshots_also_go_to_bridge_screenshots_dir(
    page: Page, screenshot: Screenshot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE_SCREENSHOTS_DIR", str(tmp_path / "readme" / "pictures"))
    page.set_content(GOOD_PAGE)
    path = screenshot(page, "good-page")
    assert path == tmp_path / "good-page.png"
    copy = tmp_path / "readme" / "pictures" / "good-page.png"
    assert copy.read_bytes() == path.read_bytes()
    assert png_size(copy) == (1280, 800)
    with pytest.raises(ValueError, match="lower-case"):
        screenshot(page, "../outside")


def test_pages_reach_loopback_only(page: Page, offsite_requests: list[str]) -> None:
    page.set_content(
        '<link rel="stylesheet" href="https://cdn.example.invalid/swagger-ui.css">'
        '<img alt="" src="http://cdn.example.invalid/logo.png">'
    )
    page.wait_for_load_state("load")
    assert sorted(offsite_requests) == [
        "http://cdn.example.invalid/logo.png",
        "https://cdn.example.invalid/swagger-ui.css",
    ]


def test_docs_render_swagger_ui_offline(
    page: Page, console_site: ConsoleSite, screenshot: Screenshot, offsite_requests: list[str]
) -> None:
    page.goto(console_site.url("/docs"))
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("hmis", ignore_case=True)
    expect(page.locator(".opblock").first).to_be_visible()
    screenshot(page, "docs")
    assert offsite_requests == []


def test_assert_accessible_passes_a_good_page(page: Page) -> None:
    page.set_content(GOOD_PAGE)
    assert_accessible(page)


def test_assert_accessible_leaves_moderate_findings_alone(page: Page) -> None:
    page.set_content(MODERATE_ONLY_PAGE)
    assert_accessible(page)  # injects axe, which finds only moderate or minor violations
    impacts = page.evaluate("async () => (await axe.run(document)).violations.map(v => v.impact)")
    assert impacts and set(impacts) <= {"moderate", "minor"}


def test_assert_accessible_fails_listing_every_serious_violation(page: Page) -> None:
    page.set_content(BAD_PAGE)
    with pytest.raises(AssertionError) as failure:
        assert_accessible(page)
    message = str(failure.value)
    assert message.startswith("2 serious or critical accessibility violation(s)")
    assert re.search(r"- image-alt \(critical\): Images must have alternative text", message)
    assert '["#logo"]' in message
    assert re.search(r"- button-name \(critical\): Buttons must have discernible text", message)
    assert '["#retry"]' in message


def test_assert_accessible_works_under_a_strict_content_security_policy(page: Page) -> None:
    page.route(
        "http://127.0.0.1:9/strict",
        lambda route: route.fulfill(
            content_type="text/html",
            headers={"Content-Security-Policy": "default-src 'self'; script-src 'self'"},
            body=BAD_PAGE,
        ),
    )
    page.goto("http://127.0.0.1:9/strict")
    with pytest.raises(AssertionError, match="image-alt"):
        assert_accessible(page)


def test_vendored_axe_is_the_noted_version() -> None:
    note = (AXE_JS.parent / "README.md").read_text()
    version = re.search(r"axe-core \*\*(\d+\.\d+\.\d+)\*\*", note)
    checksum = re.search(r"sha256 of `axe.min.js`: `([0-9a-f]{64})`", note)
    assert version and checksum
    assert AXE_JS.read_text()[:40].startswith(f"/*! axe v{version[1]}")
    assert hashlib.sha256(AXE_JS.read_bytes()).hexdigest() == checksum[1]
