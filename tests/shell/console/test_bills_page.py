"""The console in a real browser: signing in and out, the overview, and a bill's life.

A rejected bill is found by its reference with SAP's message, its cause fixed, retried and
seen posted; a posted bill is cancelled; a stale page refuses to act.
"""

from __future__ import annotations

import json
import re

import httpx

from tests.shell.console import (
    ConsoleSite,
    Page,
    Screenshot,
    assert_accessible,
    csrf_token,
    expect,
    sign_in,
    signed_in_client,
)
from tests.support.bridge import bill

#: a G/L account the simulator's chart of accounts does not hold: SAP rejects the posting
UNKNOWN_ACCOUNT = "49999999"
RULES_WITH_UNKNOWN_ACCOUNT = [
    {"department": "LAB", "gl_account": UNKNOWN_ACCOUNT, "profit_center": "PC100"},
    {"department": "OPD", "gl_account": "41000200", "profit_center": "PC200"},
]
RULES_FIXED = [
    {"department": "LAB", "gl_account": "41000100", "profit_center": "PC100"},
    {"department": "OPD", "gl_account": "41000200", "profit_center": "PC200"},
]


def test_sign_in_overview_and_sign_out(
    page: Page, console_site: ConsoleSite, screenshot: Screenshot, offsite_requests: list[str]
) -> None:
    page.goto(console_site.url("/console"))
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    assert_accessible(page)
    screenshot(page, "sign-in")
    page.get_by_label("Admin key").fill("not-the-admin-key-at-all")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text(
        "That is not the admin key (BRIDGE_ADMIN_API_KEY)."
    )
    assert console_site.admin_key not in page.content()

    console_site.push_bill("OV-1", reference="HMIS-OV-1")
    page.get_by_label("Admin key").fill(console_site.admin_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("Posted today"))).to_contain_text("1")
    expect(
        page.get_by_role("img", name=re.compile("Outstanding receivables by age"))
    ).to_be_visible()
    for name in ("Overview", "Bills", "Payments", "Reconciliation", "Inventory audits", "Settings"):
        expect(page.get_by_role("navigation").get_by_role("link", name=name)).to_be_visible()
    assert console_site.admin_key not in page.url
    cookie = next(c for c in page.context.cookies() if c["name"] == "bridge_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert console_site.admin_key not in cookie["value"]
    assert_accessible(page)
    screenshot(page, "overview")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You signed out.")
    page.goto(console_site.url("/console/sign-in?reason=Your+bank+needs+you"))
    expect(page.get_by_role("status")).to_have_count(0)  # a link cannot put its text here
    page.goto(console_site.url("/console/bills"))
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    assert offsite_requests == []


def test_the_overview_refreshes_in_place(page: Page, console_site: ConsoleSite) -> None:
    sign_in(page, console_site)
    tile = page.get_by_role("link", name=re.compile("Posted today"))
    expect(tile).to_contain_text("0")
    console_site.push_bill("OV-2", reference="HMIS-OV-2")
    # the page's script swaps the panel in every 15 s; no reload
    expect(tile).to_contain_text("1", timeout=30_000)


def test_a_rejected_bill_is_found_fixed_retried_and_posted(
    page: Page, console_site: ConsoleSite, screenshot: Screenshot
) -> None:
    console_site.push_bill("OK-1", reference="HMIS-OK-0001")
    rules = console_site.admin.put("/config/revenue-rules", json=RULES_WITH_UNKNOWN_ACCOUNT)
    assert rules.status_code == 200, rules.text
    answer = console_site.hmis.post("/bills/REJ-1/push", json=bill(reference="HMIS-REJ-0001"))
    assert (answer.status_code, answer.json()["status"]) == (502, "rejected")

    sign_in(page, console_site, "/console/bills")
    page.get_by_label("Search bills").fill("HMIS-REJ-0001")
    page.get_by_role("button", name="Search").click()
    rows = page.get_by_role("row")
    expect(rows).to_have_count(2)  # the header and the one bill
    expect(rows.nth(1)).to_contain_text("rejected")
    assert_accessible(page)
    screenshot(page, "bills")
    page.get_by_role("link", name="REJ-1").click()
    expect(page.get_by_role("table", name="What SAP answered last")).to_contain_text(
        UNKNOWN_ACCOUNT
    )
    assert_accessible(page)
    screenshot(page, "bill-rejected")

    page.get_by_role("navigation").get_by_role("link", name="Settings").click()  # fix the cause
    expect(page.get_by_label("Department, row 1")).to_have_value("LAB")
    page.get_by_label("G/L account, row 1").fill("41000100")
    page.get_by_role("button", name="Save revenue rules").click()
    saved = console_site.admin.get("/config").json()["revenue-rules"]
    assert saved == [rule | {"cost_center": None} for rule in RULES_FIXED]
    page.goto(console_site.url("/console/bills/REJ-1"))
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status")).to_contain_text("Retry: posted (SAP document")
    expect(page.get_by_role("heading", level=1)).to_contain_text("posted")
    record = console_site.hmis.get("/bills/REJ-1").json()
    assert record["status"] == "posted"
    ledger = console_site.sim.get("/sim/ledger").json()["documents"]
    posted = [d for d in ledger if d["reference_id"] == record["document_reference_id"]]
    assert [d["number"] for d in posted] == [record["sap_document_number"]]


def test_a_posted_bill_is_cancelled_after_confirming(
    page: Page, console_site: ConsoleSite, screenshot: Screenshot
) -> None:
    posted = console_site.push_bill("CAN-1", reference="HMIS-CAN-0001")
    sign_in(page, console_site, "/console/bills/CAN-1")
    page.get_by_role("button", name="Cancel bill").click()  # unticked: the browser refuses
    expect(page.get_by_role("heading", level=1)).to_contain_text("posted")
    page.get_by_label("HMIS cancelled this bill").check()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel bill").click()
    expect(page.get_by_role("status")).to_contain_text("Cancel: reversed")
    expect(page.get_by_role("heading", level=1)).to_contain_text("reversed")
    assert_accessible(page)
    screenshot(page, "bill-reversed")
    record = console_site.hmis.get("/bills/CAN-1").json()
    assert record["status"] == "reversed"
    assert record["sap_document_number"] == posted["sap_document_number"]
    assert record["reversal_document_number"]


def test_a_stale_page_does_not_act(page: Page, console_site: ConsoleSite) -> None:
    console_site.push_bill("STALE-1", reference="HMIS-STALE-1")
    sign_in(page, console_site, "/console/bills/STALE-1")
    expect(page.get_by_role("heading", level=1)).to_contain_text("posted")
    assert console_site.hmis.post("/bills/STALE-1/cancel").status_code == 200  # HMIS, meanwhile
    page.get_by_label("HMIS cancelled this bill").check()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel bill").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "This bill changed while you were looking at it (it is now reversed)"
    )
    ledger = console_site.sim.get("/sim/ledger").json()["documents"]
    assert len(ledger) == 2  # the posting and one reversal: the stale form sent nothing


def test_forms_without_the_csrf_token_are_refused(console_site: ConsoleSite) -> None:
    console_site.push_bill("CSRF-1", reference="HMIS-CSRF-1")
    with signed_in_client(console_site) as (client, csrf):
        for data in ({}, {"csrf_token": "forged"}, {"csrf_token": csrf + "x"}):
            refused = client.post("/console/bills/CSRF-1/cancel", data={**data, "confirm": "yes"})
            assert refused.status_code == 403
            assert "did not carry the console&#39;s token" in refused.text
        assert console_site.hmis.get("/bills/CSRF-1").json()["status"] == "posted"
        bare = httpx.post(console_site.url("/console/sign-out"), data={"csrf_token": csrf})
        assert bare.status_code == 303 and "/console/sign-in" in bare.headers["location"]


def test_sign_in_without_its_form_token_and_wrong_keys_are_limited(
    console_site: ConsoleSite,
) -> None:
    with httpx.Client(base_url=console_site.base_url, timeout=30) as client:
        forged = client.post("/console/sign-in", data={"admin_key": console_site.admin_key})
        assert forged.status_code == 403
        assert "bridge_console" not in forged.cookies
        token = re.search(r'name="sign_in_token" value="([^"]+)"', client.get(
            "/console/sign-in").text)  # fmt: skip
        assert token
        codes = [
            client.post("/console/sign-in", data={
                "admin_key": f"wrong-key-{n}", "sign_in_token": token.group(1)}).status_code
            for n in range(6)
        ]  # fmt: skip
        assert codes == [401] * 5 + [429]
        limited = client.post("/console/sign-in", data={
            "admin_key": console_site.admin_key, "sign_in_token": token.group(1)})  # fmt: skip
        assert limited.status_code == 429  # even the right key waits out the window
        assert "try again in" in limited.text and int(limited.headers["retry-after"]) > 0


def test_bad_filters_and_unknown_bills_are_pages_not_errors(console_site: ConsoleSite) -> None:
    with signed_in_client(console_site) as (client, _):
        bad_date = client.get("/console/bills", params={"from": "15.03.2024"})
        assert bad_date.status_code == 422
        assert "from: &#39;15.03.2024&#39; is not a date (YYYY-MM-DD)" in bad_date.text
        bad_status = client.get("/console/bills", params={"status": "paid"})
        assert bad_status.status_code == 422 and "is not one of" in bad_status.text
        bad_cursor = client.get("/console/bills", params={"cursor": "nonsense"})
        assert bad_cursor.status_code == 422 and "cursor" in bad_cursor.text
        long_search = client.get("/console/bills", params={"q": "x" * 100})
        assert long_search.status_code == 422 and "text/html" in long_search.headers["content-type"]
        assert "q: at most 64 characters" in long_search.text
        bad_form = client.post("/console/bills/X/resolve", data={"csrf_token": ["a", "b"]})
        assert (
            bad_form.status_code in (403, 422) and "text/html" in bad_form.headers["content-type"]
        )
        missing = client.get("/console/bills/NO-SUCH-BILL")
        assert missing.status_code == 404 and "has never been pushed" in missing.text
        not_review = client.post("/console/bills/NO-SUCH-BILL/retry", data={
            "csrf_token": csrf_token(client)})  # fmt: skip
        assert not_review.status_code == 404


def _lines_table(page: Page) -> list[list[str]]:
    rows = page.get_by_role("table").last.get_by_role("row")
    return [[c.strip() for c in rows.nth(i).locator("td").all_inner_texts()]
            for i in range(1, rows.count())]  # fmt: skip


def test_the_preview_page_shows_what_the_push_then_posts(
    page: Page, console_site: ConsoleSite, screenshot: Screenshot
) -> None:
    body = bill(reference="HMIS-PREVIEW-1")
    sign_in(page, console_site, "/console/preview")
    page.get_by_label("Bill (push body, JSON)").fill("{not json")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#body_error")).to_contain_text("not valid JSON")
    page.get_by_label("Bill (push body, JSON)").fill(json.dumps(body | {"net_total": "1.00"}))
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#body_error")).to_contain_text("net_total")
    page.get_by_label("Bill id").fill("PRE-1")
    page.get_by_label("Bill (push body, JSON)").fill(json.dumps(body))
    page.get_by_role("button", name="Preview").click()
    previewed = _lines_table(page)
    api = console_site.hmis.post("/bills/PRE-1/preview", json=body).json()
    assert [row[0].removesuffix(" (customer)") for row in previewed] == [
        line["account"] for line in api["entry"]["lines"]
    ]
    assert_accessible(page)
    screenshot(page, "preview")
    assert console_site.sim.get("/sim/ledger").json()["documents"] == []  # nothing was sent

    console_site.push_bill("PRE-1", **body)
    page.goto(console_site.url("/console/bills/PRE-1"))
    sent = page.locator("section", has=page.get_by_role("heading", name="Journal entry as sent"))
    rows = sent.get_by_role("row")
    as_sent = [[c.strip() for c in rows.nth(i).locator("td").all_inner_texts()]
               for i in range(1, rows.count())]  # fmt: skip
    assert as_sent == previewed


def test_a_form_sent_after_the_session_ended_returns_to_its_page(console_site: ConsoleSite) -> None:
    with httpx.Client(base_url=console_site.base_url, timeout=30) as client:
        sent = client.post("/console/bills/B-9/retry", data={"csrf_token": "x"},
                           headers={"referer": console_site.url("/console/bills/B-9")})  # fmt: skip
    assert sent.status_code == 303
    assert "next=%2Fconsole%2Fbills%2FB-9&" in sent.headers["location"] + "&"
