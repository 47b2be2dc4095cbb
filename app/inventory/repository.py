"""Queries of the pharmacy audit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.inventory.models import (
    FAILED,
    RUNNING,
    InventoryItem,
    InventoryRun,
    InventoryRunMaterial,
    InventorySyncState,
)

CHUNK = 1000
WATERMARK = "watermark"
_UPDATED = ("code", "barcode", "name", "unit", "active", "code_key", "barcode_key", "updated_at")


@dataclass(frozen=True, slots=True)
class ItemMatch:
    """An HMIS item found under a normalised key."""

    key: str
    item_id: str
    active: bool


def _chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


async def existing_item_ids(session: AsyncSession, item_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(item_ids):
        query = select(InventoryItem.item_id).where(InventoryItem.item_id.in_(chunk))
        found.update(await session.scalars(query))
    return found


async def upsert_items(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """One `INSERT ... ON CONFLICT (item_id) DO UPDATE`, executed for all rows at once."""
    if not rows:
        return
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(InventoryItem)
    statement = insert.on_conflict_do_update(
        index_elements=[InventoryItem.item_id],
        set_={name: getattr(insert.excluded, name) for name in _UPDATED},
    )
    await session.execute(statement, rows)


async def items_by_keys(
    session: AsyncSession, field: str, keys: Iterable[str]
) -> dict[str, list[ItemMatch]]:
    """HMIS items whose normalised `code` (or `barcode`) is one of `keys`."""
    column = InventoryItem.barcode_key if field == "barcode" else InventoryItem.code_key
    found: dict[str, list[ItemMatch]] = {}
    for chunk in _chunks(sorted(keys)):
        query = select(column, InventoryItem.item_id, InventoryItem.active).where(column.in_(chunk))
        for key, item_id, active in await session.execute(query):
            found.setdefault(key, []).append(ItemMatch(key, item_id, active))
    return found


async def running_run(session: AsyncSession) -> InventoryRun | None:
    return await session.scalar(select(InventoryRun).where(InventoryRun.status == RUNNING))


async def run_for_slot(session: AsyncSession, slot: datetime) -> InventoryRun | None:
    return await session.scalar(select(InventoryRun).where(InventoryRun.scheduled_for == slot))


async def abandon_running(session: AsyncSession, reason: str) -> int:
    """Fail runs left `running` by a process that stopped (the caller holds the job lock)."""
    result = await session.execute(
        update(InventoryRun)
        .where(InventoryRun.status == RUNNING)
        .values(status=FAILED, error=reason, finished_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def get_run(session: AsyncSession, run_id: int) -> InventoryRun | None:
    return await session.get(InventoryRun, run_id)


async def list_runs(
    session: AsyncSession, *, limit: int, before: int | None = None, status: str | None = None
) -> Sequence[InventoryRun]:
    query = select(InventoryRun).order_by(InventoryRun.id.desc()).limit(limit)
    if before is not None:
        query = query.where(InventoryRun.id < before)
    if status is not None:
        query = query.where(InventoryRun.status == status)
    return (await session.scalars(query)).all()


async def run_materials(
    session: AsyncSession, run_ids: Sequence[int], kinds: Sequence[str]
) -> Sequence[InventoryRunMaterial]:
    if not run_ids:
        return []
    query = (
        select(InventoryRunMaterial)
        .where(InventoryRunMaterial.run_id.in_(run_ids), InventoryRunMaterial.kind.in_(kinds))
        .order_by(InventoryRunMaterial.run_id, InventoryRunMaterial.id)
    )
    return (await session.scalars(query)).all()


async def get_watermark(session: AsyncSession) -> datetime | None:
    state = await session.get(InventorySyncState, WATERMARK)
    return state.value if state is not None else None


async def set_watermark(session: AsyncSession, value: datetime) -> None:
    state = await session.get(InventorySyncState, WATERMARK, with_for_update=True)
    if state is None:
        session.add(InventorySyncState(name=WATERMARK, value=value, updated_at=utcnow()))
    else:
        state.value, state.updated_at = value, utcnow()
