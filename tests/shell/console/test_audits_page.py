"""The console's Inventory audits: start a run, watch it, page its findings, download the CSV.

The browser test audits generated goods receipts in the simulator against the HMIS item master
that goes with them, and checks what the pages and the CSV show against the simulator's ground
truth. The plain httpx tests cover the refusals: bad dates, a run already running, SAP integration
off, unknown runs and pages, and formula cells in the CSV.
"""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from app.inventory.matching import normalise
from app.inventory.models import UNMATCHED, InventoryRunMaterial
from app.platform.db import make_session_factory
from tests.shell.console import ConsoleSite, Page, Screenshot, assert_accessible, csrf_token, expect
from tests.shell.console.conftest import off_thread

START, END = "2024-03-01", "2024-03-31"
#: 8,000 items over 30 days: seed 1 gives 57 unmatched materials (more than one page of 50)
DATA = {"seed": 1, "items": 8000, "start": START, "days": 30}


def generate(site: ConsoleSite, **params: Any) -> dict[str, Any]:
    """Goods receipts in the simulator and the matching HMIS item master loaded into the bridge."""
    answer = site.sim.post("/sim/materials/generate", json={**DATA, **params})
    answer.raise_for_status()
    items = answer.json()["hmis_items"]
    for start in range(0, len(items), 10_000):
        loaded = site.hmis.put("/inventory/items", json=items[start : start + 10_000])
        assert loaded.status_code == 200, loaded.text
    truth = site.sim.get("/sim/materials/expected", params={"from_date": START, "to_date": END})
    truth.raise_for_status()
    result: dict[str, Any] = truth.json()
    return result


