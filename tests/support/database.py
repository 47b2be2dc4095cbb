"""Throwaway databases built by the real migrations."""

from __future__ import annotations

import os
import uuid

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.shell.migrate import upgrade

PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


async def postgres_available() -> bool:
    try:
        connection = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await connection.close()
    return True


async def create_postgres() -> str:
    """A new, migrated PostgreSQL database; returns its SQLAlchemy URL."""
    name = f"bridge_test_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{base}/{name}"
    await upgrade(url)
    return url


async def drop_postgres(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def create_sqlite(directory: str) -> str:
    url = f"sqlite+aiosqlite:///{directory}/bridge-{uuid.uuid4().hex[:8]}.db"
    await upgrade(url)
    return url


async def truncate_all(url: str) -> None:
    """Empty every table (except Alembic's) so no test sees another's rows."""
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        if url.startswith("postgresql"):
            rows = await connection.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname='public' "
                    "AND tablename <> 'alembic_version'"
                )
            )
            names = ", ".join(f'"{r[0]}"' for r in rows)
            if names:
                await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            rows = await connection.execute(
                text(
                    "SELECT name FROM sqlite_master WHERE type='table' "
                    "AND name NOT IN ('alembic_version') AND name NOT LIKE 'sqlite_%'"
                )
            )
            for (name,) in rows.all():
                await connection.execute(text(f'DELETE FROM "{name}"'))
    await engine.dispose()
