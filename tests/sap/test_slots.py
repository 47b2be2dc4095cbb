"""`Max Concurrent Calls` held across replicas: advisory-lock slots on one PostgreSQL database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from app.platform.db import make_engine
from app.sap.slots import ClusterSlots

pytestmark = pytest.mark.postgres


@pytest.fixture
async def replicas(pg_url: str) -> AsyncIterator[list[ClusterSlots]]:
    """Two replicas' slot holders, each with its own engine (and so its own connections)."""
    engines = [make_engine(pg_url), make_engine(pg_url)]
    slots = [ClusterSlots(engine) for engine in engines]
    yield slots
    for holder, engine in zip(slots, engines, strict=True):
        await holder.aclose()
        await engine.dispose()


async def test_a_slot_held_by_one_replica_is_not_given_to_another(replicas) -> None:
    first, second = replicas
    held = [await first.take(2), await second.take(2)]
    assert sorted(h.slot for h in held) == [0, 1]
    waiting = asyncio.create_task(second.take(2))
    await asyncio.sleep(0.3)
    assert not waiting.done() and second.waits >= 1  # both slots held: it waits
    async with held[0]:
        pass  # the first replica's call ends; its release is announced
    async with await asyncio.wait_for(waiting, 10) as taken:
        assert taken.slot == held[0].slot
    async with held[1]:
        pass


async def test_a_replica_that_dies_drops_its_slot(replicas, pg_url: str) -> None:
    first, second = replicas
    doomed = await first.take(1)
    pid = (await doomed.conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    async with second._engine.connect() as admin:
        await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    async with await asyncio.wait_for(second.take(1), 10) as taken:
        assert taken.slot == 0
    async with doomed:
        pass  # its release fails quietly: the broken connection is discarded, not pooled
    async with await asyncio.wait_for(first.take(1), 10) as again:
        assert again.slot == 0


async def test_a_raised_limit_frees_more_slots_at_once(replicas) -> None:
    first, _ = replicas
    held = [await first.take(1)]
    held.append(await asyncio.wait_for(first.take(2), 10))
    assert [h.slot for h in held] == [0, 1]
    for h in held:
        async with h:
            pass


async def test_a_waiter_gives_up_when_its_call_is_no_longer_wanted(replicas) -> None:
    first, second = replicas
    held = await first.take(1)
    unwanted = False
    waiting = asyncio.create_task(second.take(1, give_up=lambda: unwanted))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    unwanted = True  # e.g. the circuit opened meanwhile
    assert await asyncio.wait_for(waiting, 10) is None
    async with held:
        pass
