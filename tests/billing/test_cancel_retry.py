"""Cancel (reverse or withdraw), retry of rejected bills, operator listing, refunds."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx

from tests.billing.test_faults import wait_for_status
from tests.support.bridge import Bridge, bill


def documents(sim: httpx.Client) -> list[dict]:
    return sim.get("/sim/ledger").json()["documents"]


def signed(doc: dict) -> dict[str, Decimal]:
    return {
        line["gl_account"] + line["profit_center"]: Decimal(line["amount"]) for line in doc["lines"]
    }


async def test_cancel_posts_the_reversing_entry_once(bridge: Bridge, sim: httpx.Client) -> None:
    async with bridge.client() as client:
        posted = (await client.post("/bills/B-1/push", json=bill())).json()
        first = await client.post("/bills/B-1/cancel")
        again = await client.post("/bills/B-1/cancel")
        record = (await client.get("/bills/B-1")).json()
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "reversed"
    assert again.status_code == 200 and again.json()["status"] == "already_reversed"
    original, reversal = documents(sim)
    assert original["number"] == posted["sap_document_number"]
    assert reversal["number"] == record["reversal_document_number"]
    assert reversal["reference_id"] == record["reversal_reference_id"]
    assert reversal["reference_id"].startswith("HR") and original["reference_id"].startswith("HB")
    assert signed(reversal) == {k: -v for k, v in signed(original).items()}
    assert sim.get("/sim/stats").json()["soap_posts"] == 2


async def test_reversal_mirrors_what_posted_even_after_the_rules_change(
    bridge: Bridge, sim: httpx.Client
) -> None:
    async with bridge.client() as client, bridge.admin() as admin:
        assert (await client.post("/bills/B-1/push", json=bill())).status_code == 201
        moved = [{"department": d, "gl_account": "41000300"} for d in ("LAB", "OPD")]
        assert (await admin.put("/config/revenue-rules", json=moved)).status_code == 200
        cancel = await client.post("/bills/B-1/cancel")
    assert cancel.status_code == 200 and cancel.json()["status"] == "reversed", cancel.text
    original, reversal = documents(sim)
    assert signed(reversal) == {k: -v for k, v in signed(original).items()}
    assert "41000300" not in {line["gl_account"] for line in reversal["lines"]}


async def test_cancel_unknown_bill_is_404(bridge: Bridge) -> None:
    async with bridge.client() as client:
        response = await client.post("/bills/NOPE/cancel")
    assert response.status_code == 404


async def test_queued_bill_cancelled_before_delivery_is_withdrawn(
    bridge: Bridge, sim: httpx.Client
) -> None:
    sim.put("/sim/faults", json={"down": True, "queue": []}).raise_for_status()
    async with bridge.client() as client:
        assert (await client.post("/bills/B-1/push", json=bill())).status_code == 202
        cancel = await client.post("/bills/B-1/cancel")
        sim.put("/sim/faults", json={"down": False}).raise_for_status()
        record = await wait_for_status(client, "B-1", "withdrawn")
    assert cancel.status_code in (200, 202)
    assert record["sap_document_number"] is None if "sap_document_number" in record else True
    assert documents(sim) == []


async def test_cancel_racing_first_delivery_posts_then_reverses(
    bridge: Bridge, sim: httpx.Client
) -> None:
    sim.put("/sim/faults", json={"latency_ms": 400}).raise_for_status()
    async with bridge.client() as client:
        push = asyncio.create_task(client.post("/bills/B-1/push", json=bill()))
        while (await client.get("/bills/B-1")).status_code == 404:
            await asyncio.sleep(0.02)  # recorded: the push is now waiting on SAP
        cancel = await client.post("/bills/B-1/cancel")
        await push
        record = await wait_for_status(client, "B-1", "reversed")
    assert cancel.status_code in (200, 202)
    refs = [d["reference_id"] for d in documents(sim)]
    assert refs == [record["document_reference_id"], record["reversal_reference_id"]]
    assert record["reversal_document_number"]


async def test_retry_after_the_cause_is_fixed(bridge: Bridge, sim: httpx.Client) -> None:
    async with bridge.admin() as admin, bridge.client() as client:
        await admin.put("/config/SAP Integration - AR Account", json={"value": "12000000"})
        rejected = await client.post("/bills/B-1/push", json=bill())
        not_yet = await admin.post("/bills/B-2/retry")
        await admin.put("/config/SAP Integration - AR Account", json={"value": "12100000"})
        retried = await admin.post("/bills/B-1/retry")
        again = await admin.post("/bills/B-1/retry")
        hmis_key = await client.post("/bills/B-1/retry")
    assert rejected.status_code == 502
    assert not_yet.status_code == 404
    assert retried.status_code == 201, retried.text
    assert again.status_code == 409 and "only rejected bills" in again.json()["detail"]
    assert hmis_key.status_code == 403
    sent = [d["reference_id"] for d in documents(sim)]
    assert sent == [rejected.json()["document_reference_id"]]  # a rejection keeps its identity


async def test_concurrent_retries_post_once(bridge: Bridge, sim: httpx.Client) -> None:
    """Re-queueing and leasing are one step: of ten operators retrying at once, one sends."""
    async with bridge.admin() as admin, bridge.client() as client:
        await admin.put("/config/SAP Integration - AR Account", json={"value": "12000000"})
        assert (await client.post("/bills/B-1/push", json=bill())).status_code == 502
        await admin.put("/config/SAP Integration - AR Account", json={"value": "12100000"})
        answers = await asyncio.gather(*(admin.post("/bills/B-1/retry") for _ in range(10)))
        record = await wait_for_status(client, "B-1", "posted")
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 9, [a.text for a in answers]
    assert [d["number"] for d in documents(sim)] == [record["sap_document_number"]]


async def test_list_by_status_with_cursor(bridge: Bridge, sim: httpx.Client) -> None:
    async with bridge.client() as client:
        for n in range(5):
            await client.post(f"/bills/B-{n}/push", json=bill(f"REF-{n}"))
        first = (await client.get("/bills", params={"status": "posted", "limit": 2})).json()
        second = (
            await client.get(
                "/bills", params={"status": "posted", "limit": 2, "cursor": first["next_cursor"]}
            )
        ).json()
        rejected = (await client.get("/bills", params={"status": "rejected"})).json()
        bad = await client.get("/bills", params={"cursor": "%%%"})
    assert [b["bill_id"] for b in first["items"]] == ["B-4", "B-3"]  # newest first
    assert [b["bill_id"] for b in second["items"]] == ["B-2", "B-1"]
    assert rejected["items"] == []
    assert bad.status_code == 422


async def test_refund_bill_posts_credit_to_receivable(bridge: Bridge, sim: httpx.Client) -> None:
    refund = bill(
        "REF-RF-1",
        net_total="-5000.00",
        refund_of="B-1",
        items=[
            {
                "line_id": "1",
                "description": "Refund consultation",
                "net_value": "-5000.00",
                "department": "OPD",
            }
        ],
    )
    async with bridge.client() as client:
        response = await client.post("/bills/RF-1/push", json=refund)
        plain_negative = await client.post("/bills/RF-2/push", json=dict(refund, refund_of=None))
    assert response.status_code == 201, response.text
    assert plain_negative.status_code == 422
    [doc] = documents(sim)
    lines = {line["gl_account"]: (line["amount"], line["debit_credit"]) for line in doc["lines"]}
    assert lines == {"12100000": ("-5000.00", "H"), "41000200": ("5000.00", "S")}