def wait_for_run(site: ConsoleSite, run_id: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = site.admin.get(f"/inventory/sync/{run_id}").json()
        if run["status"] != "running" or time.monotonic() > deadline:
            return run
        time.sleep(0.1)


def csrf(client: httpx.Client, path: str = "/console/audits") -> str:
    return csrf_token(client, path)


def field_error(html: str, field: str) -> str | None:
    found = re.search(rf'<p id="{field}_error" class="error"[^>]*>(.*?)</p>', html, re.S)
    return re.sub(r"<[^>]+>", "", found[1]).strip() if found else None


def start(client: httpx.Client, **form: str) -> httpx.Response:
    return client.post("/console/audits", data={"csrf_token": csrf(client), **form})


# --- in the browser ---------------------------------------------------------------------------


def test_a_backfill_started_in_the_console_runs_and_shows_every_unmatched_material(
    page: Page, console_site: ConsoleSite, screenshot: Screenshot, offsite_requests: list[str]
) -> None:
    truth = generate(console_site)
    unmatched = truth["unmatched"]
    assert len(unmatched) > 50  # more than one page
    # slow pages: the run stays `running` long enough to see its progress refresh
    console_site.sim.put("/sim/materials/settings", json={"latency_ms": 700}).raise_for_status()

    page.goto(console_site.url("/console/sign-in?next=/console/audits"))
    page.get_by_label("Admin key").fill(console_site.admin_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Inventory audits", exact=True)).to_be_visible()
    assert_accessible(page)
    screenshot(page, "audits-empty")

    # a bad window first: the message stands next to the To date field
    page.get_by_label("Backfill").check()
    page.get_by_label("From date").fill(END)
    page.get_by_label("To date").fill(START)
    page.get_by_role("button", name="Start audit").click()
    expect(page.locator("#to_date_error")).to_have_text(
        f"to_date {START} is before from_date {END}"
    )
    expect(page.get_by_label("To date")).to_have_attribute("aria-invalid", "true")
    assert_accessible(page)

    page.get_by_label("Backfill").check()
    page.get_by_label("From date").fill(START)
    page.get_by_label("To date").fill(END)
    page.get_by_role("button", name="Start audit").click()

    expect(page).to_have_url(re.compile(r"/console/audits/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    expect(page.get_by_role("status").first).to_contain_text(f"Audit run {run_id} started")
    live = page.locator("#run-live")
    expect(live).to_have_attribute("data-refresh", f"/console/audits/{run_id}/progress")
    expect(live).to_have_attribute("data-every", "3")
    expect(live).to_contain_text("running")
    expect(live).to_contain_text("item(s) read so far")
    assert_accessible(page)
    screenshot(page, "audit-running")
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if r.url.endswith("/progress") else None)

    # the refreshing part swaps in the finished run without a reload
    expect(live.locator(".status")).to_have_text("succeeded", timeout=60_000)
    expect(live).to_contain_text("Items read")
    polls = len(asked)
    page.wait_for_timeout(7_000)  # two more periods: a finished run is not asked again
    assert len(asked) == polls > 0
    live.get_by_role("link", name="Show its findings").click()

    finished = console_site.admin.get(f"/inventory/sync/{run_id}").json()
    assert finished["status"] == "succeeded"
    assert finished["unmatched_items"] == truth["unmatched_items"]
    heading = page.get_by_role("heading", name=re.compile(r"^Unmatched materials"))
    expect(heading).to_have_text(f"Unmatched materials ({len(unmatched)})")
    table = page.locator("#unmatched table")
    expect(table.locator("tbody tr")).to_have_count(50)
    expect(table.locator("caption")).to_contain_text(f"1–50 of {len(unmatched)}")
    assert_accessible(page)
    screenshot(page, "audit-finished")

    seen = {normalise(t): Decimal(q.replace(",", "")) for t, q in _rows(table)}
    pager = page.get_by_role("navigation", name="Pages of unmatched materials")
    pager.get_by_role("link", name="Next page").click()
    expect(page).to_have_url(re.compile(r"\?.*page=2"))
    expect(table.locator("tbody tr")).to_have_count(len(unmatched) - 50)
    seen |= {normalise(t): Decimal(q.replace(",", "")) for t, q in _rows(table)}
    expect(pager.get_by_role("link", name="Next page")).to_have_count(0)
    assert_accessible(page)
    screenshot(page, "audit-page-2")
    # every unmatched material, each with the simulator's net quantity
    assert seen == {key: Decimal(quantity) for key, quantity in unmatched.items()}

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download the unmatched materials (CSV)").click()
    download = download_info.value
    assert download.suggested_filename == f"audit-run-{run_id}-unmatched.csv"
    with open(download.path(), newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [r["run_id"] for r in rows] == [str(run_id)] * len(unmatched)
    assert {normalise(r["material"]): Decimal(r["quantity"]) for r in rows} == seen
    api = {m["material"]: m for m in finished["unmatched_materials"]}
    for row in rows:
        found = api[row["material"]]
        assert row["unit"] == found["unit"]
        assert int(row["document_items"]) == found["document_items"]
        assert row["documents"].split(" ") == found["documents"]
    assert sum(int(r["document_items"]) for r in rows) == truth["unmatched_items"]

    page.get_by_role("link", name="All audit runs").click()
    listed = page.locator("tbody tr", has=page.get_by_role("link", name=f"Run {run_id}"))
    expect(listed).to_contain_text("succeeded")
    expect(listed).to_contain_text("backfill (console)")
    expect(listed).to_contain_text(f"{START} to {END}")
    expect(listed.locator("td").nth(6)).to_have_text(str(truth["unmatched_items"]))
    assert_accessible(page)
    screenshot(page, "audits-list")
    assert offsite_requests == []


def _rows(table: Any) -> list[tuple[str, str]]:
    cells = table.locator("tbody tr").evaluate_all(
        "rows => rows.map(r => [r.cells[0].innerText, r.cells[1].innerText])"
    )
    return [(material, quantity) for material, quantity in cells]


# --- the refusals, over plain HTTP ------------------------------------------------------------


def test_bad_dates_are_shown_next_to_their_field(console: httpx.Client) -> None:
    cases = [
        ({"mode": "backfill", "from_date": "2024-3-1"}, "from_date",
         "from_date must be a date as YYYY-MM-DD, got '2024-3-1'"),
        ({"mode": "backfill", "from_date": START, "to_date": "2024-02-30"}, "to_date",
         "to_date must be a date as YYYY-MM-DD, got '2024-02-30'"),
        ({"mode": "backfill", "from_date": END, "to_date": START}, "to_date",
         f"to_date {START} is before from_date {END}"),
        ({"mode": "backfill", "from_date": "2023-01-01", "to_date": "2024-03-01"}, "to_date",
         "the window 2023-01-01..2024-03-01 spans 426 days; at most 366"),
        ({"mode": "backfill", "from_date": "", "to_date": END}, "from_date",
         "from_date: a backfill needs its first day (YYYY-MM-DD)"),
        ({"mode": "forward", "from_date": START}, "mode",
         "A forward audit starts from the watermark and takes no dates: clear the dates, or "
         "choose Backfill."),
        ({"mode": "sideways"}, "mode",
         "Choose Forward (from the watermark) or Backfill (the dates given)."),
    ]  # fmt: skip
    today = datetime.now(UTC).date()
    cases.append((
        {"mode": "backfill", "from_date": "2020-01-01"}, "to_date",
        f"the window 2020-01-01..{today} spans {(today - date(2020, 1, 1)).days + 1} days; "
        "at most 366",
    ))  # fmt: skip
    for form, field, message in cases:
        answer = start(console, **form)
        assert answer.status_code == 422, (form, answer.status_code)
        assert field_error(answer.text, field) == message.replace("'", "&#39;"), form
        assert f'aria-describedby="{field}_error"' in answer.text
    runs = console.get("/console/audits").text
    assert "No audit run." in runs  # nothing was started


def test_a_forward_audit_starts_from_the_watermark(
    console: httpx.Client, console_site: ConsoleSite
) -> None:
    answer = start(console, mode="forward", from_date="", to_date="")
    assert answer.status_code == 303
    run_id = int(answer.headers["location"].rsplit("/", 1)[1])
    run = wait_for_run(console_site, run_id)
    today = datetime.now(UTC).date()
    assert (run["status"], run["mode"], run["trigger"]) == ("succeeded", "forward", "console")
    assert run["from_date"] == (today - timedelta(days=7)).isoformat()  # From Days: 7
    assert run["to_date"] == today.isoformat()
    assert run["watermark"] == f"{today - timedelta(days=1)}T23:59:59"
    page = console.get(answer.headers["location"])
    assert f"Audit run {run_id} started: forward" in page.text
    assert "No unmatched materials in this run." in page.text
    assert f'href="/console/audits/{run_id}.csv"' not in page.text  # nothing to download


def test_a_run_already_running_is_refused_with_a_link_to_it(
    console: httpx.Client, console_site: ConsoleSite
) -> None:
    generate(console_site, items=300)
    console_site.sim.put("/sim/materials/settings", json={"latency_ms": 1500}).raise_for_status()
    first = console_site.admin.post("/inventory/sync", params={"from_date": START})
    assert first.status_code == 202, first.text
    run_id = first.json()["run_id"]
    try:
        answer = start(console, mode="backfill", from_date=START, to_date=END)
        assert answer.status_code == 409
        assert field_error(answer.text, "start") == (
            f"an inventory audit is already running (run {run_id}) See run {run_id}"
        )
        assert f'href="/console/audits/{run_id}"' in answer.text
        assert 'value="backfill" checked' in answer.text  # the form keeps what was chosen
        assert f'value="{START}"' in answer.text

        running = console.get(f"/console/audits/{run_id}")
        assert running.status_code == 200
        assert f'data-refresh="/console/audits/{run_id}/progress"' in running.text
        assert "started elsewhere" in running.text  # the API started it: no live counts here
        fragment = console.get(f"/console/audits/{run_id}/progress")
        assert fragment.status_code == 200
        assert fragment.text.lstrip().startswith("<section")
        assert "<html" not in fragment.text and "status-running" in fragment.text
    finally:
        done = wait_for_run(console_site, run_id)
    assert done["status"] == "succeeded"
    fragment = console.get(f"/console/audits/{run_id}/progress").text
    assert "status-succeeded" in fragment and "Show its findings" in fragment
    page = console.get(f"/console/audits/{run_id}").text
    assert "data-refresh" not in page


def test_an_audit_with_sap_integration_off_is_refused(
    console: httpx.Client, console_site: ConsoleSite
) -> None:
    off = console_site.admin.put("/config/SAP Integration - Enabled", json={"value": False})
    assert off.status_code == 200
    answer = start(console, mode="forward")
    assert answer.status_code == 409
    assert field_error(answer.text, "start") == (
        "SAP integration is disabled (SAP Integration - Enabled, in Settings): nothing was audited."
    )
    assert console_site.admin.get("/inventory/sync").json() == []


def test_a_form_without_the_csrf_token_is_refused(console: httpx.Client) -> None:
    answer = console.post("/console/audits", data={"mode": "forward"})
    assert answer.status_code == 403
    assert "did not carry the console&#39;s token" in answer.text


def test_unknown_runs_and_pages(console: httpx.Client, console_site: ConsoleSite) -> None:
    for path in ("/console/audits/999", "/console/audits/abc", "/console/audits/0",
                 "/console/audits/99999999999", "/console/audits/7.csv",
                 "/console/audits/7/progress"):  # fmt: skip
        answer = console.get(path)
        assert answer.status_code == 404, path
        assert "Audit run not found" in answer.text
    generate(console_site, items=300)
    run = console_site.admin.post("/inventory/sync", params={"from_date": START, "wait": "true"})
    run_id = run.json()["run_id"]
    for value in ("0", "2", "x", "-1"):
        answer = console.get(f"/console/audits/{run_id}", params={"page": value})
        assert answer.status_code == 422, value
        assert field_error(answer.text, "page") == (
            f"page: &#39;{value}&#39; is not a page of these findings (1 to 1)"
        )
    assert console.get("/console/audits", params={"status": "lost"}).status_code == 422
    listed = console.get("/console/audits", params={"before": "x"})
    assert listed.status_code == 422
    assert field_error(listed.text, "before") == "before: &#39;x&#39; is not a run number"


def test_the_list_pages_older_runs(console: httpx.Client, console_site: ConsoleSite) -> None:
    generate(console_site, items=50)
    ids = []
    for day in range(1, 24):  # 23 runs: more than the 20 a page
        params = {"from_date": f"2024-03-{day:02d}", "to_date": f"2024-03-{day:02d}", "wait": "1"}
        ids.append(console_site.admin.post("/inventory/sync", params=params).json()["run_id"])
    first = console.get("/console/audits").text
    shown = [int(n) for n in re.findall(r'<a href="/console/audits/(\d+)">Run', first)]
    assert shown == sorted(ids, reverse=True)[:20]
    older = re.search(r'<a href="(/console/audits\?before=\d+)">Older runs</a>', first)
    assert older is not None
    second = console.get(older[1]).text
    shown = [int(n) for n in re.findall(r'<a href="/console/audits/(\d+)">Run', second)]
    assert shown == sorted(ids, reverse=True)[20:]
    assert "Older runs" not in second and "Newest runs" in second


def test_the_csv_keeps_spreadsheets_from_running_cells(
    console: httpx.Client, console_site: ConsoleSite
) -> None:
    generate(console_site, items=300)
    run = console_site.admin.post(
        "/inventory/sync", params={"from_date": START, "to_date": END, "wait": "true"}
    ).json()
    formulas = ['=HYPERLINK("http://x")', "+1+2", "@SUM(A1)", "-3+4", "\tTAB"]
    off_thread(_add_findings(console_site, run["run_id"], formulas))

    answer = console.get(f"/console/audits/{run['run_id']}.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="audit-run-{run["run_id"]}-unmatched.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    by_material = {r["material"]: r for r in rows}
    for formula in formulas:
        row = by_material["'" + formula]  # shown as text, never run
        assert row["unit"] == "'@EA"
        assert row["documents"] == "'=1/2024/0001 4900000001/2024/0002"
        assert row["quantity"] == "-5.000"  # a plain number stays a number
    assert len(rows) == len(run["unmatched_materials"]) + len(formulas)
    for finding in run["unmatched_materials"]:
        assert by_material[finding["material"]]["quantity"] == finding["quantity"]


async def _add_findings(site: ConsoleSite, run_id: int, materials: list[str]) -> None:
    engine = create_async_engine(site.bridge.settings.database_url)
    try:
        async with make_session_factory(engine)() as session, session.begin():
            session.add_all(
                InventoryRunMaterial(
                    run_id=run_id, kind=UNMATCHED, material=material, quantity=Decimal("-5"),
                    unit="@EA", document_items=2,
                    documents=["=1/2024/0001", "4900000001/2024/0002"],
                )
                for material in materials
            )  # fmt: skip
    finally:
        await engine.dispose()


def test_pages_need_a_session(console_site: ConsoleSite) -> None:
    with httpx.Client(base_url=console_site.base_url) as anonymous:
        for path in ("/console/audits", "/console/audits/1", "/console/audits/1.csv"):
            answer = anonymous.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/console/sign-in?")
        fragment = anonymous.get("/console/audits/1/progress", headers={"X-Console-Fragment": "1"})
        assert fragment.status_code == 401
