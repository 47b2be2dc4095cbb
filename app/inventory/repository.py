"""Queries of the pharmacy audit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, String, any_, bindparam, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.inventory.models import (
    FAILED,
    RUNNING,
    InventoryItem,
    InventoryRun,
    InventoryRunMaterial,
    InventorySyncState,
)
from app.platform.db import utcnow

CHUNK = 1000
WATERMARK = "watermark"
_COLUMNS = (
    "item_id",
    *("code", "barcode", "name", "unit", "active", "code_key", "barcode_key", "updated_at"),
)
_PG_TYPES = (
    "varchar",
    "varchar",
    "varchar",
    "varchar",
    "varchar",
    "boolean",
    "varchar",
    "varchar",
    "timestamptz",
)
# built from the constant column names above only, never from input
_PG_UPSERT = text(
    f"INSERT INTO inventory_items ({', '.join(_COLUMNS)}) SELECT * FROM unnest("  # noqa: S608
    + ", ".join(f"CAST(:{c} AS {t}[])" for c, t in zip(_COLUMNS, _PG_TYPES, strict=True))
    + ") ON CONFLICT (item_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])
)
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


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _member(session: AsyncSession, column: Any, values: Sequence[str]) -> Any:
    """`column IN (...)`; on PostgreSQL `column = ANY(array)`, one parameter whatever the size,
    so the plan does not go generic (and sequential) after a few large IN lists."""
    if _dialect(session) == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(String)))
    return column.in_(values)


async def existing_item_ids(session: AsyncSession, item_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(item_ids, CHUNK if _dialect(session) == "sqlite" else 50_000):
        query = select(InventoryItem.item_id).where(_member(session, InventoryItem.item_id, chunk))
        found.update(await session.scalars(query))
    return found


async def upsert_items(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert or update `rows` by item_id in one statement: on PostgreSQL one
    `INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO UPDATE` (one round trip, nothing
    compiled per row); on SQLite the same upsert prepared once and executed for all rows."""
    if not rows:
        return
    if _dialect(session) == "postgresql":
        await session.execute(_PG_UPSERT, {c: [r[c] for r in rows] for c in _COLUMNS})
        return
    insert = sqlite.insert(InventoryItem)
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
            found.setdefault(str(key), []).append(ItemMatch(str(key), item_id, active))
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
