"""Queries of the settings store."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config.models import ConfigAudit, ConfigEntry, RevenueRule


async def all_entries(session: AsyncSession) -> dict[str, ConfigEntry]:
    rows = await session.scalars(select(ConfigEntry))
    return {row.key: row for row in rows}


async def get_entry(session: AsyncSession, key: str) -> ConfigEntry | None:
    return await session.get(ConfigEntry, key, with_for_update=True)


async def revenue_rules(session: AsyncSession) -> Sequence[RevenueRule]:
    return (await session.scalars(select(RevenueRule).order_by(RevenueRule.department))).all()


async def replace_revenue_rules(session: AsyncSession, rules: list[RevenueRule]) -> None:
    await session.execute(delete(RevenueRule))
    session.add_all(rules)


async def audit_page(
    session: AsyncSession, key: str | None, before_id: int | None, limit: int
) -> Sequence[ConfigAudit]:
    """Changes newest first (by id: the order they were written), before `before_id`."""
    statement = select(ConfigAudit).order_by(ConfigAudit.id.desc()).limit(limit)
    if key is not None:
        statement = statement.where(ConfigAudit.key == key)
    if before_id is not None:
        statement = statement.where(ConfigAudit.id < before_id)
    return (await session.scalars(statement)).all()
