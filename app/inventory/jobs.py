"""The scheduled forward audit and the lifespan hooks of the inventory domain."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.inventory import service
from app.platform.errors import ConflictError, InvalidInputError
from app.platform.logging import get_logger

if TYPE_CHECKING:
    from app.config.scheduler import Scheduler
    from app.inventory.runtime import InventoryRuntime

JOB_ID = "inventory-sync"
CRON_KEY = "Inventory Sync Cron"
_log = get_logger("app.inventory.jobs")


def register(scheduler: Scheduler, runtime: InventoryRuntime) -> None:
    """Run the forward audit on `Inventory Sync Cron`."""

    async def job(slot: datetime) -> None:
        await scheduled_audit(runtime, slot)

    scheduler.add_cron_job(JOB_ID, CRON_KEY, job)


async def scheduled_audit(runtime: InventoryRuntime, slot: datetime) -> int | None:
    """The forward audit of one cron slot; a no-op when another replica has or runs it.

    Returns the run id this process executed, if any.
    """
    config = await runtime.config.snapshot(runtime.sessions)
    if not config.enabled:
        _log.info("inventory.scheduled.skipped", reason="SAP integration is disabled")
        return None
    request = service.SyncRequest(trigger="scheduler", slot=slot)
    try:
        started = await service.start_run(runtime, request, config)
    except (ConflictError, service.SlotTakenError, InvalidInputError) as exc:
        _log.info(
            "inventory.scheduled.skipped",
            slot=slot.isoformat(),
            reason=getattr(exc, "detail", None) or f"slot taken {exc}",
        )
        return None
    await started.task
    return started.run.id


async def shutdown(runtime: InventoryRuntime) -> None:
    """Cancel the audits still running; each records itself as failed (interrupted)."""
    tasks: set[asyncio.Task[Any]] = set(runtime.extras.get(service.TASKS, ()))
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
