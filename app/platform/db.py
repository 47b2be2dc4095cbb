"""Declarative base, engine and session factories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


SessionFactory = async_sessionmaker[AsyncSession]


def make_engine(url: str) -> AsyncEngine:
    """An engine tuned per backend: WAL and a busy timeout for SQLite, a pool for PostgreSQL."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # no pre-ping: it costs a round trip per checkout; a dropped connection fails one unit of
    # work, invalidates the pool, and that work is retried (HTTP 503 or the outbox lease).
    # A fixed pool, no overflow: overflow connections are closed as soon as they are returned,
    # so a busy replica kept opening and closing them (about 130 in 5,000 queued pushes, each
    # a PostgreSQL backend to start); now a request waits for a pooled one instead. Three
    # replicas stay well under PostgreSQL's default 100 connections.
    return create_async_engine(url, pool_size=25, max_overflow=0)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def statement(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session in autocommit mode for one self-contained statement: no BEGIN/COMMIT trips."""
    async with AsyncSession(autocommit(engine), expire_on_commit=False) as session:
        yield session


def rows_parameter(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | list[dict[str, Any]]:
    """Parameters for a multi-row INSERT: one row as a plain execute, whose compiled form is
    cached; several as a list, which SQLAlchemy renders as one INSERT with many VALUES."""
    return rows[0] if len(rows) == 1 else list(rows)


@lru_cache(maxsize=8)
def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The engine without BEGIN/COMMIT: for work that is one statement, atomic by itself."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


@asynccontextmanager
async def transaction(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits on success, rolls back on any error."""
    async with factory() as session, session.begin():
        yield session
