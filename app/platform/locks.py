"""Named job locks: one holder across every replica (PostgreSQL) or every process on one file
(SQLite).

    async with job_lock(runtime, "inventory-sync") as acquired:
        if not acquired:
            return  # another replica, process or task is running it

On PostgreSQL the lock is a session-level `pg_try_advisory_lock` taken on a dedicated pooled
connection that is kept, outside any transaction, until the block ends; if the process dies the
server drops the lock with the connection.

SQLite has no such lock, so two things stand in. A process-wide registry answers tasks of the
same process (and is all a `:memory:` database, private to its process, needs). Across
processes, `flock(LOCK_EX | LOCK_NB)` on a lock file beside the database, `<db>.<name>.lock`:
the kernel drops it when the holder's descriptor closes, so a killed process leaves no stale
lock. The file itself stays (removing it would let a process lock a file another has just
unlinked); its presence means nothing. It is opened close-on-exec, so a child process never
inherits the lock.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import re
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from sqlalchemy import Executable, func, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.platform.errors import AppError
from app.platform.logging import get_logger

_log = get_logger("app.locks")
_held: set[tuple[str, str]] = set()
_guard = threading.Lock()
_UNSAFE_IN_FILE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for `name`."""
    digest = hashlib.blake2b(f"hmis-sap-bridge:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@asynccontextmanager
async def job_lock(owner: Any, name: str) -> AsyncIterator[bool]:
    """Try to take the lock `name` without waiting; yields whether this caller holds it.

    `owner` is the `Runtime` or an `AsyncEngine`.
    """
    # not getattr(owner, "engine"): an AsyncEngine has `.engine` too, its synchronous Engine
    engine: AsyncEngine = owner if isinstance(owner, AsyncEngine) else owner.engine
    if engine.dialect.name == "postgresql":
        async with _advisory_lock(engine, name) as acquired:
            yield acquired
    else:
        async with _process_lock(engine, name) as acquired:
            with _file_lock(sqlite_lock_path(engine.url, name), acquired) as held:
                yield held


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


def sqlite_lock_path(url: URL, name: str) -> str | None:
    """The lock file of job `name` beside the SQLite database of `url`; None for `:memory:`."""
    database = (url.database or "").removeprefix("file:")
    if database in ("", ":memory:") or url.query.get("mode") == "memory":
        return None
    return f"{database}.{_UNSAFE_IN_FILE_NAME.sub('_', name)}.lock"


@contextmanager
def _file_lock(path: str | None, wanted: bool) -> Iterator[bool]:
    """`flock` on `path` when `wanted` (the registry said yes) and there is a file to lock."""
    if not wanted or path is None:
        yield wanted
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # close-on-exec, Python's default
    except OSError as exc:
        raise _unlockable(path, exc) from None
    try:
        yield _try_flock(fd, path)
    finally:
        os.close(fd)  # which releases the lock


def _try_flock(fd: int, path: str) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # another process holds it
        return False
    except OSError as exc:  # e.g. ENOLCK on a network file system
        raise _unlockable(path, exc) from None
    return True


def _unlockable(path: str, exc: OSError) -> AppError:
    return AppError(
        f"cannot take the job lock {path} ({exc.strerror or exc}): the SQLite database's "
        "folder must be writable and on a local disk",
        status_code=503,
    )
