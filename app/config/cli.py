"""`bridge config …`: the settings store from the command line."""

from __future__ import annotations

import asyncio

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from app.config.crypto import SecretBox
from app.config.keys import PREFIX, SPECS
from app.config.models import ConfigEntry
from app.config.service import ConfigService
from app.platform.db import make_engine, make_session_factory, transaction
from app.platform.errors import AppError
from app.platform.settings import Settings


def _service(settings: Settings) -> ConfigService:
    return ConfigService(
        SecretBox(settings.encryption_key.get_secret_value()),
        allow_insecure_urls=settings.allow_insecure_sap_urls,
    )


def _full_key(key: str) -> str:
    return key if key in SPECS else PREFIX + key


def show(settings: Settings, key: str | None, console: Console) -> None:
    async def run() -> dict[str, object]:
        engine = make_engine(settings.database_url)
        try:
            async with make_session_factory(engine)() as session:
                return await _service(settings).masked(session)
        finally:
            await engine.dispose()

    values = asyncio.run(run())
    table = Table("key", "value")
    for name, value in values.items():
        if key is None or name == _full_key(key):
            table.add_row(name, "" if value is None else str(value))
    console.print(table)


def set_value(settings: Settings, key: str, value: str | None, console: Console) -> None:
    async def run() -> str | None:
        engine = make_engine(settings.database_url)
        try:
            async with transaction(make_session_factory(engine)) as session:
                return await _service(settings).set_value(
                    session, _full_key(key), value, actor="cli", request_id=None
                )
        finally:
            await engine.dispose()

    try:
        shown = asyncio.run(run())
    except AppError as exc:
        console.print(f"[red]error:[/red] {exc.detail}", highlight=False)
        raise SystemExit(2) from None
    console.print(f"{_full_key(key)} = {shown}")


def rotate(settings: Settings) -> int:
    """Re-encrypt every secret under the newest key; returns how many were rewritten."""
    box = SecretBox(settings.encryption_key.get_secret_value())

    async def run() -> int:
        engine = make_engine(settings.database_url)
        try:
            async with transaction(make_session_factory(engine)) as session:
                rows = (
                    await session.scalars(select(ConfigEntry).where(ConfigEntry.is_secret))
                ).all()
                for row in rows:
                    row.value = box.rotate(row.value)
                return len(rows)
        finally:
            await engine.dispose()

    return asyncio.run(run())
