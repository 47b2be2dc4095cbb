"""One SAP payment, one bill: fiscal years, SAP's ways of paying, shared references, cancels.

Through the real webhook route and the clearing sync against the simulator, whose ledger pays
invoices by partial payments, residual items and with cash discounts, numbers payment
documents per fiscal year, and resets clearings.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.payments.conftest import (
    get_bill,
    payment,
    payment_rows,
    post,
    push_bill,
    signed,
)
from tests.payments.test_clearing import paid, sync
from tests.support.bridge import Bridge, bill


def pay(sim: httpx.Client, doc: dict, amount: str | None = None, **extra: Any) -> dict:
    body = {
        "company_code": doc["company_code"],
        "fiscal_year": doc["fiscal_year"],
        "accounting_document": doc["sap_document_number"],
        "clearing_date": "2024-03-20",
        **extra,
    }
    if amount is not None:
        body["amount"] = amount
    response = sim.post("/sim/clear", json=body)
    response.raise_for_status()
    return response.json()


async def webhook(bridge: Bridge, body: dict) -> httpx.Response:
    async with bridge.client(None) as client:
        return await post(client, *signed(body))


async def test_a_second_instalment_in_a_later_year_with_the_same_number_is_recorded(bridge):
    await push_bill(bridge, "B-1", "HMIS-1")
    first = payment("HMIS-1", "1400000001", "5000.00", postingDate="2024-12-30")
    later = payment("HMIS-1", "1400000001", "5000.00", postingDate="2025-01-04")
    stated = payment("HMIS-1", "1400000001", "5000.00", paymentFiscalYear="2026")
    answers = [await webhook(bridge, body) for body in (first, later, stated, later)]
    assert [a.json()["status"] for a in answers] == [
        "confirmed",
        "confirmed",
        "confirmed",
        "already_confirmed",
    ]
    assert await paid(bridge, "B-1") == ("15000.00", "0.00")


async def test_a_fiscal_year_that_is_not_four_digits_or_missing_is_refused(bridge, db_url):
    await push_bill(bridge, "B-1", "HMIS-1")
    bad = await webhook(bridge, payment("HMIS-1", "1400000001", paymentFiscalYear="24"))
    assert bad.status_code == 422
    assert "paymentFiscalYear" in bad.json()["detail"]
    body = payment("HMIS-1", "1400000001")
    del body["postingDate"]
    missing = await webhook(bridge, body)
    assert missing.status_code == 422
    assert "paymentFiscalYear or postingDate is required" in missing.json()["detail"]
    assert await payment_rows(db_url) == []


async def test_residual_items_are_not_payments(bridge, sim):
    doc = await push_bill(bridge, "B-1", "HMIS-1")
    pay(sim, doc, "11000.00", method="residual")  # clears 15,000, opens a 4,000 residual
    assert (await sync(bridge))["payments_recorded"] == 1
    assert await paid(bridge, "B-1") == ("11000.00", "4000.00")
    pay(sim, doc, method="residual")  # the residual, paid in full
    assert (await sync(bridge))["payments_recorded"] == 1
    assert await paid(bridge, "B-1") == ("15000.00", "0.00")
    statuses = [p["status"] for p in (await get_bill(bridge, "B-1"))["payments"]]
    assert statuses == ["confirmed", "confirmed"]


async def test_payment_documents_of_two_years_with_one_number_are_both_recorded(
    bridge, sim, db_url
):
    doc = await push_bill(bridge, "B-1", "HMIS-1")
    first = pay(sim, doc, "6000.00", clearing_date="2024-12-30")
    second = pay(sim, doc, clearing_date="2025-01-04")
    assert first["payment_document"] == second["payment_document"]  # numbered per year
    assert (first["fiscal_year"], second["fiscal_year"]) == ("2024", "2025")
    assert (await sync(bridge))["payments_recorded"] == 2
    assert await paid(bridge, "B-1") == ("15000.00", "0.00")
    years = sorted(p["payment_fiscal_year"] for p in await payment_rows(db_url))
    assert years == ["2024", "2025"]


async def test_a_cash_discount_settles_the_bill(bridge, sim):
    doc = await push_bill(bridge, "B-1", "HMIS-1")
    pay(sim, doc, cash_discount="300.00")  # 14,700 to the bank, 300 discount granted
    assert (await sync(bridge))["payments_recorded"] == 1
    assert await paid(bridge, "B-1") == ("15000.00", "0.00")


async def test_a_payment_reversed_in_sap_before_the_sync_is_not_recorded(bridge, sim):
    doc = await push_bill(bridge, "B-1", "HMIS-1")
    done = pay(sim, doc)
    sim.post(
        "/sim/reset-clearing",
        json={
            "company_code": done["company_code"],
            "fiscal_year": done["fiscal_year"],
            "accounting_document": done["payment_document"],
        },
    ).raise_for_status()
    assert (await sync(bridge))["payments_recorded"] == 0
    assert await paid(bridge, "B-1") == ("0.00", "15000.00")


async def test_a_bill_with_a_discount_line_is_paid_not_mismatched(bridge, sim):
    """OPD 5,000 + LAB 10,000 - discount 1,000: the discount is a debit on revenue, the
    receivable is 14,000, and a full clearing confirms the bill."""
    items = [
        {"line_id": "1", "description": "Consult", "net_value": "5000.00", "department": "OPD"},
        {"line_id": "2", "description": "FBC", "net_value": "10000.00", "department": "LAB"},
        {"line_id": "3", "description": "Staff", "net_value": "-1000.00", "department": "DISC"},
    ]
    async with bridge.client() as client:
        body = bill("HMIS-D", net_total="14000.00", items=items)
        response = await client.post("/bills/B-D/push", json=body)
    assert response.status_code == 201, response.text
    pay(sim, response.json())
    assert (await sync(bridge))["payments_recorded"] == 1
    view = await get_bill(bridge, "B-D")
    assert (view["paid_amount"], view["outstanding_amount"]) == ("14000.00", "0.00")
    assert [p["status"] for p in view["payments"]] == ["confirmed"]


async def test_a_reference_shared_by_two_bills_is_matched_by_document_or_left_to_operators(
    bridge,
):
    one = await push_bill(bridge, "B-1", "HMIS-SHARED")
    two = await push_bill(bridge, "B-2", "HMIS-SHARED")
    vague = await webhook(bridge, payment("HMIS-SHARED", "1400000001"))
    assert vague.status_code == 202
    assert vague.json()["status"] == "unmatched"
    assert vague.json()["reasons"] == ["matches 2 bills (B-1, B-2); no sapDocumentNumber"]
    exact = await webhook(
        bridge, payment("HMIS-SHARED", "1400000002", sap_document=two["sap_document_number"])
    )
    assert (exact.json()["status"], exact.json()["bill_id"]) == ("confirmed", "B-2")
    assert await paid(bridge, "B-2") == ("15000.00", "0.00")
    assert await paid(bridge, "B-1") == ("0.00", "15000.00")
    assert one["sap_document_number"] != two["sap_document_number"]


async def test_cancelling_a_paid_bill_reverses_it_and_flags_the_refund(bridge, sim):
    doc = await push_bill(bridge, "B-1", "HMIS-1")
    confirmed = await webhook(
        bridge, payment("HMIS-1", "1400000001", sap_document=doc["sap_document_number"])
    )
    assert confirmed.json()["status"] == "confirmed"
    async with bridge.client() as client:
        cancelled = await client.post("/bills/B-1/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "reversed"
    view = await get_bill(bridge, "B-1")
    (flagged,) = view["payments"]
    assert flagged["status"] == "mismatch"
    assert flagged["reasons"] == ["bill reversed after payment: refund due"]
    async with bridge.admin() as admin:
        report = (await admin.get("/reconciliation")).json()
    assert [m["payment_document"] for m in report["mismatches"]] == ["1400000001"]


async def test_a_payment_sap_reverses_after_it_was_recorded_stops_counting(bridge, sim):
    """Finance resets the clearing and reverses the payment after the sync recorded the bill
    as paid: the next sync flags the payment, and the bill is outstanding again."""
    doc = await push_bill(bridge, "B-1", "HMIS-1")
    done = pay(sim, doc)
    assert (await sync(bridge))["payments_recorded"] == 1
    assert await paid(bridge, "B-1") == ("15000.00", "0.00")
    sim.post(
        "/sim/reset-clearing",
        json={
            "company_code": done["company_code"],
            "fiscal_year": done["fiscal_year"],
            "accounting_document": done["payment_document"],
        },
    ).raise_for_status()
    assert (await sync(bridge))["payments_recorded"] == 0
    assert await paid(bridge, "B-1") == ("0.00", "15000.00")
    (flagged,) = (await get_bill(bridge, "B-1"))["payments"]
    assert flagged["status"] == "mismatch"
    assert flagged["reasons"] == [
        "SAP no longer shows this payment (reversed, or its clearing reset)"
    ]
    pay(sim, doc)  # paid again, by a new document
    assert (await sync(bridge))["payments_recorded"] == 1
    assert await paid(bridge, "B-1") == ("15000.00", "0.00")
