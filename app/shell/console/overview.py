"""`/console`: what needs attention now, refreshed in place, and the receivables' ageing."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.billing.models import NEEDS_REVIEW, POSTED, QUEUED, REJECTED, REVERSED, Bill
from app.inventory.models import InventoryRun
from app.payments import reconciliation
from app.payments.models import MISMATCH, UNMATCHED, ClearingRun, Payment
from app.platform.db import utcnow
from app.shell.console import aging_chart
from app.shell.console.web import VisitDep

router = APIRouter(prefix="/console", include_in_schema=False)


@dataclass(frozen=True)
class Tile:
    label: str
    count: int
    href: str
    attention: bool


@dataclass(frozen=True)
class LastRun:
    name: str
    status: str
    when: datetime | None
    detail: str
    href: str


@dataclass(frozen=True)
class Overview:
    tiles: list[Tile]
    oldest_queued: datetime | None
    circuit: str
    runs: list[LastRun]
    chart: str


@router.get("", response_class=HTMLResponse)
async def overview(visit: VisitDep) -> HTMLResponse:
    return visit.render(
        "overview.html", title="Overview", overview=await _gather(visit), now=utcnow()
    )


@router.get("/overview/panel", response_class=HTMLResponse)
async def panel(visit: VisitDep) -> HTMLResponse:
    """The overview's live part alone: the page's script swaps it in every 15 s."""
    return visit.render(
        "_overview_panel.html", title="Overview", overview=await _gather(visit), now=utcnow()
    )


async def _gather(visit: VisitDep) -> Overview:
    runtime = visit.runtime
    async with runtime.sessions() as session:
        by_status = await _counts(session, Bill.status)
        posted_today = await session.scalar(
            select(func.count()).where(
                Bill.status == POSTED,
                Bill.posted_at >= datetime.combine(utcnow().date(), time(), UTC),
            )
        )
        oldest = await session.scalar(
            select(func.min(Bill.created_at)).where(Bill.status == QUEUED)
        )
        payments = await _counts(session, Payment.status, Payment.status.in_((UNMATCHED, MISMATCH)))
        runs = [await _last_clearing(session), await _last_audit(session)]
        ageing = await reconciliation.report(session, None, utcnow().date())
    tiles = [
        Tile("Queued", by_status.get(QUEUED, 0), "/console/bills?status=queued", False),
        Tile("Needs review", by_status.get(NEEDS_REVIEW, 0), "/console/bills?status=needs_review",
             True),
        Tile("Rejected", by_status.get(REJECTED, 0), "/console/bills?status=rejected", True),
        Tile("Posted today", posted_today or 0, "/console/bills?status=posted", False),
        Tile("Reversed", by_status.get(REVERSED, 0), "/console/bills?status=reversed", False),
        Tile("Unmatched payments", payments.get(UNMATCHED, 0),
             "/console/payments?status=unmatched", True),
        Tile("Mismatched payments", payments.get(MISMATCH, 0),
             "/console/payments?status=mismatch", True),
    ]  # fmt: skip
    outstanding: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for bill in ageing.open_bills:
        outstanding[bill.currency][bill.ageing_bucket] += Decimal(bill.outstanding_amount)
    return Overview(
        tiles=tiles,
        oldest_queued=oldest,
        circuit=runtime.sap.breaker.state,
        runs=runs,
        chart=aging_chart.render(outstanding),
    )


async def _counts(
    session: AsyncSession, column: InstrumentedAttribute[str], *where: ColumnElement[bool]
) -> dict[str, int]:
    rows = await session.execute(select(column, func.count()).where(*where).group_by(column))
    return {value: count for value, count in rows}


async def _last_clearing(session: AsyncSession) -> LastRun:
    run = await session.scalar(select(ClearingRun).order_by(ClearingRun.id.desc()).limit(1))
    if run is None:
        return LastRun("Clearing sync", "never run", None, "", "/console/reconciliation")
    detail = run.error or f"{run.summary.get('payments_recorded', 0)} payment(s) recorded"
    return LastRun("Clearing sync", run.status, run.finished_at or run.started_at, detail,
                   "/console/reconciliation")  # fmt: skip


async def _last_audit(session: AsyncSession) -> LastRun:
    run = await session.scalar(select(InventoryRun).order_by(InventoryRun.id.desc()).limit(1))
    if run is None:
        return LastRun("Inventory audit", "never run", None, "", "/console/audits")
    detail = run.error or f"{run.matched_items} matched, {run.unmatched_items} unmatched"
    return LastRun("Inventory audit", run.status, run.finished_at or run.started_at, detail,
                   f"/console/audits/{run.id}")  # fmt: skip
