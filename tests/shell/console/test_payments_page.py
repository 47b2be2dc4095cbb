"""The console's Payments section: the list by status, one payment, and the decisions on it.

Payments arrive as SAP sends them: the simulator clears a posted bill's invoice and delivers
the signed webhook (with the reference SAP's clerk typed), or a signed webhook is posted here.
Each decision made in the browser is read back where the API reads it.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.payments.conftest import SECRET, WEBHOOK, payment, signed
from tests.shell.console import (
    ConsoleSite,
    Page,
    Screenshot,
    assert_accessible,
    expect,
    sign_in,
    signed_in_client,
)

MATCH_NOTE = "the bank mistyped the reference; same amount as the invoice (ticket FIN-12)"
ACCEPT_NOTE = "500.00 overpaid by the insurer; finance keeps it on account (ticket FIN-231)"
DISMISS_NOTE = "a test transfer from the bank, reversed the same day"


# --- seeding --------------------------------------------------------------------------------


def webhooks_on(site: ConsoleSite) -> None:
    """The webhook secret the simulator (and `signed`) sign with, set as an operator would."""
    answer = site.admin.put("/config/SAP Integration - Webhook Secret", json={"value": SECRET})
    assert answer.status_code == 200, answer.text


def sap_pays(site: ConsoleSite, posted: dict[str, Any], **clear: Any) -> dict[str, Any]:
    """SAP clears the bill's invoice and its iFlow delivers the signed payment webhook."""
    target = {"url": site.url(WEBHOOK), "kind": "payment_webhook", "secret": SECRET}
    assert site.sim.put("/sim/events/subscriptions/iflow", json=target).status_code == 200
    invoice = {"company_code": posted["company_code"], "fiscal_year": posted["fiscal_year"],
               "accounting_document": posted["sap_document_number"]}  # fmt: skip
    result = site.sim.post("/sim/events/clear", json=invoice | clear)
    assert result.status_code == 200, result.text
    body: dict[str, Any] = result.json()
    assert [d["status_code"] for d in body["deliveries"]] in ([200], [202]), body["deliveries"]
    return body


def report(site: ConsoleSite, body: dict[str, Any]) -> dict[str, Any]:
    """Post one signed payment webhook; the payment as `GET /payments` lists it."""
    raw, headers = signed(body)
    answer = httpx.post(site.url(WEBHOOK), content=raw, headers=headers, timeout=30)
    assert answer.status_code in (200, 202), answer.text
    return stored(site, body["paymentDocument"], body["hmsBillReference"])


def stored(site: ConsoleSite, document: str, reference: str) -> dict[str, Any]:
    listing = site.admin.get("/payments", params={"q": document, "limit": 500})
    assert listing.status_code == 200, listing.text
    (found,) = [p for p in listing.json()["items"] if p["bill_reference"] == reference]
    return found


def detail(site: ConsoleSite, payment_id: int) -> dict[str, Any]:
    answer = site.admin.get(f"/payments/{payment_id}")
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def audit_rows(page: Page) -> list[list[str]]:
    rows = page.get_by_role("table", name="Operators' decisions, oldest first.").get_by_role("row")
    return [[c.strip() for c in rows.nth(i).locator("td").all_inner_texts()]
            for i in range(1, rows.count())]  # fmt: skip


def decision_buttons(page: Page) -> int:
    return sum(page.get_by_role("button", name=n, exact=True).count()
               for n in ("Match", "Accept", "Dismiss"))  # fmt: skip


# --- in the browser -------------------------------------------------------------------------


