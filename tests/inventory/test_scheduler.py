"""Scheduler and job lock: one audit per cron slot across replicas, cron follows the config."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select

from app.config.scheduler import Scheduler
from app.inventory import jobs
from app.inventory.models import InventoryRun
from app.platform.locks import job_lock
from app.shell.runtime import Runtime
from tests.inventory.conftest import generate
from tests.support.bridge import make_settings, replica, seed_config, sim_config

SLOT = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)


async def run_count(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(InventoryRun)) or 0)


@pytest.mark.postgres
async def test_two_replicas_racing_run_each_slot_once(pg_url: str, sim: httpx.Client) -> None:
    generate(sim, seed=1, items=100, days=5)
    sim.put("/sim/materials/settings", json={"latency_ms": 20, "page_size": 5})
    await seed_config(make_settings(pg_url), sim_config(str(sim.base_url).rstrip("/")))
    async with replica(pg_url) as one, replica(pg_url) as two:
        ran = await asyncio.gather(*(jobs.scheduled_audit(r, SLOT) for r in (one, two, one, two)))
        assert len([r for r in ran if r is not None]) == 1
        late = await jobs.scheduled_audit(two, SLOT)  # the slot is taken even after it finished
        assert late is None
        assert await run_count(one) == 1
        later = await jobs.scheduled_audit(two, SLOT.replace(day=6))
        assert later is not None and await run_count(one) == 2


@pytest.mark.postgres
async def test_advisory_lock_is_exclusive_across_engines(pg_url: str) -> None:
    async with replica(pg_url) as one, replica(pg_url) as two:
        async with (
            job_lock(one, "inventory-sync") as first,
            job_lock(two, "inventory-sync") as second,
        ):
            assert (first, second) == (True, False)
        async with job_lock(two, "inventory-sync") as again:
            assert again is True


async def test_sqlite_lock_is_exclusive_in_process(sqlite_url: str) -> None:
    async with replica(sqlite_url) as one:
        async with (
            job_lock(one, "inventory-sync") as first,
            job_lock(one.engine, "inventory-sync") as other,
        ):
            assert (first, other) == (True, False)
        async with job_lock(one, "inventory-sync") as again:
            assert again is True


async def test_cron_follows_config_and_switch_turns_it_off(db_url: str) -> None:
    async with replica(db_url, BRIDGE_SCHEDULER_ENABLED=True) as runtime:
        scheduler = Scheduler(runtime)
        jobs.register(scheduler, runtime)
        await scheduler.start()
        try:
            assert scheduler.running
            first = scheduler.next_run_time(jobs.JOB_ID)
            assert first is not None and (first.hour, first.minute) == (2, 0)
            async with runtime.sessions() as session, session.begin():
                await runtime.config.set_value(
                    session,
                    "SAP Integration - Inventory Sync Cron",
                    "*/5 * * * *",
                    actor="test",
                    request_id=None,
                )
            await runtime.config.changed(runtime.sessions)
            moved = scheduler.next_run_time(jobs.JOB_ID)
            assert moved is not None and moved.minute % 5 == 0 and moved != first
        finally:
            await scheduler.shutdown()
    async with replica(db_url, BRIDGE_SCHEDULER_ENABLED=False) as runtime:
        off = Scheduler(runtime)
        jobs.register(off, runtime)
        await off.start()
        assert not off.running and off.next_run_time(jobs.JOB_ID) is None
