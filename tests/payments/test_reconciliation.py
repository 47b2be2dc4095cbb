"""`GET /reconciliation`: open bills with ageing, payments without a bill, mismatches, totals."""

from __future__ import annotations

import csv
import io

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
    rows = list(csv.DictReader(io.StringIO(response.text)))
    sections = [r["section"] for r in rows]
    assert sections == ["open_bill", "open_bill", "unmatched_payment", "mismatch", "total", "total"]
    assert rows[0]["outstanding_amount"] == "10000.00" and rows[0]["ageing_bucket"] == "61-90"
    assert "currency USD" in rows[3]["reasons"]
