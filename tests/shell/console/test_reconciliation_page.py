"""The console's Reconciliation section: the report for a date range as tables, and its CSV.

What the page and its download show is compared with `GET /reconciliation`, the API finance's
scripts read: the same rows, the same amounts, byte for byte the same CSV.
"""

from __future__ import annotations

import csv
import html
import io
import itertools
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.payments.conftest import WEBHOOK, payment, signed
from tests.shell.console import (
    ConsoleSite,
    Page,
    Screenshot,
    assert_accessible,
    expect,
    sign_in,
    signed_in_client,
)
from tests.shell.console.test_payments_page import report, sap_pays, webhooks_on

FROM = "2024-01-01"


def today() -> str:
    """The simulator dates its clearings by the local day; the API's default `to` is UTC's."""
    return max(date.today(), datetime.now(UTC).date()).isoformat()


def api_report(site: ConsoleSite, **params: str) -> dict[str, Any]:
    answer = site.hmis.get("/reconciliation", params=params)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def api_csv(site: ConsoleSite, **params: str) -> bytes:
    answer = site.hmis.get("/reconciliation", params=params, headers={"Accept": "text/csv"})
    assert answer.status_code == 200, answer.text
    return answer.content


def table_rows(page: Page, heading: str) -> list[list[str]]:
    section = page.get_by_role("region", name=heading)
    rows = section.get_by_role("row")
    return [[c.strip() for c in rows.nth(i).locator("td").all_inner_texts()]
            for i in range(1, rows.count())]  # fmt: skip


def cut(rows: list[dict[str, str]], section: str, *columns: str) -> list[tuple[str, ...]]:
    """The CSV rows of one section, as tuples of the columns named."""
    return [tuple(r[c] for c in columns) for r in rows if r["section"] == section]


def money(amount: str) -> str:
    return f"{Decimal(amount):,.2f}"


