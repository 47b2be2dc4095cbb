"""Inventory audits: runs counted by this process, and the newest runs read at scrape time."""

from __future__ import annotations

from prometheus_client import Counter, Histogram
from prometheus_client.core import Metric
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.inventory.models import FAILED, SUCCEEDED, InventoryRun
from app.platform.metrics import REGISTRY, RUN_BUCKETS, gauge

AUDIT_RUNS = Counter(
    "bridge_inventory_audit_runs_total",
    "Inventory audit runs this process executed, by result (succeeded, failed) and trigger.",
    ["result", "trigger"],
    registry=REGISTRY,
)
AUDIT_DURATION = Histogram(
    "bridge_inventory_audit_duration_seconds",
    "Duration of inventory audit runs this process executed, by result.",
    ["result"],
    buckets=RUN_BUCKETS,
    registry=REGISTRY,
)
AUDIT_UNMATCHED = Counter(
    "bridge_inventory_audit_unmatched_items_total",
    "Goods-receipt items that no HMIS item matched, summed over the runs of this process.",
    registry=REGISTRY,
)


def record_audit_run(*, result: str, trigger: str, seconds: float, unmatched: int = 0) -> None:
    """Count one finished audit run (called by the inventory service)."""
    AUDIT_RUNS.labels(result=result, trigger=trigger).inc()
    AUDIT_DURATION.labels(result=result).observe(seconds)
    if unmatched:
        AUDIT_UNMATCHED.inc(unmatched)


async def families(session: AsyncSession) -> list[Metric]:
    """The newest finished run's outcome and the newest successful run's findings."""
    latest = (
        await session.execute(
            select(InventoryRun.status, InventoryRun.finished_at)
            .where(InventoryRun.status.in_([SUCCEEDED, FAILED]))
            .order_by(InventoryRun.id.desc())
            .limit(1)
        )
    ).first()
    success = (
        await session.execute(
            select(InventoryRun.finished_at, InventoryRun.unmatched_items)
            .where(InventoryRun.status == SUCCEEDED)
            .order_by(InventoryRun.id.desc())
            .limit(1)
        )
    ).first()
    return [
        gauge(
            "bridge_inventory_audit_last_run_failed",
            "1 when the newest finished inventory audit run failed, else 0.",
            1 if latest is not None and latest[0] == FAILED else 0,
        ),
        gauge(
            "bridge_inventory_audit_last_success_timestamp_seconds",
            "Unix time the newest successful inventory audit finished (0: never).",
            success[0].timestamp() if success is not None and success[0] else 0,
        ),
        gauge(
            "bridge_inventory_audit_last_unmatched_items",
            "Unmatched goods-receipt items of the newest successful inventory audit.",
            success[1] if success is not None else 0,
        ),
    ]
