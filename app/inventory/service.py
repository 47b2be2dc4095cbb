"""The pharmacy audit: keep the HMIS item master, read SAP's goods receipts, match, record.

A run is recorded (committed) before SAP is called, the receipts are read with no transaction
open, and the outcome (counts, findings, watermark) is written in one transaction afterwards.
Runs execute under the `inventory-sync` job lock, so at most one runs across all replicas; a
row still `running` when the lock is free belongs to a process that stopped and is failed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config.service import BridgeConfig
from app.inventory import metrics, repository
from app.inventory.matching import RULE, Tally, normalise
from app.inventory.models import (
    BACKFILL,
    FAILED,
    FORWARD,
    INACTIVE,
    RECEIVED,
    RUNNING,
    SUCCEEDED,
    UNMATCHED,
    InventoryRun,
    InventoryRunMaterial,
)
from app.inventory.schemas import (
    ItemIn,
    ItemsUpserted,
    MaterialFinding,
    ReceivedItem,
    RunDetail,
    RunSummary,
    watermark_text,
)
from app.platform.db import transaction, utcnow
from app.platform.errors import ConflictError, InvalidInputError, NotFoundError
from app.platform.locks import job_lock
from app.platform.logging import get_logger
from app.sap.errors import SapError
from app.sap.material_documents import ReadStats, read_goods_movements

if TYPE_CHECKING:
    from app.inventory.runtime import InventoryRuntime

LOCK_NAME = "inventory-sync"
MAX_WINDOW_DAYS = 366
TASKS = "inventory_tasks"
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_log = get_logger("app.inventory")

Progress = Callable[[ReadStats, int], None]


# --- item master ---------------------------------------------------------------------------


async def upsert_items(session: AsyncSession, items: Sequence[ItemIn]) -> ItemsUpserted:
    """Insert or update the items by `item_id` in one bulk statement; 422 on duplicates."""
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.item_id in seen:
            raise InvalidInputError(
                f"item_id {item.item_id!r} appears twice (items[{seen[item.item_id]}] and "
                f"items[{index}]); send each item once",
                item_id=item.item_id,
            )
        seen[item.item_id] = index
    existing = await repository.existing_item_ids(session, list(seen))
    now = utcnow()
    await repository.upsert_items(session, [item_row(item, now) for item in items])
    return ItemsUpserted(
        received=len(items), inserted=len(items) - len(existing), updated=len(existing)
    )


def item_row(item: ItemIn, now: datetime) -> dict[str, Any]:
    barcode = item.barcode or None
    return {
        "item_id": item.item_id,
        "code": item.code,
        "barcode": barcode,
        "name": item.name,
        "unit": item.unit,
        "active": item.active,
        "code_key": normalise(item.code),
        "barcode_key": normalise(barcode) if barcode else None,
        "updated_at": now,
    }


# --- the window ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncRequest:
    """What a caller asked for: a forward sync (no `from_date`) or a backfill."""

    from_date: date | None = None
    to_date: date | None = None
    trigger: str = "api"
    slot: datetime | None = None


@dataclass(frozen=True)
class Window:
    from_date: date
    to_date: date
    mode: str
    warnings: list[str] = field(default_factory=list)


def parse_request(
    from_text: str | None, to_text: str | None, trigger: str = "api", slot: datetime | None = None
) -> SyncRequest:
    """Validate the dates of a sync request; 422 naming the bad one."""
    from_date, to_date = _date("from_date", from_text), _date("to_date", to_text)
    if from_date and to_date:
        _check_span(from_date, to_date)
    return SyncRequest(from_date, to_date, trigger, slot)


def _date(name: str, text: str | None) -> date | None:
    if text is None or text == "":
        return None
    try:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"{name} must be a date as YYYY-MM-DD, got {text!r}", field=name
        ) from None


def _check_span(from_date: date, to_date: date) -> None:
    if to_date < from_date:
        raise InvalidInputError(f"to_date {to_date} is before from_date {from_date}")
    days = (to_date - from_date).days + 1
    if days > MAX_WINDOW_DAYS:
        raise InvalidInputError(
            f"the window {from_date}..{to_date} spans {days} days; at most {MAX_WINDOW_DAYS}"
        )


def plan_window(
    request: SyncRequest, config: BridgeConfig, watermark: datetime | None, today: date
) -> Window:
    """Backfill: the dates given. Forward: the day after the watermark (or `From Days` back)
    up to `to_date` or today, at most 366 days at a time (the next run continues)."""
    if request.from_date is not None:
        return Window(request.from_date, request.to_date or today, BACKFILL)
    start = (
        watermark.date() + timedelta(days=1)
        if watermark
        else today - timedelta(days=config.integer("Inventory Sync From Days"))
    )
    end = request.to_date or today
    if end < start:
        raise InvalidInputError(
            f"nothing to audit: the watermark {watermark_text(watermark)} is past to_date {end}"
        )
    warnings = []
    if (end - start).days + 1 > MAX_WINDOW_DAYS:
        end = start + timedelta(days=MAX_WINDOW_DAYS - 1)
        warnings.append(f"catching up: audited {start}..{end}; the next run continues from there")
    return Window(start, end, FORWARD, warnings)


def next_watermark(window: Window, old: datetime | None, today: date) -> datetime | None:
    """End of the last complete day audited (today is audited again next time); never back."""
    last_day = min(window.to_date, today - timedelta(days=1))
    candidate = datetime.combine(last_day, time(23, 59, 59), tzinfo=UTC)
    return candidate if old is None or candidate > old else old


# --- runs ----------------------------------------------------------------------------------


class SlotTakenError(Exception):
    """Another replica already ran (or is running) this scheduled slot."""


@dataclass
class StartedRun:
    """A run that was recorded and is executing in `task`."""

    run: InventoryRun
    task: asyncio.Task[int | None]


async def start_run(
    runtime: InventoryRuntime,
    request: SyncRequest,
    config: BridgeConfig,
    progress: Progress | None = None,
) -> StartedRun:
    """Record a new run and execute it in the background.

    Raises ConflictError (409, with the running `run_id`) when a run is in progress anywhere,
    InvalidInputError for an empty forward window, SlotTakenError for a slot already run.
    """
    started: asyncio.Future[InventoryRun] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_locked_run(runtime, request, config, started, progress))
    tasks: set[asyncio.Task[Any]] = runtime.extras.setdefault(TASKS, set())
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    try:
        run = await asyncio.shield(started)
    except BaseException:
        if not started.done():
            started.cancel()
        raise
    return StartedRun(run, task)


async def _locked_run(
    runtime: InventoryRuntime,
    request: SyncRequest,
    config: BridgeConfig,
    started: asyncio.Future[InventoryRun],
    progress: Progress | None,
) -> int | None:
    try:
        async with job_lock(runtime, LOCK_NAME) as acquired:
            if not acquired:
                running = await _running_run_id(runtime)
                raise ConflictError(
                    f"an inventory audit is already running (run {running})", run_id=running
                )
            run = await _open_run(runtime, request, config)
            if started.cancelled():
                await _finish_failed(runtime, run.id, "cancelled before it started")
                return run.id
            started.set_result(run)
            await execute_run(runtime, run, config, progress)
            return run.id
    except BaseException as exc:
        # taking the lock may fail too (database away, lock file refused): the caller waiting
        # for the run to start must hear of it, or it waits forever
        if not started.done():
            started.set_exception(exc)
            return None
        raise


async def _running_run_id(runtime: InventoryRuntime) -> int | None:
    for _ in range(20):  # the holder records its run right after taking the lock
        async with runtime.sessions() as session:
            running = await repository.running_run(session)
        if running is not None:
            return running.id
        await asyncio.sleep(0.05)
    return None


async def _open_run(
    runtime: InventoryRuntime, request: SyncRequest, config: BridgeConfig
) -> InventoryRun:
    try:
        async with transaction(runtime.sessions) as session:
            if request.slot and await repository.run_for_slot(session, request.slot):
                raise SlotTakenError(request.slot.isoformat())
            if await repository.abandon_running(
                session, "abandoned: the process running it stopped before it finished"
            ):
                _log.warning("inventory.run.abandoned")
            watermark = await repository.get_watermark(session)
            window = plan_window(request, config, watermark, utcnow().date())
            run = InventoryRun(
                status=RUNNING,
                mode=window.mode,
                trigger=request.trigger,
                from_date=window.from_date,
                to_date=window.to_date,
                plant=config.get("Plant"),
                code_field=config.get("Material Code Field") or "code",
                scheduled_for=request.slot,
                started_at=utcnow(),
                warnings=window.warnings,
                watermark=watermark,
            )
            session.add(run)
    except IntegrityError:
        if request.slot is None:
            raise
        raise SlotTakenError(request.slot.isoformat()) from None
    _log.info(
        "inventory.run.started",
        run_id=run.id,
        mode=run.mode,
        from_date=str(run.from_date),
        to_date=str(run.to_date),
    )
    return run


async def execute_run(
    runtime: InventoryRuntime,
    run: InventoryRun,
    config: BridgeConfig,
    progress: Progress | None = None,
) -> None:
    """Read the window from SAP, match and record the outcome; never raises but cancellation."""
    clock = asyncio.get_running_loop().time
    started, unmatched = clock(), -1
    try:
        unmatched = await _execute(runtime, run, config, progress)
    finally:
        metrics.record_audit_run(
            result="succeeded" if unmatched >= 0 else "failed",
            trigger=run.trigger,
            seconds=clock() - started,
            unmatched=max(unmatched, 0),
        )


async def _execute(
    runtime: InventoryRuntime, run: InventoryRun, config: BridgeConfig, progress: Progress | None
) -> int:
    """The run; returns its unmatched items when it succeeded, -1 when it failed."""
    tally, stats = Tally(), ReadStats()
    try:
        pages = read_goods_movements(runtime.sap, config, run.from_date, run.to_date, stats=stats)
        async with aclosing(pages):
            async for page in pages:
                tally.add_page(page.items, run.plant)
                if progress is not None:
                    progress(stats, tally.items_read)
        tally.finish()
        return await _record_success(runtime, run, tally, stats)
    except SapError as exc:
        await _finish_failed(runtime, run.id, exc.detail, stats, tally)
    except asyncio.CancelledError:
        await _finish_failed(
            runtime, run.id, "interrupted: the bridge was shutting down", stats, tally
        )
        raise
    except Exception as exc:
        _log.exception("inventory.run.crashed", run_id=run.id)
        await _finish_failed(
            runtime,
            run.id,
            f"internal error ({type(exc).__name__}); see the bridge logs",
            stats,
            tally,
        )
    return -1


async def _record_success(
    runtime: InventoryRuntime, run: InventoryRun, tally: Tally, stats: ReadStats
) -> int:
    async with transaction(runtime.sessions) as session:
        matches = await repository.items_by_keys(session, run.code_field, tally.keys())
        findings = _findings(run.id, tally, matches)
        session.add_all(findings)
        row = await repository.get_run(session, run.id)
        assert row is not None
        _apply_counts(row, tally, stats)
        row.matched_items = sum(f.document_items for f in findings if f.kind == RECEIVED)
        row.unmatched_items = sum(f.document_items for f in findings if f.kind == UNMATCHED)
        row.inactive_items = sum(f.document_items for f in findings if f.kind == INACTIVE)
        row.warnings = [*row.warnings, *_warnings(tally, stats, findings)]
        old = await repository.get_watermark(session)
        row.watermark = old
        if row.mode == FORWARD:
            window = Window(row.from_date, row.to_date, row.mode)
            row.watermark = next_watermark(window, old, utcnow().date())
            if row.watermark is not None and row.watermark != old:
                await repository.set_watermark(session, row.watermark)
        row.status, row.finished_at = SUCCEEDED, utcnow()
    _log.info(
        "inventory.run.succeeded",
        run_id=run.id,
        matched=row.matched_items,
        unmatched=row.unmatched_items,
        inactive=row.inactive_items,
    )
    return row.unmatched_items


def _findings(
    run_id: int, tally: Tally, matches: dict[str, list[Any]]
) -> list[InventoryRunMaterial]:
    rows = []
    for (key, unit), total in sorted(tally.totals.items()):
        candidates = matches.get(key, [])
        active = sorted(m.item_id for m in candidates if m.active)
        kind, item_id = UNMATCHED, None
        if active:
            kind, item_id = RECEIVED, active[0]
        elif candidates:
            kind, item_id = INACTIVE, min(m.item_id for m in candidates)
        rows.append(
            InventoryRunMaterial(
                run_id=run_id,
                kind=kind,
                material=total.material[:40],
                item_id=item_id,
                quantity=total.quantity,
                unit=unit[:10],
                document_items=total.items,
                documents=total.documents if kind != RECEIVED else [],
            )
        )
    return rows


def _apply_counts(row: InventoryRun, tally: Tally, stats: ReadStats) -> None:
    row.pages_read, row.items_read = stats.http_pages, tally.items_read
    row.cancelled_items, row.ignored_items = tally.cancelled, tally.ignored
    row.total_document_items = tally.counted


def _warnings(tally: Tally, stats: ReadStats, findings: list[InventoryRunMaterial]) -> list[str]:
    warnings = []
    if stats.total_headers is not None and stats.headers != stats.total_headers:
        warnings.append(
            f"SAP reported {stats.total_headers} material documents in the window "
            f"but {stats.headers} were read (documents posted during the run?)"
        )
    blank = sum(f.document_items for f in findings if not f.material.strip())
    if blank:
        warnings.append(f"{blank} receipt items carry no material number")
    if tally.other_plant:
        warnings.append(f"{tally.other_plant} items of other plants were not audited")
    return warnings


async def _finish_failed(
    runtime: InventoryRuntime,
    run_id: int,
    reason: str,
    stats: ReadStats | None = None,
    tally: Tally | None = None,
) -> None:
    async with transaction(runtime.sessions) as session:
        row = await repository.get_run(session, run_id)
        if row is None:
            return
        if stats is not None and tally is not None:
            _apply_counts(row, tally, stats)
            row.total_document_items = 0
        row.status, row.error, row.finished_at = FAILED, reason, utcnow()
        row.watermark = await repository.get_watermark(session)
    _log.warning("inventory.run.failed", run_id=run_id, reason=reason)


# --- reading runs --------------------------------------------------------------------------


async def get_run(session: AsyncSession, run_id: int) -> RunDetail:
    """One run with its findings; 404 if there is none with that id."""
    run = await repository.get_run(session, run_id)
    if run is None:
        raise NotFoundError(f"no inventory audit run {run_id}")
    materials = await repository.run_materials(session, [run.id], [UNMATCHED, INACTIVE, RECEIVED])
    summary = _summary(run, materials)
    received = [
        ReceivedItem(
            item_id=m.item_id or "",
            material=m.material,
            quantity=Decimal(m.quantity),
            unit=m.unit,
            document_items=m.document_items,
        )
        for m in materials
        if m.kind == RECEIVED
    ]
    return RunDetail(**summary.model_dump(), received_items=received)


async def list_runs(
    session: AsyncSession, *, limit: int, before: int | None, status: str | None
) -> list[RunSummary]:
    """Runs newest first, with their unmatched and inactive materials."""
    runs = await repository.list_runs(session, limit=limit, before=before, status=status)
    materials = await repository.run_materials(session, [r.id for r in runs], [UNMATCHED, INACTIVE])
    by_run: dict[int, list[InventoryRunMaterial]] = {}
    for material in materials:
        by_run.setdefault(material.run_id, []).append(material)
    return [_summary(run, by_run.get(run.id, [])) for run in runs]


def _summary(run: InventoryRun, materials: Sequence[InventoryRunMaterial]) -> RunSummary:
    def finding(m: InventoryRunMaterial) -> MaterialFinding:
        return MaterialFinding(
            material=m.material,
            quantity=Decimal(m.quantity),
            unit=m.unit,
            document_items=m.document_items,
            documents=list(m.documents),
            item_id=m.item_id,
        )

    return RunSummary(
        run_id=run.id,
        status=run.status,
        mode=run.mode,
        trigger=run.trigger,  # type: ignore[arg-type]
        from_date=run.from_date,
        to_date=run.to_date,
        plant=run.plant,
        code_field=run.code_field,
        started_at=run.started_at,
        finished_at=run.finished_at,
        pages_read=run.pages_read,
        items_read=run.items_read,
        total_document_items=run.total_document_items,
        matched_items=run.matched_items,
        unmatched_items=run.unmatched_items,
        inactive_items=run.inactive_items,
        cancelled_items=run.cancelled_items,
        ignored_items=run.ignored_items,
        unmatched_materials=[finding(m) for m in materials if m.kind == UNMATCHED],
        inactive_materials=[finding(m) for m in materials if m.kind == INACTIVE],
        watermark=watermark_text(run.watermark),
        warnings=list(run.warnings or []),
        error=run.error,
        rule=RULE,
    )
