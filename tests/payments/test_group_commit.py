"""Webhooks that arrive together share a transaction (app.group_commit) and still count once."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from dataclasses import replace
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from app.payments.service import PaymentFact, Recording
from app.platform.db import utcnow
from tests.payments.conftest import counts, get_bill, payment, payment_rows, post, push_bill, signed
from tests.support.bridge import replica


async def _execute(db_url: str, sql: str) -> None:
    engine = create_async_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


async def test_concurrent_partials_and_duplicates_share_batches(bridge, db_url):
    """Five partial payments of 4,000 per 15,000 bill, each delivered twice, all at once: three
    confirmed and two overpayments per bill, whatever batches they fall into."""
    deliveries = []
    for n in range(4):
        doc = await push_bill(bridge, f"B-{n}", f"HMIS-{n}")
        for part in range(5):
            body = payment(
                f"HMIS-{n}", f"14{n:04d}{part:04d}", "4000.00", doc["sap_document_number"]
            )
            deliveries += [signed(body)] * 2
    random.Random(7).shuffle(deliveries)
    inbox = bridge.runtime.payment_inbox
    before = inbox.batches
    async with bridge.client(None) as client:
        answers = await asyncio.gather(*(post(client, *m) for m in deliveries))
    statuses = Counter(a.json()["status"] for a in answers)
    assert statuses == {"confirmed": 12, "mismatch": 8, "already_confirmed": 20}
    assert inbox.batches - before < len(deliveries)  # transactions were shared
    assert await counts(db_url) == (20, 20)
    for n in range(4):
        view = await get_bill(bridge, f"B-{n}")
        assert (view["paid_amount"], view["outstanding_amount"]) == ("12000.00", "3000.00")
        flagged = [p for p in view["payments"] if p["status"] == "mismatch"]
        assert len(flagged) == 2 and all("overpayment" in p["reasons"][0] for p in flagged)


def _recording(reference: str, document: str, amount: str, number: str) -> Recording:
    fact = PaymentFact(
        company_code="1000",
        payment_document=document,
        payment_fiscal_year="2024",
        bill_reference=reference,
        amount=Decimal(amount),
        currency="LKR",
        sap_document_number=number,
    )
    event = {
        "kind": "payment",
        "status": "done",
        "webhook_id": f"msg_{document}_{uuid.uuid4().hex}",
        "authenticated_by": "signature",
        "body": "{}",
        "attempts": 0,
        "received_at": utcnow(),
    }
    return Recording(fact, "webhook", event)


async def test_replay_of_a_pruned_event_among_others_is_judged_exactly(bridge, db_url):
    """A payment whose inbox row was pruned comes back in one batch with new ones: it is
    already recorded and must not count towards their overpayment check, so the batch is
    written again one by one (1 + 4 transactions)."""
    number = (await push_bill(bridge, "B-1", "HMIS-1"))["sap_document_number"]
    first = _recording("HMIS-1", "1400000001", "5000.00", number)
    others = [_recording("HMIS-1", f"140000000{n}", "5000.00", number) for n in (2, 3, 4)]
    async with replica(db_url) as runtime:
        inbox = runtime.payment_inbox
        assert (await inbox.submit(first)).status == "confirmed"
        await _execute(db_url, "DELETE FROM payment_events")  # retention ran out
        again = replace(first, event={**first.event, "webhook_id": "msg_new"})
        before = inbox.batches
        outcomes = await asyncio.gather(*(inbox.submit(r) for r in [again, *others]))
        assert inbox.batches - before == 1 + 4
    assert [o.status for o in outcomes] == [
        "already_confirmed",
        "confirmed",
        "confirmed",
        "mismatch",
    ]
    view = await get_bill(bridge, "B-1")
    assert (view["paid_amount"], view["outstanding_amount"]) == ("15000.00", "0.00")
    assert len(await payment_rows(db_url)) == 4


async def test_a_value_the_database_refuses_fails_only_its_own_payment(bridge, db_url):
    """PostgreSQL refuses NUL in text: in a batch of ten, that payment alone fails (the route
    answers 422) and nothing of it is stored; the other nine are confirmed after the batch is
    written again one by one. SQLite stores it."""
    number = (await push_bill(bridge, "B-1", "HMIS-1"))["sap_document_number"]
    recordings = [_recording("HMIS-1", f"14000000{n:02d}", "100.00", number) for n in range(10)]
    recordings[4] = replace(recordings[4], fact=replace(recordings[4].fact, note="cash\u0000desk"))
    async with replica(db_url) as runtime:
        inbox = runtime.payment_inbox
        outcomes = await asyncio.gather(
            *(inbox.submit(r) for r in recordings), return_exceptions=True
        )
        batches = inbox.batches
    refused = db_url.startswith("postgresql")
    assert isinstance(outcomes[4], DBAPIError) if refused else outcomes[4].status == "confirmed"
    assert [o.status for o in outcomes[:4] + outcomes[5:]] == ["confirmed"] * 9
    assert batches == (1 + 10 if refused else 1)
    stored = 9 if refused else 10
    assert await counts(db_url) == (stored, stored)
