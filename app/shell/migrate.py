"""Run the Alembic migrations programmatically (CLI, tests, demo).

The migrations ship inside the package (`app/shell/migrations`), so `bridge migrate` works from an
installed wheel; `alembic.ini` at the checkout's root is only for writing new revisions.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.attributes["url"] = url
    return config


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision`."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, url, revision)
    finally:
        await engine.dispose()


def _upgrade(connection, url: str, revision: str) -> None:  # type: ignore[no-untyped-def]
    config = alembic_config(url)
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def is_current(engine: AsyncEngine) -> bool:
    """True when the database is at the newest revision the code knows."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    expected = set(ScriptDirectory.from_config(alembic_config(str(engine.url))).get_heads())
    async with engine.connect() as connection:
        current = await connection.run_sync(
            lambda c: set(MigrationContext.configure(c).get_current_heads())
        )
    return current == expected
