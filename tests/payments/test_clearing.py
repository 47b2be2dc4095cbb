"""Payments found in SAP: the clearing sync, business events, the simulator's pushes, replicas."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.payments import clearing
from app.platform.local_server import serve
from sapsim import SimConfig, create_sim_app
from tests.payments.conftest import (
    PASSWORD,
    SECRET,
    USER,
    WEBHOOK,
    cloud_event,
    counts,
    eventually,
    get_bill,
    payment,
    payment_rows,
    post,
    push_bill,
    signed,
    webhook_config,
)
from tests.support.bridge import RULES, make_settings, replica, run_bridge, seed_config

SLOT = datetime(2026, 1, 5, 2, 15, tzinfo=UTC)


async def sync(bridge) -> dict:
    async with bridge.admin() as admin:
        response = await admin.post("/payments/clearing-sync")
    assert response.status_code == 200, response.text
    return response.json()


def clear(
    sim: httpx.Client, doc: dict, amount: str | None = None, route: str = "/sim/clear", **extra
) -> dict:
    body = {
        "company_code": doc["company_code"],
        "fiscal_year": doc["fiscal_year"],
        "accounting_document": doc["sap_document_number"],
        "clearing_date": "2024-03-20",  # the payment() webhook body's postingDate
        **extra,
    }
    if amount is not None:
        body["amount"] = amount
    response = sim.post(route, json=body)
    response.raise_for_status()
    return response.json()


async def paid(bridge, bill_id: str) -> tuple[str, str]:
    view = await get_bill(bridge, bill_id)
    return view["paid_amount"], view["outstanding_amount"]


async def test_clearing_sync_finds_payments_no_webhook_announced(bridge, sim, db_url):
    docs = {n: await push_bill(bridge, f"B-{n}", f"HMIS-{n}") for n in range(4)}
    clear(sim, docs[0])  # paid in full at once
    clear(sim, docs[1], "5000.00")  # partial, then the rest: the receivable clears
    clear(sim, docs[1])
    clear(sim, docs[2], "1000.00")  # two partial payments, still open
    clear(sim, docs[2], "2000.00")
    first = await sync(bridge)
    assert (first["bills_checked"], first["payments_recorded"]) == (4, 5)
    assert await paid(bridge, "B-0") == ("15000.00", "0.00")
    assert await paid(bridge, "B-1") == ("15000.00", "0.00")
    assert await paid(bridge, "B-2") == ("3000.00", "12000.00")
    assert await paid(bridge, "B-3") == ("0.00", "15000.00")
    second = await sync(bridge)  # open bills, and those SAP paid lately (a reset?); nothing new
    assert (second["bills_checked"], second["payments_recorded"]) == (4, 0)
    clear(sim, docs[2])  # the rest of B-2
    assert (await sync(bridge))["payments_recorded"] == 1
    assert await paid(bridge, "B-2") == ("15000.00", "0.00")
    assert await counts(db_url) == (6, 6)
    assert {r["source"] for r in await payment_rows(db_url)} == {"clearing_sync"}


async def test_webhook_and_sync_report_the_same_payment_once(bridge, sim, db_url):
    one = await push_bill(bridge, "B-1", "HMIS-1")
    two = await push_bill(bridge, "B-2", "HMIS-2")
    p1 = clear(sim, one)
    p2 = clear(sim, two)
    async with bridge.client(None) as client:  # the iFlow reports B-1 before the sync runs
        body = payment("HMIS-1", p1["payment_document"], "15000.00", one["sap_document_number"])
        assert (await post(client, *signed(body))).json()["status"] == "confirmed"
    assert (await sync(bridge))["payments_recorded"] == 1  # only B-2's is new
    async with bridge.client(None) as client:  # and reports B-2 after the sync found it
        body = payment("HMIS-2", p2["payment_document"], "15000.00", two["sap_document_number"])
        assert (await post(client, *signed(body))).json()["status"] == "already_confirmed"
    assert await counts(db_url) == (2, 2)
    assert await paid(bridge, "B-1") == await paid(bridge, "B-2") == ("15000.00", "0.00")


async def test_webhook_and_sap_disagreeing_on_an_amount_is_flagged(bridge, sim, db_url):
    """The iFlow reports 4,000 for a payment SAP holds as 5,000: the payment stays recorded once,
    is flagged `mismatch` and stops counting as paid, with both amounts in its reasons."""
    doc = await push_bill(bridge, "B-1", "HMIS-1")
    cleared = clear(sim, doc, "5000.00")
    body = payment("HMIS-1", cleared["payment_document"], "4000.00", doc["sap_document_number"])
    async with bridge.client(None) as client:
        assert (await post(client, *signed(body))).json()["status"] == "confirmed"
    assert await paid(bridge, "B-1") == ("4000.00", "11000.00")
    assert (await sync(bridge))["payments_recorded"] == 0  # the same payment, not a new one
    assert await counts(db_url) == (1, 1)
    assert await paid(bridge, "B-1") == ("0.00", "15000.00")
    (flagged,) = (await get_bill(bridge, "B-1"))["payments"]
    assert flagged["status"] == "mismatch"
    assert flagged["reasons"] == ["reported again as 5000.00 LKR; first as 4000.00 LKR"]
    await sync(bridge)  # asked again: flagged once, not once per sync
    (again,) = (await get_bill(bridge, "B-1"))["payments"]
    assert again["reasons"] == flagged["reasons"]


async def test_business_events_from_event_mesh_are_accepted_then_resolved(bridge, sim, db_url):
    sim.put(
        "/sim/events/subscriptions/mesh",
        json={
            "url": bridge.url + WEBHOOK,
            "kind": "business_event",
            "username": USER,
            "password": PASSWORD,
        },
    ).raise_for_status()
    doc = await push_bill(bridge, "B-1", "HMIS-1")
    pushed = clear(sim, doc, "6000.00", route="/sim/events/clear", times=3)
    answers = [(d["status_code"], d["answer"]) for d in pushed["deliveries"]]
    assert answers[0][0] == 202 and '"accepted"' in answers[0][1]
    assert [a[0] for a in answers[1:]] == [200, 200]
    assert all('"already_confirmed"' in a[1] for a in answers[1:])

    async def settled():
        return await paid(bridge, "B-1") == ("6000.00", "9000.00")

    await eventually(settled)
    clear(sim, doc, route="/sim/events/clear")  # the rest: clears the receivable
    await eventually(lambda: _is(bridge, "B-1", ("15000.00", "0.00")))
    assert (await sync(bridge))["payments_recorded"] == 0
    rows = await payment_rows(db_url)
    assert [(r["amount"], r["source"]) for r in rows] == [
        (6000, "business_event"),
        (9000, "business_event"),
    ]


async def _is(bridge, bill_id: str, want: tuple[str, str]) -> bool:
    return await paid(bridge, bill_id) == want


async def test_signed_payment_webhooks_from_the_simulator(bridge, sim, db_url):
    for name, envelope in (("iflow", False), ("iflow-ce", True)):
        sim.put(
            f"/sim/events/subscriptions/{name}",
            json={
                "url": bridge.url + WEBHOOK,
                "kind": "payment_webhook",
                "secret": SECRET,
                "envelope": envelope,
            },
        ).raise_for_status()
    doc = await push_bill(bridge, "B-1", "HMIS-1")
    pushed = clear(sim, doc, route="/sim/events/clear", times=2)
    statuses = [d["status_code"] for d in pushed["deliveries"]]
    assert statuses == [200, 200, 200, 200]
    bodies = [d["answer"] for d in pushed["deliveries"]]
    assert sum('"confirmed"' in b for b in bodies) == 1  # one of four deliveries stored it
    assert await paid(bridge, "B-1") == ("15000.00", "0.00")
    assert await counts(db_url) == (1, 1)


async def test_business_event_during_a_sap_outage_is_kept_and_swept(bridge, sim, db_url):
    doc = await push_bill(bridge, "B-1", "HMIS-1")
    cleared = clear(sim, doc)
    sim.put("/sim/faults", json={"down": True}).raise_for_status()
    keys = {
        "CompanyCode": "1000",
        "FiscalYear": cleared["fiscal_year"],
        "AccountingDocument": cleared["payment_document"],
    }
    async with bridge.client(None) as client:
        response = await post(client, *signed(cloud_event(keys)))
    assert (response.status_code, response.json()["status"]) == (202, "accepted")
    event = await eventually(lambda: _event_with_error(db_url))  # resolution gave up for now
    assert event["status"] == "pending" and "503" in event["last_error"]
    assert await paid(bridge, "B-1") == ("0.00", "15000.00")
    sim.put("/sim/faults", json={"down": False}).raise_for_status()
    await _execute(db_url, "UPDATE payment_events SET next_attempt_at = NULL")  # retry is due
    result = await sync(bridge)
    assert (result["events_resolved"], result["payments_recorded"]) == (1, 0)
    assert await paid(bridge, "B-1") == ("15000.00", "0.00")
    assert [r["source"] for r in await payment_rows(db_url)] == ["business_event"]


async def _execute(db_url: str, sql: str) -> list[dict]:
    engine = create_async_engine(db_url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(sql))
            return [dict(r) for r in result.mappings().all()] if result.returns_rows else []
    finally:
        await engine.dispose()


async def _event_with_error(db_url: str) -> dict | None:
    rows = await _execute(
        db_url, "SELECT status, last_error FROM payment_events WHERE last_error IS NOT NULL"
    )
    return rows[0] if rows else None


async def test_event_for_a_document_that_pays_no_bill_is_resolved_quietly(bridge, sim, db_url):
    doc = await push_bill(bridge, "B-1", "HMIS-1")
    keys = {
        "CompanyCode": "1000",
        "FiscalYear": doc["fiscal_year"],
        "AccountingDocument": doc["sap_document_number"],
    }  # the bill's own posting
    async with bridge.client(None) as client:
        response = await post(client, *signed(cloud_event(keys)))
    assert response.status_code == 202
    result = await sync(bridge)
    assert result["payments_recorded"] == 0
    assert await counts(db_url) == (1, 0)


async def test_replayed_shuffled_events_of_every_kind_count_once(bridge, sim, db_url):
    rng = random.Random(7)
    messages = []
    for n in range(6):
        doc = await push_bill(bridge, f"B-{n}", f"HMIS-{n}")
        cleared = clear(sim, doc, "5000.00")
        keys = {
            "CompanyCode": "1000",
            "FiscalYear": cleared["fiscal_year"],
            "AccountingDocument": cleared["payment_document"],
        }
        body = payment(
            f"HMIS-{n}", cleared["payment_document"], "5000.00", doc["sap_document_number"]
        )
        messages += [signed(cloud_event(keys))] * 3 + [signed(body)] * 3
    rng.shuffle(messages)
    async with bridge.client(None) as client:
        answers = await asyncio.gather(*(post(client, *m) for m in messages))
    assert Counter(a.status_code for a in answers) <= Counter({200: 36, 202: 36})
    await sync(bridge)  # sweeps the business events and runs the clearing check
    for n in range(6):
        assert await paid(bridge, f"B-{n}") == ("5000.00", "10000.00")
    assert (await counts(db_url))[1] == 6


async def test_sync_reads_in_batches_and_follows_next_pages(db_url, sim):
    small_pages = create_sim_app(SimConfig(page_cap=2))
    with serve(small_pages) as sim_url:
        settings = make_settings(db_url)
        await seed_config(settings, webhook_config(sim_url), RULES)
        with run_bridge(settings) as bridge:
            docs = [await push_bill(bridge, f"B-{n:02d}", f"HMIS-{n:02d}") for n in range(45)]
            async with httpx.AsyncClient(base_url=sim_url) as sim_client:
                for doc in docs[::2]:
                    await sim_client.post(
                        "/sim/clear",
                        json={
                            "company_code": "1000",
                            "fiscal_year": doc["fiscal_year"],
                            "accounting_document": doc["sap_document_number"],
                        },
                    )
                before = (await sim_client.get("/sim/stats")).json()["odata_requests"]
                result = await sync(bridge)
                requests = (await sim_client.get("/sim/stats")).json()["odata_requests"] - before
    assert (result["bills_checked"], result["payments_recorded"]) == (45, 23)
    # 3 batches of at most 20 documents, each paged 2 rows at a time, for two questions
    assert requests > 6
    assert (await counts(db_url))[1] == 23


@pytest.mark.postgres
async def test_replicas_racing_run_each_slot_once(pg_url, sim):
    settings = make_settings(pg_url)
    await seed_config(settings, webhook_config(str(sim.base_url).rstrip("/")), RULES)
    with run_bridge(settings) as bridge:
        docs = [await push_bill(bridge, f"B-{n}", f"HMIS-{n}") for n in range(5)]
    for doc in docs:
        clear(sim, doc)
    async with replica(pg_url) as one, replica(pg_url) as two:
        results = await asyncio.gather(
            *(clearing.clearing_sync(r, trigger="scheduler", slot=SLOT) for r in (one, two) * 2)
        )
        ran = [r for r in results if r.status == "succeeded"]
        assert len(ran) == 1 and ran[0].payments_recorded == 5
        late = await clearing.clearing_sync(two, trigger="scheduler", slot=SLOT)
        assert late.status == "skipped"
    assert (await counts(pg_url))[1] == 5


async def test_a_sync_that_fails_inside_the_bridge_closes_its_run(bridge, db_url, monkeypatch):
    async def broken(runtime):
        raise RuntimeError("a bug")

    monkeypatch.setattr(clearing, "rematch_all", broken)
    async with bridge.admin() as admin:
        response = await admin.post("/payments/clearing-sync")
    assert response.status_code == 500
    engine = create_async_engine(db_url)
    async with engine.connect() as conn:
        runs = (await conn.execute(text("SELECT status, error FROM clearing_runs"))).all()
    await engine.dispose()
    assert runs == [("failed", "the bridge failed during the sync; see its log")]
