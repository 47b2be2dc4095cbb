"""The outbox's claim: at most `limit` due bills per call, and never one another claim holds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import insert, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine

from app.billing import repository
from app.billing.models import QUEUED, Bill
from app.platform.db import make_engine, statement, utcnow


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(db_url)
    now = utcnow()
    rows = [
        {
            "bill_id": f"B-{n:02}",
            "reference": f"R-{n:02}",
            "bill_date": now.date(),
            "currency": "LKR",
            "net_total": 100,
            "fingerprint": "f",
            "payload": {},
            "status": QUEUED,
            "company_code": "1000",
            "document_reference_id": f"R-{n:02}",
            "attempts": 0,
            "maybe_posted": False,
            "cancel_requested": False,
            "created_at": now + timedelta(milliseconds=n),
            "updated_at": now,
        }
        for n in range(20)
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(Bill), rows)
    yield engine
    await engine.dispose()


async def claim(engine: AsyncEngine, limit: int) -> list[str]:
    now = utcnow()
    async with statement(engine) as session:
        return await repository.claim_due(
            session, now, now + timedelta(seconds=30), limit, lease_id=f"claim-{limit}"
        )


async def test_a_claim_leases_no_more_than_its_limit_oldest_first(engine: AsyncEngine) -> None:
    # PostgreSQL once leased all 20 here: it ran the LIMIT subquery again per row
    first = await claim(engine, 8)
    assert sorted(first) == [f"B-{n:02}" for n in range(8)]
    second = await claim(engine, 8)
    assert sorted(second) == [f"B-{n:02}" for n in range(8, 16)]  # leased ones are not due
    assert len(await claim(engine, 8)) == 4
    assert await claim(engine, 8) == []


@pytest.mark.postgres
async def test_the_claim_can_walk_the_index_of_pending_bills(pg_url: str) -> None:
    """The partial index of pending bills matches the claim's filter and order, so PostgreSQL
    can take the first due bills from it instead of sorting the queue (here forced: on a table
    this small it would choose either)."""
    now = utcnow()
    claim = repository.claim_statement(now, now, 8, "lease")
    sql = claim.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    engine = make_engine(pg_url)
    async with engine.begin() as conn:
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        await conn.execute(text("SET LOCAL enable_sort = off"))
        plan = "\n".join((await conn.execute(text(f"EXPLAIN {sql}"))).scalars())
        await conn.rollback()
    await engine.dispose()
    assert "ix_bills_due_order" in plan and "Sort" not in plan, plan
