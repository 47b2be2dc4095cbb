"""The group-commit writer itself: nobody waits forever when it stops."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

from app.platform.db import make_engine
from app.platform.group_commit import GroupCommit


async def test_a_stopped_writer_fails_every_waiting_request(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'writer.db'}")
    writing = asyncio.Event()

    async def write(_connection: AsyncConnection, items: Sequence[int]) -> list[int]:
        writing.set()
        await asyncio.sleep(3600)  # the database hangs
        return list(items)

    writer = GroupCommit("test", engine, write)
    first = asyncio.create_task(writer.submit(1))
    await writing.wait()
    waiting = asyncio.create_task(writer.submit(2))  # queued behind the hanging batch
    await asyncio.sleep(0)
    assert writer._writer is not None
    writer._writer.cancel()  # shutdown
    gathered = asyncio.gather(first, waiting, return_exceptions=True)
    answers = await asyncio.wait_for(gathered, 10)  # not forever
    assert [type(a) for a in answers] == [asyncio.CancelledError] * 2
    await engine.dispose()
