"""The scheduled clearing sync and the lifespan hooks of the payments domain."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from app.payments import clearing

if TYPE_CHECKING:
    from app.config.scheduler import Scheduler
    from app.payments.runtime import PaymentsRuntime

JOB_ID = "payments-clearing-sync"
CRON_KEY = "Clearing Sync Cron"


def register(scheduler: Scheduler, runtime: PaymentsRuntime) -> None:
    """Run the clearing sync on `Clearing Sync Cron` (one replica per slot)."""

    async def job(slot: datetime) -> None:
        await clearing.clearing_sync(runtime, trigger="scheduler", slot=slot)

    scheduler.add_cron_job(JOB_ID, CRON_KEY, job)


async def shutdown(runtime: PaymentsRuntime) -> None:
    """Stop background resolutions; their events stay pending for the next sync."""
    await clearing.shutdown(runtime)
