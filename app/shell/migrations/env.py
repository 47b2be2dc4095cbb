"""Async Alembic environment: the URL comes from the caller or DATABASE_URL, never the ini."""

from __future__ import annotations

import asyncio
import os
import warnings

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SAWarning
from sqlalchemy.ext.asyncio import create_async_engine

from app.platform.db import Base
from app.shell.models import load_all

load_all()
# SQLite's batch migrations reflect each table they copy; the expression index on `bills` is
# re-created by its own migration step, so the reflection warning only alarms whoever migrates
warnings.filterwarnings(
    "ignore", "Skipped unsupported reflection of expression-based index", SAWarning
)
target_metadata = Base.metadata


def _url() -> str:
    url = context.config.attributes.get("url") or os.environ.get("DATABASE_URL")
    if not url:  # never a default file: a mistyped variable must not migrate a new, empty one
        raise SystemExit("DATABASE_URL is not set: it names the database to migrate")
    return str(url)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_async())
