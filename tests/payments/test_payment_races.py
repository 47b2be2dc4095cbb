"""Two replicas record a full payment of the same bill at the same moment (PostgreSQL).

Both wait for the bill's row lock; the one that gets it second must see the first one's payment
and flag its own as an overpayment, never confirm it too.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.billing import service as billing
from app.billing.schemas import BillIn
from tests.payments.test_group_commit import _recording
from tests.support.bridge import RULES, bill, make_settings, replica, seed_config, sim_config

pytestmark = pytest.mark.postgres


async def _waiting_for_locks(engine: object, count: int) -> None:
    for _ in range(500):
        async with engine.connect() as conn:  # type: ignore[attr-defined]
            waiting = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        if waiting >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {count} transactions ever waited for the bill's lock")


@pytest.mark.parametrize("round_", range(3))
async def test_two_full_payments_at_once_confirm_one_and_flag_the_other(
    pg_url: str, sim: httpx.Client, round_: int
) -> None:
    await seed_config(make_settings(pg_url), sim_config(str(sim.base_url).rstrip("/")), RULES)
    holder = create_async_engine(pg_url)
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(replica(pg_url))
        b = await stack.enter_async_context(replica(pg_url))
        config = await a.config.snapshot(a.sessions)
        posted = await billing.push(a, config, "B-1", BillIn.model_validate(bill("HMIS-RACE")))
        number = posted.view.sap_document_number
        assert number
        full = [_recording("HMIS-RACE", f"14000000{n}{round_}", "15000.00", number) for n in (1, 2)]
        try:
            async with holder.connect() as lock:
                await lock.execute(text("SELECT 1 FROM bills WHERE bill_id = 'B-1' FOR UPDATE"))
                first = asyncio.create_task(a.payment_inbox.submit(full[0]))
                second = asyncio.create_task(b.payment_inbox.submit(full[1]))
                await _waiting_for_locks(holder, 2)  # both read the bill after this point
                await lock.rollback()
            outcomes = sorted(o.status for o in await asyncio.gather(first, second))
        finally:
            await holder.dispose()
        async with a.sessions() as session:
            view = await billing.get(a, session, "B-1")
    assert outcomes == ["confirmed", "mismatch"]
    assert Decimal(view.paid_amount or "0") == Decimal("15000.00")
    assert view.outstanding_amount == "0.00"
