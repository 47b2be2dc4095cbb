"""Pharmacy audit routes (CONTRACT.md 2.3)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response

from app.db import transaction
from app.deps import ConfigDep, HmisKey, ReaderKey, RuntimeDep, SessionDep
from app.inventory import service
from app.inventory.schemas import (
    MAX_ITEMS_PER_CALL,
    ItemIn,
    ItemsUpserted,
    RunDetail,
    RunSummary,
    SyncSkipped,
)

router = APIRouter(prefix="/inventory", tags=["inventory audit"])

_ERROR = {"description": '`{"detail": ...}`'}


@router.put(
    "/items",
    response_model=ItemsUpserted,
    responses={422: {**_ERROR, "description": "invalid item, duplicate item_id or > 10,000"}},
)
async def put_items(
    _key: HmisKey,
    runtime: RuntimeDep,
    items: Annotated[list[ItemIn], Body(max_length=MAX_ITEMS_PER_CALL)],
) -> ItemsUpserted:
    """Upsert up to 10,000 HMIS pharmacy items by `item_id`, all or nothing."""
    # committed before answering: HMIS may read or audit right after a 200
    async with transaction(runtime.sessions) as session:
        return await service.upsert_items(session, items)


@router.post(
    "/sync",
    status_code=202,
    response_model=RunDetail | RunSummary | SyncSkipped,
    responses={
        200: {"description": "`wait=true`: the finished run; or `skipped` (integration off)"},
        202: {"description": "the run started; poll `GET /inventory/sync/{run_id}`"},
        409: {**_ERROR, "description": "a run is already in progress; `run_id` names it"},
        422: {**_ERROR, "description": "bad date, to_date before from_date, over 366 days"},
    },
)
async def start_sync(
    _key: ReaderKey,
    runtime: RuntimeDep,
    config: ConfigDep,
    response: Response,
    from_date: Annotated[str | None, Query(description="YYYY-MM-DD; given = backfill")] = None,
    to_date: Annotated[str | None, Query(description="YYYY-MM-DD; default today")] = None,
    wait: bool = False,
) -> Any:
    """Start an audit run: forward from the watermark, or a backfill when `from_date` is set."""
    request = service.parse_request(from_date, to_date)
    if not config.enabled:
        response.status_code = 200
        return SyncSkipped()
    started = await service.start_run(runtime, request, config)
    if not wait:
        return await _detail(runtime, started.run.id, summary=True)
    await asyncio.shield(started.task)
    response.status_code = 200
    return await _detail(runtime, started.run.id)


@router.get("/sync", response_model=list[RunSummary])
async def list_runs(
    _key: ReaderKey,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[int | None, Query(description="runs with a smaller run_id")] = None,
    status: Annotated[str | None, Query(pattern="^(running|succeeded|failed)$")] = None,
) -> list[RunSummary]:
    """Audit runs, newest first, with their unmatched materials."""
    return await service.list_runs(session, limit=limit, before=before, status=status)


@router.get("/sync/{run_id}", response_model=RunDetail, responses={404: _ERROR})
async def get_run(
    _key: ReaderKey, session: SessionDep, run_id: Annotated[int, Path()]
) -> RunDetail:
    """One audit run with its findings and the HMIS items received in its window."""
    return await service.get_run(session, run_id)


async def _detail(runtime: RuntimeDep, run_id: int, *, summary: bool = False) -> Any:
    async with runtime.sessions() as session:
        detail = await service.get_run(session, run_id)
    return RunSummary(**detail.model_dump(exclude={"received_items"})) if summary else detail
