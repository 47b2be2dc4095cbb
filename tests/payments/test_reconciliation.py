"""`GET /reconciliation`: open bills with ageing, payments without a bill, mismatches, totals."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from app.payments.reconciliation import CSV_COLUMNS, to_csv
from app.payments.schemas import CurrencyTotals, OpenBill, PaymentLine, Reconciliation
from app.platform.csv_cells import FORMULA_STARTS, safe_cell
from tests.payments.conftest import payment, post, push_bill, signed


async def _scenario(bridge) -> None:
    one = await push_bill(bridge, "B-1", "HMIS-1", bill_date="2024-01-10")
    await push_bill(bridge, "B-2", "HMIS-2", bill_date="2024-03-01")
    paid = await push_bill(bridge, "B-3", "HMIS-3", bill_date="2024-03-05")
    async with bridge.client(None) as client:
        for body in (
            payment("HMIS-1", "1400000001", "5000.00", one["sap_document_number"]),
            payment("HMIS-3", "1400000002", "15000.00", paid["sap_document_number"]),
            payment("HMIS-NONE", "1400000003", "250.00"),
            payment("HMIS-1", "1400000004", "99.00", currency="USD"),
        ):
            assert (await post(client, *signed(body))).status_code in (200, 202)


async def test_report_lists_open_bills_unmatched_and_mismatches_with_totals(bridge):
    await _scenario(bridge)
    async with bridge.client() as client:
        response = await client.get(
            "/reconciliation", params={"from": "2024-01-01", "to": "2024-03-31"}
        )
    assert response.status_code == 200, response.text
    report = response.json()
    open_bills = {b["bill_id"]: b for b in report["open_bills"]}
    assert set(open_bills) == {"B-1", "B-2"}  # B-3 is paid in full
    assert (open_bills["B-1"]["paid_amount"], open_bills["B-1"]["outstanding_amount"]) == (
        "5000.00",
        "10000.00",
    )
    assert (open_bills["B-1"]["age_days"], open_bills["B-1"]["ageing_bucket"]) == (81, "61-90")
    assert (open_bills["B-2"]["age_days"], open_bills["B-2"]["ageing_bucket"]) == (30, "0-30")
    assert [p["bill_reference"] for p in report["unmatched_payments"]] == ["HMIS-NONE"]
    assert [p["payment_document"] for p in report["mismatches"]] == ["1400000004"]
    assert {t["currency"]: t for t in report["totals"]} == {
        "LKR": {
            "currency": "LKR",
            "open_bills": 2,
            "outstanding_amount": "25000.00",
            "unmatched_payments": 1,
            "unmatched_amount": "250.00",
            "mismatched_payments": 0,
            "mismatched_amount": "0.00",
        },
        "USD": {
            "currency": "USD",
            "open_bills": 0,
            "outstanding_amount": "0.00",
            "unmatched_payments": 0,
            "unmatched_amount": "0.00",
            "mismatched_payments": 1,
            "mismatched_amount": "99.00",
        },
    }


async def test_range_filters_bills_by_date(bridge):
    await _scenario(bridge)
    async with bridge.client() as client:
        report = (
            await client.get("/reconciliation", params={"from": "2024-02-01", "to": "2024-03-31"})
        ).json()
        bad = await client.get("/reconciliation", params={"from": "2024-04-01", "to": "2024-03-01"})
    async with bridge.client(None) as anonymous:
        keyless = await anonymous.get("/reconciliation")
    assert [b["bill_id"] for b in report["open_bills"]] == ["B-2"]
    assert bad.status_code == 422 and "from" in bad.json()["detail"]
    assert keyless.status_code == 401


async def test_csv_with_accept_text_csv(bridge):
    await _scenario(bridge)
    async with bridge.client() as client:
        response = await client.get(
            "/reconciliation",
            params={"from": "2024-01-01", "to": "2024-03-31"},
            headers={"Accept": "text/csv"},
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.text.splitlines()[0] == ",".join(CSV_COLUMNS)
    assert CSV_COLUMNS[:9] == (
        "section",
        "bill_id",
        "reference",
        "company_code",
        "sap_document_number",
        "fiscal_year",
        "payment_document",
        "payment_fiscal_year",
        "date",
    )
    rows = list(csv.DictReader(io.StringIO(response.text)))
    sections = [r["section"] for r in rows]
    assert sections == ["open_bill", "open_bill", "unmatched_payment", "mismatch", "total", "total"]
    assert rows[0]["outstanding_amount"] == "10000.00" and rows[0]["ageing_bucket"] == "61-90"
    assert (rows[0]["company_code"], rows[0]["fiscal_year"]) == ("1000", "2024")
    assert rows[0]["sap_document_number"]
    unmatched = rows[2]
    assert (unmatched["payment_document"], unmatched["company_code"]) == ("1400000003", "1000")
    assert unmatched["payment_fiscal_year"] == "2024"  # the year of its postingDate
    assert "currency USD" in rows[3]["reasons"]


def _open_bill(number: str, year: str) -> OpenBill:
    return OpenBill(
        bill_id=f"B-{year}",
        reference=f"HMIS-{year}",
        company_code="1000",
        sap_document_number=number,
        fiscal_year=year,
        bill_date=date(int(year), 12, 1),
        currency="LKR",
        net_total="-4000.00",
        paid_amount="0.00",
        outstanding_amount="-4000.00",
        age_days=1,
        ageing_bucket="0-30",
    )


def test_csv_tells_the_same_document_number_of_two_years_apart():
    report = Reconciliation(
        from_date=None,
        to_date=date(2025, 1, 1),
        open_bills=[_open_bill("0100000002", "2023"), _open_bill("0100000002", "2024")],
        unmatched_payments=[],
        mismatches=[],
        totals=[],
    )
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    keys = {(r["company_code"], r["sap_document_number"], r["fiscal_year"]) for r in rows}
    assert keys == {("1000", "0100000002", "2023"), ("1000", "0100000002", "2024")}
    assert {r["amount"] for r in rows} == {"-4000.00"}  # a plain number stays a number


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("-4000.00", "-4000.00"),
        ("+15", "+15"),
        ("1-2", "1-2"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+1", "'+1+1"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-", "'-"),
        ("-1e5", "'-1e5"),
        (-5, -5),
        (None, None),
    ],
)
def test_safe_cell(value, written):
    assert safe_cell(value) == written


_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
_CELLS = st.one_of(
    st.text(max_size=12),
    st.builds(str.__add__, st.sampled_from([*FORMULA_STARTS, " ", "'"]), st.text(max_size=12)),
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
)


def _lines(model: type[BaseModel]) -> st.SearchStrategy:
    """`model` with formula-like text in every text field."""
    texts: dict[str, st.SearchStrategy] = {}
    for name, field in model.model_fields.items():
        if field.annotation is str:
            texts[name] = _CELLS
        elif field.annotation == str | None:
            texts[name] = st.none() | _CELLS
        elif field.annotation == list[str]:
            texts[name] = st.lists(_CELLS, max_size=3)
    return st.builds(model, **texts)


@given(
    st.builds(
        Reconciliation,
        open_bills=st.lists(_lines(OpenBill), max_size=3),
        unmatched_payments=st.lists(_lines(PaymentLine), max_size=3),
        mismatches=st.lists(_lines(PaymentLine), max_size=3),
        totals=st.lists(_lines(CurrencyTotals), max_size=2),
    )
)
def test_no_csv_cell_starts_a_formula_unless_it_is_a_plain_number(report):
    for row in csv.reader(io.StringIO(to_csv(report), newline="")):
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS) or _PLAIN_NUMBER.fullmatch(cell), row
