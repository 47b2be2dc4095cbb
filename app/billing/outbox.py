"""The background worker that drains bills owed to SAP, on any number of replicas."""

from __future__ import annotations

import asyncio
import contextlib

from app.billing import delivery, repository
from app.billing.runtime import BillingRuntime
from app.platform.db import statement, transaction, utcnow
from app.platform.logging import get_logger, new_request_id, request_id_var
from app.sap.circuit import CLOSED

_log = get_logger("app.billing.outbox")


class OutboxWorker:
    """Keeps SAP's `Max Concurrent Calls` busy with due bills, claiming more as deliveries end.

    Claims are leases in the database (SKIP LOCKED on PostgreSQL), so replicas never deliver
    the same bill at once and a crashed replica's bills are picked up when its lease expires.
    """

    def __init__(self, runtime: BillingRuntime) -> None:
        self.runtime = runtime
        self._changed = asyncio.Event()  # a push was queued or a delivery slot freed
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._recoveries_seen = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox")

    def wake(self) -> None:
        """A bill became due now (e.g. a push was queued)."""
        self._changed.set()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in self._inflight:
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _run(self) -> None:
        poll = self.runtime.settings.outbox_poll_seconds
        while True:
            self._changed.clear()  # before claiming, so a slot freed meanwhile is not missed
            try:
                claimed = await self._fill()
            except Exception:
                _log.exception("outbox.claim_failed")
                claimed = 0
            if claimed:
                continue  # work was found: fill any slot still free before waiting
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await self._changed.wait()

    async def _fill(self) -> int:
        """Claim due bills into the free delivery slots; returns how many were claimed."""
        config = await self.runtime.config.snapshot(self.runtime.sessions)
        breaker = self.runtime.sap.breaker
        if not config.enabled or config.missing_for_sap() or breaker.refusing():
            return 0
        if breaker.recoveries != self._recoveries_seen:
            await self._sap_is_back(breaker.recoveries)
        # twice the SAP slots: while some deliveries record outcomes, others already wait for
        # SAP, so SAP stays busy; SapClient still caps the calls in flight at the setting
        free = 2 * config.integer("Max Concurrent Calls") - len(self._inflight)
        if breaker.state != CLOSED or breaker.failing():
            # a probe is due, or the last call failed: one delivery at a time finds out whether
            # SAP is back (or down, opening the circuit) without a burst of failing calls
            free = min(free, 1 - len(self._inflight))
        if free <= 0:
            return 0
        now, lease_id = utcnow(), delivery.new_lease_id()
        async with statement(self.runtime.engine) as session:
            ids = await repository.claim_due(
                session, now, delivery.lease_until(self.runtime, now), free, lease_id
            )
        for bill_id in ids:
            task = asyncio.create_task(self._deliver(bill_id, lease_id))
            self._inflight.add(task)
            task.add_done_callback(self._slot_freed)
        return len(ids)

    def _slot_freed(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._changed.set()

    async def _sap_is_back(self, recoveries: int) -> None:
        """SAP answered again: bills that waited out SAP's outage are due now, not at backoff."""
        async with transaction(self.runtime.sessions) as session:
            count = await repository.make_due_now(session, utcnow())
        self._recoveries_seen = recoveries
        _log.info("outbox.sap_recovered", bills_due_now=count)

    async def _deliver(self, bill_id: str, lease_id: str) -> None:
        # its own request id: on every log line of the attempt and on its SAP calls
        request_id_var.set(f"outbox-{new_request_id()}")
        try:
            await delivery.attempt(self.runtime, bill_id, lease_id)
        except Exception:  # e.g. the database dropped: the lease expires and the bill is retried
            _log.exception("outbox.delivery_failed", bill_id=bill_id)
