"""Payments found in SAP: the clearing sync and the resolution of business events.

Both ask SAP (`app.sap.clearing`) outside any transaction, turn the answer into payment facts
and record each fact in its own short transaction through `service.record`, so the inbox and
payment keys make every SAP payment count once however often, and by however many replicas,
it is found.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from app.billing.mapping import receivable_line
from app.billing.models import Bill
from app.config.service import BridgeConfig
from app.payments import metrics, repository, service
from app.payments.models import COUNTED, FROM_SAP, MISMATCH, SOURCE_EVENT, SOURCE_SYNC
from app.payments.runtime import PaymentsRuntime
from app.payments.schemas import ClearingSyncResult
from app.payments.settlement import Paid, Receivable, settle
from app.platform.db import transaction, utcnow
from app.platform.errors import ConflictError
from app.platform.locks import job_lock
from app.platform.logging import get_logger
from app.sap import clearing as sap_clearing
from app.sap.clearing import DocumentKey, LedgerItem
from app.sap.errors import SapError
from app.sap.journal_entry import entry_from_json

_log = get_logger("app.payments.clearing")
LOCK = "payments-clearing-sync"
TASKS = "payments.tasks"
RETENTION = timedelta(days=30)  # inbox ids are kept well past the senders' 3 days of retries
_EVENTS_PER_SYNC = 500
#: bills paid in full are checked again for this long: SAP may reset a clearing afterwards
RECHECK = timedelta(days=30)


@dataclass(frozen=True)
class OpenBill:
    """What the clearing check needs of a bill, detached from any session."""

    bill_id: str
    reference: str
    key: DocumentKey
    receivable: Receivable

    @classmethod
    def of(cls, bill: Bill, config: BridgeConfig) -> OpenBill:
        document = DocumentKey(
            bill.company_code, bill.fiscal_year or "", bill.sap_document_number or ""
        )
        return cls(bill.bill_id, bill.reference, document, _receivable_of(bill, config))


def _receivable_of(bill: Bill, config: BridgeConfig) -> Receivable:
    """The receivable line the bill posted: from its stored entry, or for a bill recorded
    before entries were stored, as the mapping chooses it (payer's customer, AR settings)."""
    if bill.posted_entry:
        kind, account, amount = receivable_line(entry_from_json(bill.posted_entry))
        return Receivable(kind, account, amount)
    payer = (bill.payload or {}).get("payer") or {}
    if customer := payer.get("customer") or config.get("AR Customer"):
        return Receivable("D", customer, Decimal(bill.net_total))
    return Receivable("S", config.get("AR Account") or None, Decimal(bill.net_total))


# --- from SAP's items to payment facts ------------------------------------------------------


def derive_facts(
    bills: Sequence[OpenBill], own_items: Iterable[LedgerItem], referencing: Iterable[LedgerItem]
) -> list[service.PaymentFact]:
    """Every payment SAP shows for these bills (rules: `app.payments.settlement`)."""
    own_by: dict[DocumentKey, list[LedgerItem]] = {}
    for item in own_items:
        own_by.setdefault(item.document, []).append(item)
    referencing_by: dict[DocumentKey, list[LedgerItem]] = {}
    for item in referencing:
        if item.invoice is not None:
            referencing_by.setdefault(item.invoice, []).append(item)
    facts: list[service.PaymentFact] = []
    for bill in bills:
        found = settle(
            bill.key, bill.receivable, own_by.get(bill.key, []), referencing_by.get(bill.key, [])
        )
        facts += [_fact(bill, paid, found.receivable_amount) for paid in found.payments]
    return facts


def _fact(bill: OpenBill, paid: Paid, receivable: Decimal | None) -> service.PaymentFact:
    return service.PaymentFact(
        company_code=paid.payment.company_code,
        payment_document=paid.payment.document,
        payment_fiscal_year=paid.payment.fiscal_year,
        bill_reference=bill.reference,
        bill_id=bill.bill_id,
        sap_document_number=bill.key.document,
        amount=paid.amount,
        currency=paid.currency,
        posting_date=paid.posting_date,
        receivable_amount=receivable,
    )


async def check_bills(
    runtime: PaymentsRuntime,
    config: BridgeConfig,
    bills: Sequence[OpenBill],
    *,
    source: str,
    parent: int | None = None,
) -> int:
    """Ask SAP what paid these bills and record what is new; how many payments were new."""
    if not bills:
        return 0
    keys = [b.key for b in bills]
    own_items = await sap_clearing.document_items(runtime.sap, config, keys)
    referencing = await sap_clearing.invoice_items(runtime.sap, config, keys)
    recorded = 0
    facts = derive_facts(bills, own_items, referencing)
    await _flag_vanished(runtime, bills, facts)
    for fact in facts:
        event = service.clearing_event(fact, source, parent)
        async with transaction(runtime.sessions) as session:
            outcome = await service.record(session, fact, source=source, event=event)
        if outcome.status != service.ALREADY:
            recorded += 1
            _log.info(
                "payment.found_in_sap",
                source=source,
                bill_id=fact.bill_id,
                payment_document=fact.payment_document,
                status=outcome.status,
            )
    return recorded


VANISHED = "SAP no longer shows this payment (reversed, or its clearing reset)"


async def _flag_vanished(
    runtime: PaymentsRuntime, bills: Sequence[OpenBill], facts: Sequence[service.PaymentFact]
) -> None:
    """Payments SAP itself reported for these bills that it no longer shows stop counting:
    flagged `mismatch`, for finance to see, never deleted."""
    shown = {(f.bill_id, f.company_code, f.payment_document, f.payment_fiscal_year) for f in facts}
    async with transaction(runtime.sessions) as session:
        stored = await repository.for_bills(session, [b.bill_id for b in bills])
        for bill_id, payments in stored.items():
            for payment in payments:
                key = (
                    bill_id,
                    payment.company_code,
                    payment.payment_document,
                    payment.payment_fiscal_year,
                )
                if payment.status in COUNTED and payment.source in FROM_SAP and key not in shown:
                    payment.status, payment.updated_at = MISMATCH, utcnow()
                    payment.reasons = [*(payment.reasons or []), VANISHED]
                    _log.warning(
                        "payment.vanished_in_sap",
                        bill_id=bill_id,
                        payment_document=payment.payment_document,
                    )


# --- business events ------------------------------------------------------------------------


def resolve_soon(runtime: PaymentsRuntime, event_id: int) -> None:
    """Resolve a stored business event in the background; the sync sweeps what a crash left."""
    tasks: set[asyncio.Task[Any]] = runtime.extras.setdefault(TASKS, set())
    task = asyncio.create_task(_resolve_quietly(runtime, event_id))
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _resolve_quietly(runtime: PaymentsRuntime, event_id: int) -> None:
    try:
        await resolve_event(runtime, event_id)
    except Exception:
        _log.warning("payment.business_event.resolve_failed", event_id=event_id, exc_info=True)


async def resolve_event(runtime: PaymentsRuntime, event_id: int) -> bool:
    """Ask SAP what the event's journal entry paid or cleared and record it; True when done."""
    config = await runtime.config.snapshot(runtime.sessions)
    now = utcnow()
    lease = now + timedelta(seconds=3 * config.integer("Timeout Seconds") + 30)
    async with transaction(runtime.sessions) as session:
        if not await repository.claim_event(session, event_id, now, lease):
            return False
        event = await repository.get_event(session, event_id)
    assert event is not None
    if not config.enabled:
        await _postpone(runtime, event_id, event.attempts, "SAP integration is disabled")
        return False
    document = DocumentKey(
        event.company_code or "", event.fiscal_year or "", event.accounting_document or ""
    )
    try:
        touched = await sap_clearing.touched_documents(runtime.sap, config, document)
        async with runtime.sessions() as session:
            found = await repository.bills_by_documents(
                session, [(k.company_code, k.fiscal_year, k.document) for k in touched]
            )
        bills = [OpenBill.of(b, config) for b in found]
        recorded = await check_bills(runtime, config, bills, source=SOURCE_EVENT, parent=event_id)
    except SapError as exc:
        await _postpone(runtime, event_id, event.attempts, exc.detail)
        return False
    outcome = (
        f"{recorded} new payment(s) for bill(s) {', '.join(b.bill_id for b in bills)}"
        if bills
        else f"journal entry {document.document}/{document.fiscal_year} pays no bridge bill"
    )
    async with transaction(runtime.sessions) as session:
        await repository.finish_event(session, event_id, outcome, utcnow())
    _log.info("payment.business_event.resolved", event_id=event_id, outcome=outcome)
    return True


async def _postpone(runtime: PaymentsRuntime, event_id: int, attempts: int, error: str) -> None:
    delay = timedelta(seconds=min(30 * 2 ** min(attempts, 7), 3600))
    async with transaction(runtime.sessions) as session:
        await repository.postpone_event(session, event_id, error, utcnow() + delay)
    _log.warning("payment.business_event.postponed", event_id=event_id, error=error)


async def resolve_due_events(runtime: PaymentsRuntime) -> int:
    """Resolve pending business events (left by a crash or a SAP outage)."""
    async with runtime.sessions() as session:
        due = await repository.due_events(session, utcnow(), _EVENTS_PER_SYNC)
    resolved = 0
    for event_id in due:
        resolved += await resolve_event(runtime, event_id)
    return resolved


async def shutdown(runtime: PaymentsRuntime) -> None:
    """Cancel resolutions in flight; their events stay pending for the next sweep."""
    tasks: set[asyncio.Task[Any]] = set(runtime.extras.get(TASKS, ()))
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


# --- the clearing sync ----------------------------------------------------------------------


async def clearing_sync(
    runtime: PaymentsRuntime, *, trigger: str, slot: datetime | None = None
) -> ClearingSyncResult:
    """One sync: pending events, re-matches, then SAP's clearings of open bills."""
    try:
        result = await _sync(runtime, trigger, slot)
    except ConflictError:  # a manual request while a sync runs
        metrics.record_clearing_sync("skipped")
        raise
    except Exception:  # the database or a bug, not only SAP: the failing alert must hear of it
        metrics.record_clearing_sync("failed")
        raise
    metrics.record_clearing_sync(
        result.status, recorded=result.payments_recorded, rematched=result.payments_rematched
    )
    return result


async def _sync(
    runtime: PaymentsRuntime, trigger: str, slot: datetime | None
) -> ClearingSyncResult:
    config = await runtime.config.snapshot(runtime.sessions)
    if not config.enabled:
        return ClearingSyncResult(status="skipped", reason="SAP integration is disabled")
    async with job_lock(runtime, LOCK) as acquired:
        if not acquired:
            if slot is None:
                raise ConflictError("a clearing sync is already running", status="running")
            return ClearingSyncResult(status="skipped", reason="another replica is syncing")
        async with transaction(runtime.sessions) as session:
            run_id = await repository.start_run(
                session,
                {"slot": slot, "trigger": trigger, "status": "running", "started_at": utcnow()},
            )
        if run_id is None:
            return ClearingSyncResult(status="skipped", reason="this cron slot already ran")
        return await _run(runtime, config, run_id)


async def _run(runtime: PaymentsRuntime, config: BridgeConfig, run_id: int) -> ClearingSyncResult:
    result = ClearingSyncResult(status="succeeded", run_id=run_id)
    started = time.perf_counter()
    try:
        result.events_resolved = await resolve_due_events(runtime)
        result.payments_rematched = await rematch_all(runtime)
        async with runtime.sessions() as session:
            open_bills = await repository.open_bills(session)
            settled = await repository.recently_settled_bills(session, utcnow() - RECHECK)
            bills = [OpenBill.of(bill, config) for bill in [*(b for b, _ in open_bills), *settled]]
        result.bills_checked = len(bills)
        result.payments_recorded = await check_bills(runtime, config, bills, source=SOURCE_SYNC)
        async with transaction(runtime.sessions) as session:
            await repository.prune_events(session, utcnow() - RETENTION)
    except SapError as exc:
        result.status, result.error = "failed", exc.detail
    except Exception:
        result.status, result.error = "failed", "the bridge failed during the sync; see its log"
        with contextlib.suppress(Exception):  # the database may be what failed
            await _finish(runtime, run_id, result)
        raise
    await _finish(runtime, run_id, result)
    metrics.CLEARING_SYNC_DURATION.observe(time.perf_counter() - started)
    _log.info("payment.clearing_sync", **result.model_dump(exclude_none=True))
    return result


async def _finish(runtime: PaymentsRuntime, run_id: int, result: ClearingSyncResult) -> None:
    """Close the run's row, so no run stays `running` after it ended."""
    async with transaction(runtime.sessions) as session:
        await repository.finish_run(
            session,
            run_id,
            {
                "status": result.status,
                "finished_at": utcnow(),
                "summary": result.model_dump(exclude={"status", "error", "reason"}),
                "error": result.error,
            },
        )


async def rematch_all(runtime: PaymentsRuntime) -> int:
    """Re-match unmatched payments whose bill has been posted since (safety net of the hook)."""
    async with runtime.sessions() as session:
        references = await repository.rematchable_references(session, 1000)
    moved = 0
    for reference in references:
        moved += await service.on_bill_posted(runtime, reference)
    return moved
