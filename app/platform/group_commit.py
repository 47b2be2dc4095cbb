"""Group commit: requests that arrive together are written in one transaction.

Each new bill and each webhook payment used to pay for its own pool checkout, BEGIN, COMMIT and
a round trip per statement; under load that was most of the server's CPU and much of the
database's. Here a request joins the next batch and waits for its commit. There is no timer: a
batch is whatever arrived while the previous one was being written, so a lone request is
written at once and bursts share transactions.

A failed batch is written again one request at a time, so one bad request (a value the database
refuses, a rare conflict) fails only itself. When the connection itself is gone that would only
repeat the failure, so every waiting request gets the error at once (and answers 503).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.platform import metrics

Item = TypeVar("Item")
Result = TypeVar("Result")
Write = Callable[[AsyncConnection, Sequence[Item]], Awaitable[Sequence[Result]]]


class GroupCommit(Generic[Item, Result]):
    """Writes submitted items in shared transactions with `write(connection, items)`, which
    returns one result per item, in order."""

    def __init__(
        self, name: str, engine: AsyncEngine, write: Write[Item, Result], max_batch: int = 64
    ):
        self._batch_size = metrics.GROUP_COMMIT_BATCH.labels(writer=name)
        self._duration = metrics.GROUP_COMMIT_DURATION.labels(writer=name)
        self._engine = engine
        self._write = write
        self._max_batch = max_batch
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # transactions committed or tried, for tests and metrics

    async def submit(self, item: Item) -> Result:
        """Write `item` with whatever else is waiting; its result once committed."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None or self._writer.done():
            # A fresh context: the writer outlives this request and must not log under its id.
            self._writer = asyncio.create_task(self._drain(), context=contextvars.Context())
        return await future

    async def aclose(self) -> None:
        """Finish what was submitted (shutdown)."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def _drain(self) -> None:
        while self._waiting:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            try:
                await self._write_batch(batch)
            except BaseException as error:  # cancelled (shutdown): nobody may wait forever
                batch += self._waiting
                self._waiting = []
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                raise

    async def _write_batch(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        self.batches += 1
        self._batch_size.observe(len(batch))
        try:
            with self._duration.time():
                async with self._engine.begin() as connection:
                    results = await self._write(connection, [item for item, _ in batch])
        except Exception as error:
            if len(batch) == 1 or _connection_lost(error):
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                return
            for one in batch:
                await self._write_batch([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # the request may have been cancelled meanwhile
                future.set_result(result)


def _connection_lost(error: Exception) -> bool:
    if isinstance(error, PoolTimeout | OSError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated
