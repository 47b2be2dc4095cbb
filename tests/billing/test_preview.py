"""POST /bills/{id}/preview through the real HTTP stack: what a push would send, nothing kept."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import httpx
from defusedxml.ElementTree import fromstring
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.bridge import ADMIN_KEY, Bridge, bill

IDENTITY = re.compile(r"HB[0-9A-HJKMNP-TV-Z]{14}")


def discounted() -> dict[str, Any]:
    """OPD 5,000 + LAB 10,000 - a staff discount of 1,000, owed by an insurer."""
    return bill(
        "HMIS-P-1",
        net_total="14000.00",
        items=[
            {"line_id": "1", "description": "Consult", "net_value": "5000.00", "department": "OPD"},
            {"line_id": "2", "description": "FBC", "net_value": "10000.00", "department": "LAB"},
            {"line_id": "3", "description": "Staff", "net_value": "-1000.00", "department": "DISC"},
        ],
        payer={"name": "Ceylinco", "customer": "INS-0001"},
    )


_TABLES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    "postgresql": "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
}


async def row_counts(url: str) -> dict[str, int]:
    """Every table's number of rows."""
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        names = (await connection.execute(text(_TABLES[engine.dialect.name]))).scalars().all()
        counts = {
            name: (await connection.execute(text(f'SELECT count(*) FROM "{name}"'))).scalar_one()
            for name in names
        }
    await engine.dispose()
    assert len(counts) > 10 and "bills" in counts, counts
    return counts


def sap_lines(document: dict[str, Any]) -> list[tuple[str, str, Decimal, str]]:
    """(customer or G/L account, D/C, amount, currency) of each line SAP holds, in item order."""
    return [
        (
            line["customer"] or line["gl_account"],
            line["debit_credit"],
            abs(Decimal(line["amount"])),
            line["currency"],
        )
        for line in sorted(document["lines"], key=lambda line: line["item"])
    ]


def preview_lines(body: dict[str, Any]) -> list[tuple[str, str, Decimal, str]]:
    entry = body["entry"]
    return [
        (line["account"], line["debit_credit"], Decimal(line["amount"]), entry["currency"])
        for line in entry["lines"]
    ]


async def test_a_preview_records_nothing_and_sends_nothing(
    bridge: Bridge, sim: httpx.Client, db_url: str
) -> None:
    before, sap_before = await row_counts(db_url), sim.get("/sim/stats").json()
    async with bridge.client() as client:
        response = await client.post("/bills/B-P/preview", json=discounted())
        record = await client.get("/bills/B-P")
    assert response.status_code == 200, response.text
    assert record.status_code == 404
    after = await row_counts(db_url)
    assert after == before and after["bills"] == 0 and after["posting_references"] == 0
    assert sim.get("/sim/stats").json() == sap_before
    assert sim.get("/sim/stats").json()["soap_posts"] == 0


async def test_the_preview_is_line_for_line_what_the_push_posts(
    bridge: Bridge, sim: httpx.Client
) -> None:
    async with bridge.client() as client:
        preview = (await client.post("/bills/B-P/preview", json=discounted())).json()
        pushed = await client.post("/bills/B-P/push", json=discounted())
    assert pushed.status_code == 201, pushed.text
    [document] = sim.get("/sim/ledger").json()["documents"]
    assert preview_lines(preview) == sap_lines(document)
    assert preview_lines(preview) == [
        ("41000000", "S", Decimal("1000.00"), "LKR"),  # the discount debits revenue
        ("41000100", "H", Decimal("10000.00"), "LKR"),
        ("41000200", "H", Decimal("5000.00"), "LKR"),
        ("INS-0001", "S", Decimal("14000.00"), "LKR"),
    ]
    entry = preview["entry"]
    assert [(line["kind"], line["profit_center"]) for line in entry["lines"]] == [
        ("gl", None),
        ("gl", "PC100"),
        ("gl", "PC200"),
        ("customer", None),
    ]
    assert all(line["cost_center"] is None for line in entry["lines"])
    assert (preview["bill_id"], preview["integration_enabled"]) == ("B-P", True)
    for field in ("company_code", "document_type", "reference1", "header_text", "created_by"):
        assert entry[field] == document[field], field
    assert (entry["posting_date"], entry["document_date"]) == ("2024-03-15", "2024-03-15")
    # the identity is drawn for the preview only: the push drew its own
    assert IDENTITY.fullmatch(entry["document_reference_id"])
    assert entry["document_reference_id"] != document["reference_id"]
    assert document["reference_id"] == pushed.json()["document_reference_id"]