def test_an_unmatched_payment_is_matched_to_its_bill_by_reference(
    page: Page, console_site: ConsoleSite, screenshot: Screenshot, offsite_requests: list[str]
) -> None:
    webhooks_on(console_site)
    posted = console_site.push_bill("PAY-1", reference="HMIS-PAY-0001")
    console_site.push_bill("GONE-1", reference="HMIS-GONE-0001")
    assert console_site.hmis.post("/bills/GONE-1/cancel").status_code == 200  # reversed
    paid = sap_pays(console_site, posted, hms_bill_reference="HMIS-PAY-O001")  # a typo
    found = stored(console_site, paid["payment_document"], "HMIS-PAY-O001")
    assert (found["status"], found["bill_id"]) == ("unmatched", None)

    sign_in(page, console_site, "/console/payments")
    expect(page.get_by_role("heading", name="Payments", level=1)).to_be_visible()
    tabs = page.get_by_role("navigation", name="Payment status")
    expect(tabs.get_by_role("link", name="unmatched")).to_have_attribute("aria-current", "page")
    page.get_by_label("Search payments").fill("pay-o001")
    page.get_by_role("button", name="Search").click()
    rows = page.get_by_role("row")
    expect(rows).to_have_count(2)  # the header and the one payment
    cells = [c.strip() for c in rows.nth(1).locator("td").all_inner_texts()]
    assert cells == [
        paid["payment_document"], found["payment_fiscal_year"], "HMIS-PAY-O001", "none",
        "15,000.00 LKR", found["posting_date"], "unmatched",
        "no bill with reference HMIS-PAY-O001", "webhook",
    ]  # fmt: skip
    assert_accessible(page)
    screenshot(page, "payments")

    page.get_by_role("link", name=paid["payment_document"]).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("unmatched")
    expect(page.get_by_role("list").filter(has_text="no bill with reference")).to_be_visible()
    expect(page.get_by_role("button", name="Accept")).to_have_count(0)  # not a mismatch
    assert_accessible(page)
    screenshot(page, "payment-unmatched")

    form = page.get_by_role("form", name="Match to a bill")
    form.get_by_label("Bill").fill("NO-SUCH-BILL")  # 404: next to the Bill field
    form.get_by_label("Note").fill(MATCH_NOTE)
    form.get_by_role("button", name="Match").click()
    expect(page.locator("#match_bill_error")).to_have_text(
        "no bill with id or reference NO-SUCH-BILL"
    )
    expect(form.get_by_label("Note")).to_have_value(MATCH_NOTE)  # kept for the next try
    form.get_by_label("Bill").fill("HMIS-GONE-0001")  # 409: next to the form
    form.get_by_role("button", name="Match").click()
    expect(form.get_by_role("alert")).to_contain_text(
        "bill GONE-1 is reversed, not posted: a payment can be matched only to a posted bill"
    )
    assert detail(console_site, found["id"])["decisions"] == []

    form.get_by_label("Bill").fill("HMIS-PAY-0001")
    form.get_by_role("button", name="Match").click()
    expect(page.get_by_role("status")).to_have_text("Match: confirmed against bill PAY-1")
    expect(page.get_by_role("heading", level=1)).to_contain_text("confirmed")
    assert decision_buttons(page) == 0  # confirmed is final
    (row,) = audit_rows(page)
    assert [row[0], row[2], row[3], row[4], row[5]] == [
        "match", "console", MATCH_NOTE, "unmatched → confirmed", "PAY-1"]  # fmt: skip
    (decision,) = detail(console_site, found["id"])["decisions"]
    assert (decision["actor"], decision["note"], decision["to_status"]) == (
        "console", MATCH_NOTE, "confirmed")  # fmt: skip

    page.get_by_role("link", name="PAY-1").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Bill PAY-1")
    expect(page.locator("dt:text-is('Paid / outstanding') + dd")).to_have_text(
        "15,000.00 / 0.00 LKR"
    )
    bill = console_site.hmis.get("/bills/PAY-1").json()
    assert (bill["paid_amount"], bill["outstanding_amount"]) == ("15000.00", "0.00")
    assert offsite_requests == []


def test_a_mismatch_is_accepted_with_a_note_kept_in_its_trail(
    page: Page, console_site: ConsoleSite, screenshot: Screenshot
) -> None:
    webhooks_on(console_site)
    posted = console_site.push_bill("MIS-1", reference="HMIS-MIS-0001")
    over = report(console_site, payment(
        "HMIS-MIS-0001", "1400000501", "15500.00", posted["sap_document_number"]))  # fmt: skip
    assert over["status"] == "mismatch"

    sign_in(page, console_site, "/console/payments")
    page.get_by_role("navigation", name="Payment status").get_by_role(
        "link", name="mismatch").click()  # fmt: skip
    expect(page).to_have_url(re.compile(r"status=mismatch"))
    rows = page.get_by_role("row")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("overpayment: 15500.00 exceeds the outstanding 15000.00")
    expect(rows.nth(1).get_by_role("link", name="MIS-1")).to_have_attribute(
        "href", "/console/bills/MIS-1"
    )
    assert_accessible(page)
    page.get_by_role("link", name="1400000501").click()
    expect(page.get_by_role("link", name="MIS-1")).to_have_attribute("href", "/console/bills/MIS-1")
    assert decision_buttons(page) == 3
    assert_accessible(page)
    screenshot(page, "payment-mismatch")

    form = page.get_by_role("form", name="Accept the mismatch")
    form.get_by_label("Note").fill(f"  {ACCEPT_NOTE}  ")
    form.get_by_role("button", name="Accept").click()
    expect(page.get_by_role("status")).to_have_text("Accept: accepted on bill MIS-1")
    (row,) = audit_rows(page)
    assert [row[0], row[2], row[3], row[4]] == [
        "accept", "console", ACCEPT_NOTE, "mismatch → accepted"]  # fmt: skip
    assert "overpayment" in page.get_by_role("list").filter(has_text="overpayment").inner_text()
    assert_accessible(page)
    screenshot(page, "payment-accepted")
    assert detail(console_site, over["id"])["status"] == "accepted"
    bill = console_site.hmis.get("/bills/MIS-1").json()
    assert bill["paid_amount"] == "15500.00"  # an accepted payment counts as paid