def test_the_report_and_its_csv_are_the_apis(
    page: Page, console_site: ConsoleSite, screenshot: Screenshot, offsite_requests: list[str]
) -> None:
    webhooks_on(console_site)
    console_site.push_bill("OPEN-1", reference="HMIS-OPEN-0001", bill_date="2023-12-20")
    part = console_site.push_bill("PART-1", reference="HMIS-PART-0001")
    sap_pays(console_site, part, amount="5000.00")
    odd = console_site.push_bill("ODD-1", reference="HMIS-ODD-0001", bill_date="2024-02-01")
    over = report(console_site, payment(
        "HMIS-ODD-0001", "1400001001", "16000.00", odd["sap_document_number"]))  # fmt: skip
    stray = report(console_site, payment("HMIS-LOST-1", "1400001002", "1234.50"))
    report(console_site, payment("HMIS-LOST-2", "1400001003", "20.00", currency="USD"))
    assert (over["status"], stray["status"]) == ("mismatch", "unmatched")

    sign_in(page, console_site, "/console/reconciliation")
    expect(page.get_by_role("heading", name="Reconciliation", level=1)).to_be_visible()
    everything = api_report(console_site)  # no dates: everything up to today
    assert [r[0] for r in table_rows(page, "Open bills")] == [
        b["bill_id"] for b in everything["open_bills"]
    ] == ["OPEN-1", "ODD-1", "PART-1"]  # fmt: skip
    assert_accessible(page)

    page.get_by_label("From", exact=True).fill(FROM)
    page.get_by_label("To", exact=True).fill(today())
    page.get_by_role("button", name="Show report").click()
    expect(page).to_have_url(re.compile(rf"from={FROM}&to={today()}"))
    expected = api_report(console_site, **{"from": FROM, "to": today()})
    assert table_rows(page, "Open bills") == [
        [b["bill_id"], b["reference"], f"{b['sap_document_number']} / {b['fiscal_year']}",
         b["bill_date"], f"{money(b['net_total'])} LKR", f"{money(b['paid_amount'])} LKR",
         f"{money(b['outstanding_amount'])} LKR", str(b["age_days"]), b["ageing_bucket"]]
        for b in expected["open_bills"]
    ]  # fmt: skip
    assert [r[0] for r in table_rows(page, "Open bills")] == ["ODD-1", "PART-1"]  # 2023 is out
    part_row = table_rows(page, "Open bills")[1]
    assert part_row[5:7] == ["5,000.00 LKR", "10,000.00 LKR"]
    sections = {"Unmatched payments": "unmatched_payments", "Mismatches": "mismatches"}
    for heading, key in sections.items():
        assert table_rows(page, heading) == [
            [p["payment_document"], p["payment_fiscal_year"], p["bill_reference"],
             p["bill_id"] or "none", f"{money(p['amount'])} {p['currency']}", p["posting_date"],
             p["source"], "; ".join(p["reasons"])]
            for p in expected[key]
        ], heading  # fmt: skip
    assert table_rows(page, "Totals per currency") == [
        [t["currency"], str(t["open_bills"]), money(t["outstanding_amount"]),
         str(t["unmatched_payments"]), money(t["unmatched_amount"]),
         str(t["mismatched_payments"]), money(t["mismatched_amount"])]
        for t in expected["totals"]
    ] == [["LKR", "2", "25,000.00", "1", "1,234.50", "1", "16,000.00"],
          ["USD", "0", "0.00", "1", "20.00", "0", "0.00"]]  # fmt: skip
    assert_accessible(page)
    screenshot(page, "reconciliation")

    with page.expect_download() as waiting:
        page.get_by_role("link", name="Download CSV").click()
    download = waiting.value
    assert download.suggested_filename == f"reconciliation-{FROM}-to-{today()}.csv"
    downloaded = Path(download.path()).read_bytes()
    assert downloaded == api_csv(console_site, **{"from": FROM, "to": today()})
    rows = list(csv.DictReader(io.StringIO(downloaded.decode("utf-8"))))
    bills = expected["open_bills"]
    assert cut(rows, "open_bill", "bill_id", "outstanding_amount") == [
        (b["bill_id"], b["outstanding_amount"]) for b in bills
    ]
    unmatched = expected["unmatched_payments"]
    assert cut(rows, "unmatched_payment", "payment_document", "amount", "currency") == [
        (p["payment_document"], p["amount"], p["currency"]) for p in unmatched
    ]
    assert cut(rows, "mismatch", "payment_document", "bill_id", "reasons") == [
        (p["payment_document"], p["bill_id"], "; ".join(p["reasons"]))
        for p in expected["mismatches"]
    ]
    assert cut(rows, "total", "currency", "outstanding_amount") == [
        (t["currency"], t["outstanding_amount"]) for t in expected["totals"]
    ]

    # each payment links to its own page
    page.get_by_role("region", name="Mismatches").get_by_role("link", name="1400001001").click()
    expect(page).to_have_url(console_site.url(f"/console/payments/{over['id']}"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("mismatch")
    page.go_back()
    page.get_by_role("region", name="Unmatched payments").get_by_role(
        "link", name="1400001002").click()  # fmt: skip
    expect(page).to_have_url(console_site.url(f"/console/payments/{stray['id']}"))
    assert offsite_requests == []


def test_bad_dates_are_shown_next_to_their_field(console_site: ConsoleSite) -> None:
    with signed_in_client(console_site) as (client, _):
        cases = [
            ({"from": "15.03.2024"}, "from", "from: &#39;15.03.2024&#39; is not a date (YYYY-MM-"),
            ({"to": "2024-02-30"}, "to", "to: &#39;2024-02-30&#39; is not a date (YYYY-MM-DD)"),
            ({"from": "20240301"}, "from", "from: &#39;20240301&#39; is not a date"),
            ({"to": "2024-1-5"}, "to", "to: &#39;2024-1-5&#39; is not a date"),
            ({"from": "2024-05-01", "to": "2024-04-01"}, "from", "from: must not be after to"),
        ]  # fmt: skip
        for params, field, message in cases:
            for path in ("/console/reconciliation", "/console/reconciliation.csv"):
                answer = client.get(path, params=params)
                assert answer.status_code == 422, (path, params)
                assert answer.headers["content-type"].startswith("text/html")
                assert "content-disposition" not in answer.headers
                error = re.search(rf'<p id="{field}_error" class="error">([^<]*)</p>', answer.text)
                assert error and message in error.group(1), (path, params, answer.text[-2000:])
                assert f'aria-describedby="{field}_error"' in answer.text
                assert "Download CSV" not in answer.text
        long = client.get("/console/reconciliation", params={"from": "9" * 5000})
        assert long.status_code == 422 and "9" * 41 not in long.text
    unsigned = httpx.get(console_site.url("/console/reconciliation.csv"))
    assert unsigned.status_code == 303 and "/console/sign-in" in unsigned.headers["location"]


_documents = itertools.count(1)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    amounts=st.lists(
        st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999999.99"), places=2),
        min_size=1,
        max_size=3,
    )
)
def test_the_unmatched_total_is_the_sum_of_the_payments(
    console_site: ConsoleSite, amounts: list[Decimal]
) -> None:
    """Cumulative over the examples: the site is the test's, so payments add up across them."""
    webhooks_on(console_site)
    for amount in amounts:
        body = payment("HMIS-SUM", f"16{next(_documents):08d}", str(amount))
        raw, headers = signed(body)
        answer = httpx.post(console_site.url(WEBHOOK), content=raw, headers=headers, timeout=30)
        assert answer.status_code == 202, answer.text
    listed = console_site.admin.get("/payments", params={"q": "HMIS-SUM", "limit": 500}).json()
    stored = [Decimal(p["amount"]) for p in listed["items"]]
    total = sum(stored, Decimal(0))
    with signed_in_client(console_site) as (client, _):
        page = client.get("/console/reconciliation", params={"to": today()})
        assert page.status_code == 200
        totals = page.text.split('id="totals-heading"')[1].split('id="open-heading"')[0]
        cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>([^<]*)</td>", totals)]
        assert cells == ["LKR", "0", "0.00", str(len(stored)), f"{total:,.2f}", "0", "0.00"]
        csv_text = client.get("/console/reconciliation.csv", params={"to": today()}).text
    (row,) = [r for r in csv.DictReader(io.StringIO(csv_text)) if r["section"] == "total"]
    assert f"{len(stored)} unmatched ({total:.2f})" in row["status"]