async def test_the_soap_body_is_xml_with_the_entry_s_amounts(bridge: Bridge) -> None:
    async with bridge.client() as client:
        preview = (await client.post("/bills/B-P/preview", json=discounted())).json()
    root = fromstring(preview["soap_body"].encode())
    entry = preview["entry"]
    amounts = [
        (element.text, element.get("currencyCode"))
        for element in root.iter()
        if element.tag == "AmountInTransactionCurrency"
    ]
    signed = [
        (line["amount"] if line["debit_credit"] == "S" else "-" + line["amount"], "LKR")
        for line in entry["lines"]
    ]
    assert amounts == signed
    codes = [element.text for element in root.iter() if element.tag == "DebitCreditCode"]
    assert codes == [line["debit_credit"] for line in entry["lines"]]
    [reference] = [element.text for element in root.iter() if element.tag == "DocumentReferenceID"]
    assert reference == entry["document_reference_id"]


async def test_invalid_bills_get_the_push_s_422(bridge: Bridge, sim: httpx.Client) -> None:
    out_of_range = bill(net_total="10000000000000000", items=[bill()["items"][0]])
    out_of_range["items"][0]["net_value"] = "10000000000000000"
    bad_bodies = [
        bill("HMIS-\x01-7"),
        out_of_range,
        bill(net_total="16000.00"),
        bill(net_total="abc"),
        bill(extra="field"),
        bill(
            currency="JPY", net_total="100.5", items=[bill()["items"][0] | {"net_value": "100.5"}]
        ),
    ]
    async with bridge.client() as client:
        for body in bad_bodies:
            preview = await client.post("/bills/B-X/preview", json=body)
            push = await client.post("/bills/B-X/push", json=body)
            assert preview.status_code == 422, (body, preview.text)
            assert (preview.status_code, preview.json()) == (push.status_code, push.json())
        assert (await client.get("/bills/B-X")).status_code == 404
    assert sim.get("/sim/stats").json()["soap_posts"] == 0


async def test_incomplete_settings_are_a_409_naming_them(bridge: Bridge) -> None:
    async with bridge.admin() as admin:
        for key in ("AR Account", "Company Code"):
            reset = await admin.put(f"/config/SAP Integration - {key}", json={"value": None})
            assert reset.status_code == 200, reset.text
    async with bridge.client() as client:
        response = await client.post("/bills/B-P/preview", json=bill())
        invalid = await client.post("/bills/B-P/preview", json=bill("HMIS-\x01-7"))
    assert response.status_code == 409, response.text
    missing = ["SAP Integration - Company Code", "SAP Integration - AR Account"]
    assert sorted(response.json()["missing"]) == sorted(missing)
    assert all(key in response.json()["detail"] for key in missing)
    assert invalid.status_code == 422  # the bill's own faults come first, as on a push


async def test_a_disabled_integration_still_previews(bridge: Bridge, sim: httpx.Client) -> None:
    async with bridge.admin() as admin:
        await admin.put("/config/SAP Integration - Enabled", json={"value": "false"})
    async with bridge.client() as client:
        response = await client.post("/bills/B-P/preview", json=bill())
        push = await client.post("/bills/B-P/push", json=bill())
    assert response.status_code == 200, response.text
    assert response.json()["integration_enabled"] is False
    assert push.json()["status"] == "skipped"
    assert sim.get("/sim/stats").json()["soap_posts"] == 0


async def test_the_preview_takes_the_hmis_key(bridge: Bridge) -> None:
    async with bridge.client(None) as anonymous, bridge.client(ADMIN_KEY) as admin:
        without = await anonymous.post("/bills/B-P/preview", json=bill())
        with_admin = await admin.post("/bills/B-P/preview", json=bill())
    assert without.status_code == 401
    assert with_admin.status_code == 403