def test_an_unmatched_payment_is_dismissed(page: Page, console_site: ConsoleSite) -> None:
    webhooks_on(console_site)
    stray = report(console_site, payment("HMIS-NOBODY-1", "1400000601", "250.00"))
    sign_in(page, console_site, f"/console/payments/{stray['id']}")
    form = page.get_by_role("form", name="Dismiss the payment")
    form.get_by_label("Note").fill(DISMISS_NOTE)
    form.get_by_role("button", name="Dismiss").click()
    expect(page.get_by_role("status")).to_have_text("Dismiss: dismissed")
    expect(page.get_by_role("heading", level=1)).to_contain_text("dismissed")
    assert decision_buttons(page) == 0
    (row,) = audit_rows(page)
    assert row[2:5] == ["console", DISMISS_NOTE, "unmatched → dismissed"]
    assert_accessible(page)
    assert detail(console_site, stray["id"])["status"] == "dismissed"
    page.goto(console_site.url("/console/payments"))  # gone from what needs attention
    expect(page.get_by_role("cell", name="1400000601")).to_have_count(0)
    page.goto(console_site.url("/console/payments?status=dismissed"))
    expect(page.get_by_role("link", name="1400000601")).to_be_visible()


def test_a_stale_page_says_the_payment_changed_meanwhile(
    page: Page, console_site: ConsoleSite
) -> None:
    webhooks_on(console_site)
    console_site.push_bill("ST-1", reference="HMIS-ST-0001")
    stray = report(console_site, payment("HMIS-ST-O001", "1400000701"))
    sign_in(page, console_site, f"/console/payments/{stray['id']}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("unmatched")
    meanwhile = console_site.admin.post(
        f"/payments/{stray['id']}/dismiss", json={"note": "dismissed from the API meanwhile"}
    )
    assert meanwhile.status_code == 200, meanwhile.text
    form = page.get_by_role("form", name="Match to a bill")
    form.get_by_label("Bill").fill("HMIS-ST-0001")
    form.get_by_label("Note").fill(MATCH_NOTE)
    form.get_by_role("button", name="Match").click()
    expect(page.get_by_role("alert")).to_have_text(
        f"payment {stray['id']} changed meanwhile (now dismissed); look at it again"
    )
    expect(page.get_by_role("heading", level=1)).to_contain_text("dismissed")
    assert decision_buttons(page) == 0
    trail = detail(console_site, stray["id"])["decisions"]
    assert [(d["action"], d["actor"]) for d in trail] == [("dismiss", "api")]
    assert console_site.hmis.get("/bills/ST-1").json()["paid_amount"] == "0.00"


# --- over HTTP: bad input -------------------------------------------------------------------


def test_an_empty_note_is_shown_next_to_the_note_field(console_site: ConsoleSite) -> None:
    webhooks_on(console_site)
    posted = console_site.push_bill("EN-1", reference="HMIS-EN-0001")
    body = payment("HMIS-EN-0001", "1400000801", "99.00", posted["sap_document_number"], "USD")
    odd = report(console_site, body)
    assert odd["status"] == "mismatch"
    with signed_in_client(console_site) as (client, csrf):
        for action in ("accept", "dismiss"):
            empty = client.post(f"/console/payments/{odd['id']}/{action}", data={
                "csrf_token": csrf, "note": "   ", "expected_status": "mismatch"})  # fmt: skip
            assert empty.status_code == 422
            assert (
                f'<p id="{action}_note_error" class="error">note: required: say why, in 1-500 '
                "characters</p>"
            ) in empty.text
            assert f'aria-describedby="{action}_note_error"' in empty.text
        form = {"csrf_token": csrf, "bill": " ", "note": "", "expected_status": "mismatch"}
        both = client.post(f"/console/payments/{odd['id']}/match", data=form)
        assert both.status_code == 422
        assert '<p id="match_bill_error" class="error">bill: name the bill' in both.text
        assert '<p id="match_note_error" class="error">note: required' in both.text
        long = client.post(f"/console/payments/{odd['id']}/dismiss", data={
            "csrf_token": csrf, "note": "x" * 501, "expected_status": "mismatch"})  # fmt: skip
        assert long.status_code == 422 and "at most 500 characters (got 501)" in long.text
        assert "x" * 501 in long.text  # the note is kept for correcting
        # a 409 of the service, next to its form: another currency than the bill
        refused = client.post(f"/console/payments/{odd['id']}/accept", data={
            "csrf_token": csrf, "note": ACCEPT_NOTE, "expected_status": "mismatch"})  # fmt: skip
        assert refused.status_code == 409
        assert "is in USD, bill EN-1 in LKR" in refused.text
    answer = detail(console_site, odd["id"])
    assert (answer["status"], answer["decisions"]) == ("mismatch", [])


def test_forms_without_the_csrf_token_are_refused(console_site: ConsoleSite) -> None:
    webhooks_on(console_site)
    stray = report(console_site, payment("HMIS-CSRF-P1", "1400000901"))
    with signed_in_client(console_site) as (client, csrf):
        for data in ({}, {"csrf_token": "forged"}, {"csrf_token": csrf + "x"}):
            for action in ("match", "accept", "dismiss"):
                refused = client.post(f"/console/payments/{stray['id']}/{action}", data={
                    **data, "note": DISMISS_NOTE, "bill": "X"})  # fmt: skip
                assert refused.status_code == 403
                assert "did not carry the console&#39;s token" in refused.text
    assert detail(console_site, stray["id"])["decisions"] == []
    unsigned = httpx.get(console_site.url(f"/console/payments/{stray['id']}"))
    assert unsigned.status_code == 303 and "/console/sign-in" in unsigned.headers["location"]


def test_an_unknown_payment_is_a_404_page(console_site: ConsoleSite) -> None:
    with signed_in_client(console_site) as (client, csrf):
        for path in ("999999", "0", "-1", "abc", "1e3", str(2**63), "١"):
            missing = client.get(f"/console/payments/{path}")
            assert missing.status_code == 404, path
            assert "Payment not found" in missing.text and f"no payment {path}" in missing.text
        for action in ("match", "accept", "dismiss"):
            posted = client.post(f"/console/payments/999999/{action}", data={
                "csrf_token": csrf, "note": DISMISS_NOTE, "bill": "B-1"})  # fmt: skip
            assert posted.status_code == 404 and "no payment 999999" in posted.text


def test_bad_filters_and_cursors_are_pages_not_errors(console_site: ConsoleSite) -> None:
    with signed_in_client(console_site) as (client, _):
        for cursor in ("nonsense", "UDA", "x" * 201, "UC0x"):
            bad = client.get("/console/payments", params={"cursor": cursor})
            assert bad.status_code == 422, cursor
            assert "cursor: not a cursor this service issued" in bad.text
            assert 'href="/console/payments"' in bad.text  # a way back to the first page
        status = client.get("/console/payments", params={"status": "paid"})
        assert status.status_code == 422 and "status: &#39;paid&#39; is not one of" in status.text
        long = client.get("/console/payments", params={"q": "x" * 65})
        assert long.status_code == 422
        assert '<p id="q_error" class="error">Search payments: at most 64' in long.text
        control = client.get("/console/payments", params={"q": "a\x01b"})
        assert control.status_code == 422 and "control characters" in control.text


def test_keyset_paging_lists_each_payment_once(console_site: ConsoleSite) -> None:
    webhooks_on(console_site)
    documents = {f"15{n:08d}" for n in range(53)}
    for document in sorted(documents):
        raw, headers = signed(payment("HMIS-PAGED", document, "10.00"))
        answer = httpx.post(console_site.url(WEBHOOK), content=raw, headers=headers, timeout=30)
        assert answer.status_code == 202, answer.text
    seen: list[str] = []
    pages = 0
    with signed_in_client(console_site) as (client, _):
        url: str | None = "/console/payments?status=all&q=paged"
        while url is not None:
            listed = client.get(url.replace("&amp;", "&"))
            assert listed.status_code == 200, listed.text
            pages += 1
            seen += re.findall(r'<a href="/console/payments/\d+">(\d{10})</a>', listed.text)
            after = re.search(
                r'<a href="(/console/payments\?[^"]*cursor=[^"]+)">Next page', listed.text
            )
            url = after.group(1) if after else None
    assert pages == 2
    assert len(seen) == len(documents) and set(seen) == documents
    assert seen == sorted(seen, reverse=True)  # newest first, across the pages
