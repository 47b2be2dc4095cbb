"""Bills through the real HTTP stack to the SAP simulator, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

import httpx

from app.platform.db import utcnow
from tests.support.bridge import ADMIN_KEY, Bridge, bill, replica


def ledger(sim: httpx.Client) -> list[dict]:
    return sim.get("/sim/ledger").json()["documents"]


def soap_posts(sim: httpx.Client) -> int:
    return sim.get("/sim/stats").json()["soap_posts"]


async def test_push_posts_balanced_entry(bridge: Bridge, sim: httpx.Client) -> None:
    async with bridge.client() as client:
        response = await client.post("/bills/B-1/push", json=bill())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "posted"
    assert body["company_code"] == "1000" and body["fiscal_year"] == "2024"
    [doc] = ledger(sim)
    assert doc["number"] == body["sap_document_number"]
    assert doc["reference_id"] == body["document_reference_id"]
    assert doc["reference1"] == "HMIS-2024-001234"
    lines = {
        (line["gl_account"], line["profit_center"] or None): Decimal(line["amount"])
        for line in doc["lines"]
    }
    assert lines == {
        ("12100000", None): Decimal("15000.00"),
        ("41000100", "PC100"): Decimal("-10000.00"),
        ("41000200", "PC200"): Decimal("-5000.00"),
    }
    assert response.headers["x-request-id"]
    timing = dict(
        part.strip().split(";dur=") for part in response.headers["server-timing"].split(",")
    )
    assert 0 < float(timing["sap"]) <= float(timing["app"])


async def test_same_bill_again_is_already_pushed_without_sap_call(
    bridge: Bridge, sim: httpx.Client
) -> None:
    async with bridge.client() as client:
        first = await client.post("/bills/B-1/push", json=bill())
        posts = soap_posts(sim)
        again = await client.post("/bills/B-1/push", json=bill(net_total="15000"))
    assert again.status_code == 200
    assert again.json()["status"] == "already_pushed"
    assert again.json()["sap_document_number"] == first.json()["sap_document_number"]
    assert soap_posts(sim) == posts


async def test_same_id_different_content_is_conflict(bridge: Bridge, sim: httpx.Client) -> None:
    changed = bill()
    changed["items"][1]["net_value"] = "9000.00"
    changed["net_total"] = "14000.00"
    async with bridge.client() as client:
        await client.post("/bills/B-1/push", json=bill())
        response = await client.post("/bills/B-1/push", json=changed)
    assert response.status_code == 409
    body = response.json()
    assert body["status"] == "conflict"
    assert "net_total" in body["differences"] and "items[1].net_value" in body["differences"]
    assert "net_total" in body["detail"]
    assert len(ledger(sim)) == 1


async def test_twenty_concurrent_pushes_make_one_document(
    bridge: Bridge, sim: httpx.Client
) -> None:
    sim.put("/sim/faults", json={"latency_ms": 200}).raise_for_status()
    async with bridge.client() as client:
        responses = await asyncio.gather(
            *(client.post("/bills/B-RACE/push", json=bill("RACE-1")) for _ in range(20))
        )
    assert sorted({r.status_code for r in responses}) == [200, 201]
    assert sum(r.status_code == 201 for r in responses) == 1
    assert len({r.json()["sap_document_number"] for r in responses}) == 1
    assert len(ledger(sim)) == 1 and soap_posts(sim) == 1


def _queued(bill_id: str) -> dict:
    now = utcnow()
    return dict(
        bill_id=bill_id,
        reference=f"REF-{bill_id}",
        bill_date=date(2024, 3, 15),
        currency="LKR",
        net_total=Decimal("100.00"),
        fingerprint="f",
        payload={},
        status="queued",
        company_code="1000",
        document_reference_id=f"REF-{bill_id}",
        attempts=0,
        maybe_posted=False,
        cancel_requested=False,
        created_at=now,
        updated_at=now,
    )


async def test_bills_arriving_together_share_one_insert(db_url: str) -> None:
    """Pushes that arrive together are inserted by one statement; an id twice in the batch
    is inserted for its first row only, and an id already stored not at all."""
    async with replica(db_url) as runtime:
        inbox = runtime.bill_inbox
        assert await inbox.submit(_queued("B-OLD")) is True
        rows = [_queued(bill_id) for bill_id in ("B-1", "B-2", "B-1", "B-OLD", "B-3", "B-1")]
        inserted = await asyncio.gather(*(inbox.submit(row) for row in rows))
        assert inserted == [True, True, False, False, True, False]
        assert inbox.batches == 2


async def test_disabled_integration_skips_without_sap_call(
    bridge: Bridge, sim: httpx.Client
) -> None:
    async with bridge.admin() as admin:
        await admin.put("/config/SAP Integration - Enabled", json={"value": False})
    async with bridge.client() as client:
        response = await client.post("/bills/B-1/push", json=bill())
    assert response.status_code == 200
    assert response.json() == {"status": "skipped", "reason": "SAP integration is disabled"}
    assert soap_posts(sim) == 0


async def test_business_rejection_is_502_with_sap_messages(
    bridge: Bridge, sim: httpx.Client
) -> None:
    async with bridge.admin() as admin:
        await admin.put("/config/SAP Integration - AR Account", json={"value": "12000000"})
    async with bridge.client() as client:
        response = await client.post("/bills/B-1/push", json=bill())
        record = await client.get("/bills/B-1")
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["status"] == "rejected"
    assert any(m["type_id"] == "354(F5)" for m in body["messages"])
    assert "cannot be directly posted" in body["detail"]
    assert record.json()["status"] == "rejected"
    assert ledger(sim) == []


async def test_ar_customer_posts_a_debtor_item(bridge: Bridge, sim: httpx.Client) -> None:
    async with bridge.admin() as admin:
        await admin.put("/config/SAP Integration - AR Customer", json={"value": "10000001"})
    async with bridge.client() as client:
        response = await client.post("/bills/B-1/push", json=bill())
    assert response.status_code == 201, response.text
    [doc] = ledger(sim)
    debtor = [line for line in doc["lines"] if line.get("customer")]
    assert [(d["customer"], d["amount"]) for d in debtor] == [("10000001", "15000.00")]


async def test_long_reference_posts_under_the_bridges_identity(
    bridge: Bridge, sim: httpx.Client
) -> None:
    long_ref = "HMIS-OPD-2024-00001234-A"
    async with bridge.client() as client:
        response = await client.post("/bills/B-LONG/push", json=bill(long_ref))
    assert response.status_code == 201, response.text
    sent = response.json()["document_reference_id"]
    assert len(sent) == 16 and sent.startswith("HB") and sent.isupper()
    assert response.json()["reference"] == long_ref
    [doc] = ledger(sim)
    assert doc["reference_id"] == sent
    assert doc["reference1"] == long_ref[:20] and long_ref[:20] in doc["header_text"]


async def test_large_inpatient_bill_posts_as_a_handful_of_lines(
    bridge: Bridge, sim: httpx.Client
) -> None:
    departments = ["LAB", "OPD", "PHARM", "WARD", "ICU"]
    items = [
        {
            "line_id": str(i),
            "description": f"item {i}",
            "net_value": "10.25",
            "department": departments[i % 5],
        }
        for i in range(1500)
    ]
    body = bill("IP-2024-9", items=items, net_total="15375.00")
    async with bridge.client() as client:
        response = await client.post("/bills/B-IP/push", json=body)
    assert response.status_code == 201, response.text
    [doc] = ledger(sim)
    assert len(doc["lines"]) == 5  # AR + LAB + OPD + PHARM + default account for WARD and ICU
    assert sum(Decimal(line["amount"]) for line in doc["lines"]) == 0


async def test_get_unknown_bill_is_404(bridge: Bridge, sim: httpx.Client) -> None:
    async with bridge.client() as client:
        response = await client.get("/bills/NOPE")
    assert response.status_code == 404
    assert "never been pushed" in response.json()["detail"]


async def test_admin_key_can_read_but_not_push(bridge: Bridge, sim: httpx.Client) -> None:
    async with bridge.client(ADMIN_KEY) as admin:
        push = await admin.post("/bills/B-1/push", json=bill())
        listing = await admin.get("/bills")
    assert push.status_code == 403
    assert listing.status_code == 200
