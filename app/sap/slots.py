"""`Max Concurrent Calls` across every replica that shares one PostgreSQL database.

The setting caps what SAP sees, so three replicas must not each send their own four calls.
Each call in flight holds one of `limit` session-level advisory locks `(namespace, slot)` on a
pooled connection that it keeps, outside any transaction, until SAP has answered. A replica
that dies drops its locks with its connections, so no slot outlives its holder. A released
slot is announced with NOTIFY: a replica waiting for one tries again at once, and polls only
as a fallback (a holder that died announces nothing).

SQLite deployments are one process, where the in-process semaphore alone is the cap.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.platform.db import autocommit
from app.platform.locks import lock_key, unlock_or_discard
from app.platform.logging import get_logger

_log = get_logger("app.sap.slots")

CHANNEL = "bridge_sap_slots"
#: the two-key advisory-lock space, apart from the one-key space of the job locks
NAMESPACE = lock_key("sap-call-slots") >> 32
#: how long a waiter sleeps when no NOTIFY comes: a slot whose holder died is free again
POLL_SECONDS = 0.05

# A Limit over a function scan stops at the first row that passes, so this takes at most one
# lock; slots already held (by anyone) fail the try and are skipped.
_TAKE = text(
    "SELECT s FROM generate_series(0, :limit - 1) AS s "
    "WHERE pg_try_advisory_lock(:namespace, s) LIMIT 1"
)
_GIVE_BACK = text(f"SELECT pg_advisory_unlock(:namespace, :slot), pg_notify('{CHANNEL}', '')")


class ClusterSlots:
    """At most `limit` SAP calls in flight across the replicas of one database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = autocommit(engine)
        self._freed = asyncio.Event()
        self._turn = asyncio.Lock()  # one waiter per process asks the database; others queue
        self._listener: asyncpg.Connection | None = None
        self._releasing: set[asyncio.Task[None]] = set()
        self.waits = 0  # takes that found every slot held (for tests and tuning)

    async def take(
        self,
        limit: int,
        give_up: Callable[[], bool] = lambda: False,
        on_wait: Callable[[], None] | None = None,
    ) -> HeldSlot | None:
        """Wait for a free slot, or None once `give_up()` says the call is no longer wanted;
        `on_wait` is called once if every slot is held at first. The caller bounds the wait and
        gives the slot back with `async with`."""
        return await self._held(lambda conn: self._take(conn, limit, give_up, on_wait))

    async def try_take(self, limit: int) -> HeldSlot | None:
        """A free slot now, or None at once when every slot is held."""
        return await self._held(lambda conn: _try_take(conn, limit))

    async def _held(
        self, take: Callable[[AsyncConnection], Awaitable[int | None]]
    ) -> HeldSlot | None:
        conn = await self._engine.connect()
        try:
            slot = await take(conn)
        except BaseException:
            await asyncio.shield(conn.close())
            raise
        if slot is None:
            await conn.close()
            return None
        return HeldSlot(self, conn, slot)

    def give_back(self, held: HeldSlot) -> None:
        """Release in the background: the caller has SAP's answer and need not wait for it."""
        task = asyncio.create_task(held.release())
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def aclose(self) -> None:
        await asyncio.gather(*self._releasing, return_exceptions=True)
        if self._listener is not None:
            await self._listener.close()
            self._listener = None

    async def _take(
        self,
        conn: AsyncConnection,
        limit: int,
        give_up: Callable[[], bool],
        on_wait: Callable[[], None] | None,
    ) -> int | None:
        if on_wait is not None and self._turn.locked():  # behind this process's own waiter
            on_wait()
            on_wait = None
        async with self._turn:
            while not give_up():
                self._freed.clear()  # before trying, so a release meanwhile is not missed
                slot = await _try_take(conn, limit)
                if slot is not None:
                    return slot
                if on_wait is not None:
                    on_wait()
                    on_wait = None
                self.waits += 1
                await self._listen()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_SECONDS):
                        await self._freed.wait()
            return None

    async def _listen(self) -> None:
        """Subscribe to releases on a connection of its own (LISTEN needs one kept open)."""
        if self._listener is not None and not self._listener.is_closed():
            return
        dsn = self._engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            listener = await asyncpg.connect(dsn)
            await listener.add_listener(CHANNEL, self._on_release)
        except (OSError, asyncpg.PostgresError) as exc:
            _log.warning("sap.slots.listen_failed", error=type(exc).__name__)
            return  # polling alone still finds free slots
        self._listener = listener

    def _on_release(self, *_: Any) -> None:
        self._freed.set()


class HeldSlot:
    """A slot and the connection whose session holds it; `async with` gives it back."""

    def __init__(self, owner: ClusterSlots, conn: AsyncConnection, slot: int) -> None:
        self.owner, self.conn, self.slot = owner, conn, slot

    async def __aenter__(self) -> HeldSlot:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.owner.give_back(self)

    async def release(self) -> None:
        try:
            await unlock_or_discard(
                self.conn, _GIVE_BACK, {"namespace": NAMESPACE, "slot": self.slot}, "sap-slot"
            )
        finally:
            await asyncio.shield(self.conn.close())


async def _try_take(conn: AsyncConnection, limit: int) -> int | None:
    try:
        slot = await conn.scalar(_TAKE, {"limit": limit, "namespace": NAMESPACE})
    except BaseException:
        # the lock may have been taken without our learning which: never pool this connection
        await asyncio.shield(conn.invalidate())
        raise
    return None if slot is None else int(slot)
