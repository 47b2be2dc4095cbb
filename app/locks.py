"""Named job locks: one holder across every replica (PostgreSQL) or within the process (SQLite).

    async with job_lock(runtime, "inventory-sync") as acquired:
        if not acquired:
            return  # another replica (or task) is running it

On PostgreSQL the lock is a session-level `pg_try_advisory_lock` taken on a dedicated pooled
connection that is kept, outside any transaction, until the block ends; if the process dies the
server drops the lock with the connection. SQLite has no such lock, so a process-wide registry
stands in: safe for the single process SQLite deployments run as, not across processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Executable, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.logging import get_logger

_log = get_logger("app.locks")
_held: set[tuple[str, str]] = set()
_guard = threading.Lock()


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for `name`."""
    digest = hashlib.blake2b(f"hmis-sap-bridge:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@asynccontextmanager
async def job_lock(owner: Any, name: str) -> AsyncIterator[bool]:
    """Try to take the lock `name` without waiting; yields whether this caller holds it.

    `owner` is the `Runtime` or an `AsyncEngine`.
    """
    engine: AsyncEngine = getattr(owner, "engine", owner)
    if engine.dialect.name == "postgresql":
        async with _advisory_lock(engine, name) as acquired:
            yield acquired
    else:
        async with _process_lock(engine, name) as acquired:
            yield acquired


@asynccontextmanager
async def _advisory_lock(engine: AsyncEngine, name: str) -> AsyncIterator[bool]:
    key = lock_key(name)
    async with engine.connect() as conn:
        acquired = bool(await conn.scalar(select(func.pg_try_advisory_lock(key))))
        await conn.commit()  # the lock is session-level: no transaction stays open while held
        try:
            yield acquired
        finally:
            if acquired:
                await unlock_or_discard(conn, select(func.pg_advisory_unlock(key)), {}, name)


async def unlock_or_discard(
    conn: AsyncConnection, unlock: Executable, params: dict[str, Any], name: str
) -> None:
    """Run the `unlock` statement; a connection that may still hold the lock is closed."""
    try:
        await conn.execute(unlock, params)
        await conn.commit()
    except Exception:
        # a connection that may still hold the lock must never go back to the pool
        _log.warning("lock.release_failed", lock=name)
        await conn.invalidate()
    except BaseException:  # cancelled while unlocking: same reason, then let it through
        await asyncio.shield(conn.invalidate())
        raise


@asynccontextmanager
async def _process_lock(engine: AsyncEngine, name: str) -> AsyncIterator[bool]:
    slot = (str(engine.url), name)
    with _guard:
        acquired = slot not in _held
        _held.add(slot)
    try:
        yield acquired
    finally:
        if acquired:
            with _guard:
                _held.discard(slot)
