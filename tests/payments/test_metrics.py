"""Payments monitoring moves: webhook outcomes and refusals, clearing-sync runs, and the
unmatched and mismatched payments read from the database, as GET /metrics shows them."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from app.payments import clearing
from app.payments.models import Payment
from app.platform.db import utcnow
from tests.payments.conftest import (
    WEBHOOK,
    clear,
    cloud_event,
    payment,
    post,
    push_bill,
    signed,
)
from tests.payments.test_webhook import database_outage
from tests.payments.test_webhook_auth import OTHER_SECRET
from tests.support.metrics import Scrape, scrape

EVENTS = "bridge_webhook_events_total"


def _webhook_events(metrics: Scrape) -> dict[tuple[str, str], float]:
    return {
        (s.labels["outcome"], s.labels.get("reason", "")): s.value
        for s in metrics.samples
        if s.name == EVENTS
    }


def _moved(before: Scrape, after: Scrape) -> dict[tuple[str, str], float]:
    old, new = _webhook_events(before), _webhook_events(after)
    return {key: new[key] - old.get(key, 0.0) for key in new if new[key] != old.get(key, 0.0)}


async def test_each_webhook_outcome_and_refusal_is_counted(bridge, db_url):
    number = (await push_bill(bridge, "B-1", "HMIS-1"))["sap_document_number"]
    confirmed = signed(payment("HMIS-1", "1400000001", "100.00", number))
    big = json.dumps(payment("HMIS-1", "1400000009", note="x" * 300_000)).encode()

    async def chunks():
        yield big[:100_000]
        yield big[100_000:]

    before = await scrape(bridge)
    async with bridge.client(None) as client:
        answers = [
            await post(client, *confirmed),
            await post(client, *confirmed),
            await post(client, *signed(payment("HMIS-NONE", "1400000002"))),
            await post(client, *signed(payment("HMIS-1", "1400000003", "1.00", currency="USD"))),
            await post(client, *signed(payment("HMIS-1", "1400000004"), secret=OTHER_SECRET)),
            await post(client, confirmed[0], {"content-type": "application/json"}),
            await client.options(WEBHOOK),  # the handshake takes the same credentials
            await post(client, *signed(big)),  # refused by its Content-Length, before routing
            await client.post(WEBHOOK, content=chunks(), headers=signed(big)[1]),  # while read
            await post(client, *signed({"paymentDocument": "1400000005"})),
        ]
        async with database_outage(db_url):
            answers.append(await post(client, *signed(payment("HMIS-1", "1400000006"))))
        keys = {"CompanyCode": "1000", "FiscalYear": "2024", "AccountingDocument": "1400000099"}
        answers.append(await post(client, *signed(cloud_event(keys))))
    assert [a.status_code for a in answers] == [
        200, 200, 202, 200, 401, 401, 401, 413, 413, 422, 503, 202
    ]  # fmt: skip
    assert [a.json()["status"] for a in answers[:4]] == [
        "confirmed",
        "already_confirmed",
        "unmatched",
        "mismatch",
    ]
    after = await scrape(bridge)
    assert _moved(before, after) == {
        ("confirmed", ""): 1,
        ("duplicate", ""): 1,
        ("unmatched", ""): 1,
        ("mismatch", ""): 1,
        ("accepted", ""): 1,
        ("refused", "unauthenticated"): 3,
        ("refused", "too_large"): 2,
        ("refused", "invalid"): 1,
        ("refused", "unavailable"): 1,
    }
    # every outcome is there from the start, so an alert sees the first one
    assert after.value(EVENTS, outcome="refused", reason="other") >= 0
    assert len(_webhook_events(after)) == 10


async def test_clearing_sync_results_and_payments_found_are_counted(
    bridge, sim, monkeypatch: pytest.MonkeyPatch
):
    clear(sim, await push_bill(bridge, "B-1", "HMIS-1"))
    await push_bill(bridge, "B-2", "HMIS-2")  # still open: the sync with SAP down asks for it
    before = await scrape(bridge)
    async with bridge.admin() as admin:
        found = (await admin.post("/payments/clearing-sync")).json()
        sim.put("/sim/faults", json={"down": True}).raise_for_status()
        sap_down = (await admin.post("/payments/clearing-sync")).json()
        sim.put("/sim/faults", json={"down": False}).raise_for_status()

        async def broken(_runtime: object) -> int:
            raise RuntimeError("a bug in the sync")

        monkeypatch.setattr(clearing, "rematch_all", broken)
        async with bridge.admin() as own:  # the server closes the connection after a 500
            crashed = await own.post("/payments/clearing-sync")
        monkeypatch.undo()
        disabled = await admin.put("/config/SAP Integration - Enabled", json={"value": "false"})
        assert disabled.status_code == 200, disabled.text
        skipped = (await admin.post("/payments/clearing-sync")).json()
    assert (found["status"], found["payments_recorded"]) == ("succeeded", 1)
    assert (sap_down["status"], crashed.status_code) == ("failed", 500)
    assert skipped["status"] == "skipped"
    after = await scrape(bridge)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    runs = "bridge_clearing_sync_runs_total"
    assert delta(runs, result="succeeded") == 1
    assert delta(runs, result="failed") == 2  # SAP down, and the crash
    assert delta(runs, result="skipped") == 1
    assert delta("bridge_clearing_sync_payments_total", outcome="recorded") == 1
    assert delta("bridge_clearing_sync_payments_total", outcome="rematched") == 0
    assert delta("bridge_clearing_sync_duration_seconds_count") == 2  # the runs that finished
    assert after.value("bridge_clearing_sync_last_success_timestamp_seconds") > 0


async def _age_payment(db_url: str, payment_document: str, by: timedelta) -> None:
    engine = create_async_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                update(Payment)
                .where(Payment.payment_document == payment_document)
                .values(updated_at=utcnow() - by)
            )
    finally:
        await engine.dispose()


async def test_unmatched_and_mismatched_payments_and_their_age_come_from_the_database(
    bridge, db_url
):
    number = (await push_bill(bridge, "B-1", "HMIS-1"))["sap_document_number"]
    async with bridge.client(None) as client:
        for body in (
            payment("HMIS-NONE-1", "1400000001"),
            payment("HMIS-NONE-2", "1400000002"),
            payment("HMIS-1", "1400000003", "1.00", number, currency="USD"),
            payment("HMIS-1", "1400000004", "100.00", number),
        ):
            assert (await post(client, *signed(body))).status_code in (200, 202)
    await _age_payment(db_url, "1400000002", timedelta(days=2))
    await _age_payment(db_url, "1400000003", timedelta(hours=3))
    metrics = await scrape(bridge)
    assert metrics.value("bridge_payments_unresolved", status="unmatched") == 2
    assert metrics.value("bridge_payments_unresolved", status="mismatch") == 1
    age = "bridge_payments_unresolved_oldest_age_seconds"
    assert 2 * 86400 <= metrics.value(age, status="unmatched") < 2 * 86400 + 300
    assert 3 * 3600 <= metrics.value(age, status="mismatch") < 3 * 3600 + 300
