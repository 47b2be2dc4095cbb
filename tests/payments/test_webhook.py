"""Every outcome of the webhook, replays in any order, a database outage."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.payments.conftest import (
    WEBHOOK,
    basic,
    cloud_event,
    counts,
    get_bill,
    payment,
    payment_rows,
    post,
    push_bill,
    signed,
)
from tests.support.database import PG_ADMIN_DSN


async def test_payment_is_confirmed_against_the_bill(bridge, db_url):
    doc = await push_bill(bridge, "B-1", "HMIS-1")
    body = payment("HMIS-1", "1400000017", "15000.00", doc["sap_document_number"])
    async with bridge.client(None) as client:
        response = await post(client, *signed(body))
    assert response.status_code == 200, response.text
    assert response.json() | {"event_id": 0} == {
        "status": "confirmed",
        "event_id": 0,
        "payment_document": "1400000017",
        "bill_id": "B-1",
    }
    view = await get_bill(bridge, "B-1")
    assert (view["paid_amount"], view["outstanding_amount"]) == ("15000.00", "0.00")
    assert view["payments"] == [
        {
            "payment_document": "1400000017",
            "amount": "15000.00",
            "currency": "LKR",
            "posting_date": "2024-03-20",
            "status": "confirmed",
            "source": "webhook",
        }
    ]


async def test_same_event_again_is_already_confirmed_by_each_key(bridge, db_url):
    doc = await push_bill(bridge, "B-1", "HMIS-1")
    first = payment("HMIS-1", "1400000001", "5000.00", doc["sap_document_number"])
    raw, headers = signed(first)
    event = cloud_event(payment("HMIS-1", "1400000002", "5000.00"))
    async with bridge.client(None) as client:
        answers = [
            await post(client, raw, headers),
            await post(client, raw, headers),  # same webhook-id
            await post(client, *signed(first)),  # new webhook-id, same paymentDocument
            await client.post(WEBHOOK, json=first, headers=basic()),  # Basic, same document
            await post(client, *signed(event)),
            await post(client, *signed(event)),  # same CloudEvents source+id, new webhook-id
            await client.post(WEBHOOK, json=event, headers=basic()),
        ]
    statuses = [(a.status_code, a.json()["status"]) for a in answers]
    assert statuses == [
        (200, "confirmed"),
        *[(200, "already_confirmed")] * 3,
        (200, "confirmed"),
        *[(200, "already_confirmed")] * 2,
    ]
    assert await counts(db_url) == (2, 2)
    assert (await get_bill(bridge, "B-1"))["paid_amount"] == "10000.00"


async def test_no_bill_is_unmatched_then_matched_when_the_bill_is_pushed(bridge, db_url):
    body = payment("HMIS-LATE", "1400000009", "15000.00")
    async with bridge.client(None) as client:
        response = await post(client, *signed(body))
    assert response.status_code == 202
    assert response.json()["status"] == "unmatched"
    assert "HMIS-LATE" in response.json()["reasons"][0]
    async with bridge.client() as client:
        report = (await client.get("/reconciliation")).json()
    assert [p["payment_document"] for p in report["unmatched_payments"]] == ["1400000009"]
    await push_bill(bridge, "B-LATE", "HMIS-LATE")
    view = await get_bill(bridge, "B-LATE")
    assert (view["paid_amount"], view["outstanding_amount"]) == ("15000.00", "0.00")
    assert [p["status"] for p in view["payments"]] == ["confirmed"]
    assert await counts(db_url) == (1, 1)


async def test_partial_payments_add_up(bridge):
    doc = await push_bill(bridge, "B-1", "HMIS-1")
    async with bridge.client(None) as client:
        for number, amount in (("1400000001", "4000.00"), ("1400000002", "6000.50")):
            body = payment("HMIS-1", number, amount, doc["sap_document_number"])
            assert (await post(client, *signed(body))).json()["status"] == "confirmed"
    view = await get_bill(bridge, "B-1")
    assert (view["paid_amount"], view["outstanding_amount"]) == ("10000.50", "4999.50")


async def test_mismatches_are_stored_and_flagged(bridge, db_url):
    doc = await push_bill(bridge, "B-1", "HMIS-1")
    number = doc["sap_document_number"]
    cases = {
        "1400000001": payment("HMIS-1", "1400000001", "100.00", number, currency="USD"),
        "1400000002": payment("HMIS-1", "1400000002", "100.00", "0100009999"),
        "1400000003": payment("HMIS-1", "1400000003", "100.005", number),
        "1400000004": payment("HMIS-1", "1400000004", "14000.00", number),
        "1400000005": payment("HMIS-1", "1400000005", "1000.01", number),  # overpays by 0.01
    }
    async with bridge.client(None) as client:
        answers = {n: await post(client, *signed(b)) for n, b in cases.items()}
    status = {n: (a.status_code, a.json()["status"]) for n, a in answers.items()}
    assert status == {
        "1400000001": (200, "mismatch"),
        "1400000002": (200, "mismatch"),
        "1400000003": (200, "mismatch"),
        "1400000004": (200, "confirmed"),
        "1400000005": (200, "mismatch"),
    }
    reasons = {n: " ".join(a.json().get("reasons", [])) for n, a in answers.items()}
    assert "currency USD" in reasons["1400000001"]
    assert "not the document the bridge posted" in reasons["1400000002"]
    assert "decimals" in reasons["1400000003"]
    assert "overpayment" in reasons["1400000005"]
    view = await get_bill(bridge, "B-1")
    assert (view["paid_amount"], view["outstanding_amount"]) == ("14000.00", "1000.00")
    async with bridge.client() as client:
        report = (await client.get("/reconciliation")).json()
    assert len(report["mismatches"]) == 4
    assert await counts(db_url) == (5, 5)


async def test_payment_inside_a_cloudevent_with_basic_auth(bridge):
    doc = await push_bill(bridge, "B-1", "HMIS-1")
    event = cloud_event(payment("HMIS-1", "1400000001", "15000.00", doc["sap_document_number"]))
    async with bridge.client(None) as client:
        response = await client.post(WEBHOOK, json=event, headers=basic())
    assert (response.status_code, response.json()["status"]) == (200, "confirmed")


async def test_binary_mode_cloudevent_is_read_from_ce_headers(bridge):
    doc = await push_bill(bridge, "B-1", "HMIS-1")
    body = payment("HMIS-1", "1400000001", "15000.00", doc["sap_document_number"])
    ce = {"ce-specversion": "1.0", "ce-id": "evt-1", "ce-source": "/iflow", "ce-type": "payment"}
    async with bridge.client(None) as client:
        first = await client.post(WEBHOOK, json=body, headers={**basic(), **ce})
        again = await client.post(
            WEBHOOK, json=payment("HMIS-1", "1400000002", "1.00"), headers={**basic(), **ce}
        )
    assert first.json()["status"] == "confirmed"
    assert again.json()["status"] == "already_confirmed"  # same source+id


async def test_replays_in_any_order_count_each_payment_once(bridge, db_url):
    rng = random.Random(4)
    expected: Counter[str] = Counter()
    deliveries = []
    for n in range(8):
        doc = await push_bill(bridge, f"B-{n}", f"HMIS-{n}")
        for part, amount in enumerate(("5000.00", "2500.25")):
            number = f"14{n:04d}{part:04d}"
            body = payment(f"HMIS-{n}", number, amount, doc["sap_document_number"])
            expected[f"B-{n}"] += 1
            message = signed(body) if part == 0 else signed(cloud_event(body))
            deliveries += [message] * 3  # at-least-once: every event three times
    for _ in range(3):
        body = payment("HMIS-NOBILL", f"15{rng.randrange(10**8):08d}", "10.00")
        deliveries += [signed(body)] * 3
    rng.shuffle(deliveries)
    async with bridge.client(None) as client:
        answers = []
        for start in range(0, len(deliveries), 12):  # 12 concurrent senders at a time
            batch = deliveries[start : start + 12]
            answers += await asyncio.gather(*(post(client, *m) for m in batch))
    statuses = Counter(a.json()["status"] for a in answers)
    assert statuses == {"confirmed": 16, "unmatched": 3, "already_confirmed": 38}
    rows = await payment_rows(db_url)
    assert len(rows) == 19
    assert (
        len({(r["company_code"], r["payment_document"], r["bill_reference"]) for r in rows}) == 19
    )
    for n in range(8):
        view = await get_bill(bridge, f"B-{n}")
        assert (view["paid_amount"], view["outstanding_amount"]) == ("7500.25", "7499.75")


@contextlib.asynccontextmanager
async def database_outage(db_url: str) -> AsyncIterator[None]:
    """Make the database refuse the bridge: PostgreSQL stops accepting connections and drops
    the open ones; on SQLite the inbox table disappears for a while."""
    if db_url.startswith("postgresql"):
        name = db_url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            yield
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await admin.close()
        return
    engine = create_async_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE payment_events RENAME TO payment_events_offline"))
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE payment_events_offline RENAME TO payment_events"))
        await engine.dispose()


async def test_database_outage_mid_stream_answers_503_and_retries_land_once(bridge, db_url):
    doc = await push_bill(bridge, "B-1", "HMIS-1")
    messages = [
        signed(payment("HMIS-1", f"14{i:08d}", "1000.00", doc["sap_document_number"]))
        for i in range(9)
    ]
    async with bridge.client(None) as client:
        before = [await post(client, *m) for m in messages[:3]]
        async with database_outage(db_url):
            during = [await post(client, *m) for m in messages[3:6]]
        after = [await post(client, *m) for m in messages[6:]]
        retried = [await post(client, *m) for m in messages[3:6]]  # the senders try again
        again = [await post(client, *m) for m in messages]
    assert [r.status_code for r in during] == [503, 503, 503]
    assert all("retry" in r.json()["detail"] for r in during)
    assert [r.json()["status"] for r in before + after + retried] == ["confirmed"] * 9
    assert {r.json()["status"] for r in again} == {"already_confirmed"}
    assert await counts(db_url) == (9, 9)
    view = await get_bill(bridge, "B-1")
    assert (view["paid_amount"], view["outstanding_amount"]) == ("9000.00", "6000.00")
    assert sum(Decimal(p["amount"]) for p in view["payments"]) == Decimal("9000.00")
