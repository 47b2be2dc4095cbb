"""Pharmacy audit routes."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response

from app.config.runtime import ConfigDep
from app.inventory import service
from app.inventory.matching import RULE
from app.inventory.runtime import RuntimeDep
from app.inventory.schemas import (
    MAX_ITEMS_PER_CALL,
    ItemIn,
    ItemsUpserted,
    RunDetail,
    RunSummary,
    SyncSkipped,
)
from app.platform.api_keys import HmisKey, ReaderKey
from app.platform.db import transaction
from app.platform.json_body import JsonRoute
from app.platform.openapi import outcome
from app.platform.runtime import SessionDep

router = APIRouter(prefix="/inventory", tags=["inventory audit"], route_class=JsonRoute)
#: Run ids are 32-bit integers in the database; a larger one is a 422, not a 500.
_MAX_ID = 2**31 - 1

_RUN = {
    "run_id": 12,
    "status": "succeeded",
    "mode": "forward",
    "trigger": "api",
    "from_date": "2024-03-08",
    "to_date": "2024-03-15",
    "plant": None,
    "code_field": "code",
    "started_at": "2024-03-16T02:00:00Z",
    "finished_at": "2024-03-16T02:00:04Z",
    "pages_read": 1,
    "items_read": 49,
    "total_document_items": 47,
    "matched_items": 43,
    "unmatched_items": 4,
    "inactive_items": 0,
    "cancelled_items": 2,
    "ignored_items": 0,
    "unmatched_materials": [
        {
            "material": "MAT-9001",
            "quantity": "20.000",
            "unit": "EA",
            "document_items": 1,
            "documents": ["5000000123/2024/0001"],
            "item_id": None,
        }
    ],
    "inactive_materials": [],
    "watermark": "2024-03-15T23:59:59",
    "warnings": [],
    "error": None,
    "rule": RULE,
}
_RUNNING = _RUN | {
    "status": "running",
    "finished_at": None,
    "pages_read": 0,
    "items_read": 0,
    "total_document_items": 0,
    "matched_items": 0,
    "unmatched_items": 0,
    "cancelled_items": 0,
    "unmatched_materials": [],
    "watermark": "2024-03-07T23:59:59",
}


@router.put(
    "/items",
    response_model=ItemsUpserted,
    responses={
        200: outcome("what changed", {"received": 2, "inserted": 1, "updated": 1}),
        422: outcome(
            "invalid item, duplicate item_id or > 10,000",
            {
                "detail": "item_id '8812' appears twice (items[0] and items[3]); send each "
                "item once",
                "item_id": "8812",
            },
        ),
    },
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
        200: outcome(
            "`wait=true`: the finished run; or `skipped` (integration off)",
            _RUN | {"received_items": []},
            RunDetail | SyncSkipped,
            skipped={"status": "skipped", "reason": "SAP integration is disabled"},
        ),
        202: outcome("the run started; poll `GET /inventory/sync/{run_id}`", _RUNNING),
        409: outcome(
            "a run is already in progress; `run_id` names it",
            {"detail": "an inventory audit is already running (run 12)", "run_id": 12},
        ),
        422: outcome(
            "bad date, to_date before from_date, over 366 days",
            {"detail": "from_date must be a date as YYYY-MM-DD, got '2024-3-1'"},
        ),
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


@router.get(
    "/sync",
    response_model=list[RunSummary],
    responses={200: outcome("runs, newest first", [_RUN])},
)
async def list_runs(
    _key: ReaderKey,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[
        int | None, Query(ge=1, le=_MAX_ID, description="runs with a smaller run_id")
    ] = None,
    status: Annotated[str | None, Query(pattern="^(running|succeeded|failed)$")] = None,
) -> list[RunSummary]:
    """Audit runs, newest first, with their unmatched materials."""
    return await service.list_runs(session, limit=limit, before=before, status=status)


@router.get(
    "/sync/{run_id}",
    response_model=RunDetail,
    responses={
        200: outcome(
            "the run, its findings and the HMIS items received",
            _RUN
            | {
                "received_items": [
                    {
                        "item_id": "8812",
                        "material": "MED-001",
                        "quantity": "100.000",
                        "unit": "TAB",
                        "document_items": 2,
                    }
                ]
            },
        ),
        404: outcome("no such run", {"detail": "no inventory audit run 12"}),
    },
)
async def get_run(
    _key: ReaderKey, session: SessionDep, run_id: Annotated[int, Path(ge=1, le=_MAX_ID)]
) -> RunDetail:
    """One audit run with its findings and the HMIS items received in its window."""
    return await service.get_run(session, run_id)


async def _detail(runtime: RuntimeDep, run_id: int, *, summary: bool = False) -> Any:
    async with runtime.sessions() as session:
        detail = await service.get_run(session, run_id)
    return RunSummary(**detail.model_dump(exclude={"received_items"})) if summary else detail
