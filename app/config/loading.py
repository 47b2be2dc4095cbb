"""The business settings for a CLI command: read once from the database, or one clear line."""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import SQLAlchemyError

from app.config.crypto import SecretBox, UndecryptableSecret
from app.config.failures import describe
from app.config.service import BridgeConfig, ConfigService
from app.platform.db import make_engine, make_session_factory
from app.platform.settings import Settings


class SettingsUnreadable(Exception):
    """What stops the settings being read, in one line, and the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def load_config(settings: Settings, *, bad_secret_code: int = 2) -> BridgeConfig:
    async def load() -> BridgeConfig:
        engine = make_engine(settings.database_url)
        service = ConfigService(
            SecretBox(settings.encryption_key.get_secret_value()),
            allow_insecure_urls=settings.allow_insecure_sap_urls,
        )
        try:
            async with make_session_factory(engine)() as session:
                return await service.load(session)
        except (SQLAlchemyError, OSError):
            # aiosqlite stops the worker thread of a connection that failed without waiting
            # for it; a loop closed under that thread makes it print a traceback
            await asyncio.sleep(0.1)
            raise
        finally:
            await engine.dispose()

    try:
        return asyncio.run(load())
    except UndecryptableSecret as exc:
        raise SettingsUnreadable(
            describe(exc, settings.database_url).message, bad_secret_code
        ) from None
    except (SQLAlchemyError, OSError) as exc:
        failure = describe(exc, settings.database_url)
        raise SettingsUnreadable(failure.message, failure.exit_code) from None
