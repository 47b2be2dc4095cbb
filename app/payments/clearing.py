"""Payments found in SAP: the clearing sync and the resolution of business events.

Both ask SAP (`app.sap.clearing`) outside any transaction, turn the answer into payment facts
and record each fact in its own short transaction through `service.record`, so the inbox and
payment keys make every SAP payment count once however often, and by however many replicas,
it is found.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from app.billing.models import Bill
from app.config.service import BridgeConfig
from app.db import transaction, utcnow
from app.deps import Runtime
from app.errors import ConflictError
from app.locks import job_lock
from app.logging import get_logger
from app.payments import repository, service
from app.payments.models import SOURCE_EVENT, SOURCE_SYNC
from app.payments.schemas import ClearingSyncResult
from app.sap import clearing as sap_clearing
from app.sap.clearing import DocumentKey, PaymentItem, ReceivableItem
from app.sap.errors import SapError

_log = get_logger("app.payments.clearing")
LOCK = "payments-clearing-sync"
TASKS = "payments.tasks"
RETENTION = timedelta(days=30)  # inbox ids are kept well past the senders' 3 days of retries
_EVENTS_PER_SYNC = 500


@dataclass(frozen=True)
class OpenBill:
    """What the clearing check needs of a bill, detached from any session."""

    bill_id: str
    reference: str
    key: DocumentKey

    @classmethod
    def of(cls, bill: Bill) -> OpenBill:
        document = DocumentKey(
            bill.company_code, bill.fiscal_year or "", bill.sap_document_number or ""
        )
        return cls(bill.bill_id, bill.reference, document)


# --- from SAP's items to payment facts ------------------------------------------------------


def derive_facts(
    bills: Sequence[OpenBill],
    receivables: Iterable[ReceivableItem],
    partials: Iterable[PaymentItem],
) -> list[service.PaymentFact]:
    """Every payment SAP shows for these bills.

    A partial payment is an item that references the bill's document (`InvoiceReference`);
    the payment that clears the receivable pays what the partial payments left open.
    """
    items: dict[DocumentKey, list[ReceivableItem]] = {}
    for item in receivables:
        items.setdefault(item.invoice, []).append(item)
    paid_by: dict[DocumentKey, dict[DocumentKey, PaymentItem]] = {}
    for part in partials:
        if part.is_reversed:
            continue
        per_invoice = paid_by.setdefault(part.invoice, {})
        if part.payment in per_invoice:
            earlier = per_invoice[part.payment]
            part = PaymentItem(
                part.payment,
                part.invoice,
                earlier.amount + part.amount,
                part.currency,
                earlier.posting_date,
                False,
            )
        per_invoice[part.payment] = part
    facts: list[service.PaymentFact] = []
    for bill in bills:
        facts += _facts_of(bill, _receivable(items.get(bill.key, [])), paid_by.get(bill.key, {}))
    return facts


def _receivable(items: list[ReceivableItem]) -> list[ReceivableItem]:
    customer = [i for i in items if i.account_type == "D"]
    return customer or items


def _facts_of(
    bill: OpenBill, items: list[ReceivableItem], partials: dict[DocumentKey, PaymentItem]
) -> list[service.PaymentFact]:
    receivable = sum((i.amount for i in items), Decimal(0)) if items else None
    facts = [
        _fact(bill, p.payment, p.amount, p.currency, p.posting_date, receivable)
        for p in partials.values()
    ]
    partial_total = sum((p.amount for p in partials.values()), Decimal(0))
    clearings = {i.clearing: i for i in items if i.is_cleared and i.clearing is not None}
    for clearing, item in clearings.items():
        if clearing in partials or clearing == bill.key:
            continue
        rest = (receivable or Decimal(0)) - partial_total
        if rest > 0:
            facts.append(_fact(bill, clearing, rest, item.currency, item.clearing_date, receivable))
    return facts


def _fact(
    bill: OpenBill,
    payment: DocumentKey,
    amount: Decimal,
    currency: str,
    day: date | None,
    receivable: Decimal | None,
) -> service.PaymentFact:
    return service.PaymentFact(
        company_code=payment.company_code,
        payment_document=payment.document,
        payment_fiscal_year=payment.fiscal_year or None,
        bill_reference=bill.reference,
        bill_id=bill.bill_id,
        sap_document_number=bill.key.document,
        amount=amount,
        currency=currency,
        posting_date=day,
        receivable_amount=receivable,
    )


async def check_bills(
    runtime: Runtime,
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
    receivables = await sap_clearing.receivables(runtime.sap, config, keys)
    partials = await sap_clearing.invoice_payments(runtime.sap, config, keys)
    recorded = 0
    for fact in derive_facts(bills, receivables, partials):
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


# --- business events ------------------------------------------------------------------------


def resolve_soon(runtime: Runtime, event_id: int) -> None:
    """Resolve a stored business event in the background; the sync sweeps what a crash left."""
    tasks: set[asyncio.Task[Any]] = runtime.extras.setdefault(TASKS, set())
    task = asyncio.create_task(_resolve_quietly(runtime, event_id))
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _resolve_quietly(runtime: Runtime, event_id: int) -> None:
    try:
        await resolve_event(runtime, event_id)
    except Exception:
        _log.warning("payment.business_event.resolve_failed", event_id=event_id, exc_info=True)


async def resolve_event(runtime: Runtime, event_id: int) -> bool:
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
        bills = [OpenBill.of(b) for b in found]
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


async def _postpone(runtime: Runtime, event_id: int, attempts: int, error: str) -> None:
    delay = timedelta(seconds=min(30 * 2 ** min(attempts, 7), 3600))
    async with transaction(runtime.sessions) as session:
        await repository.postpone_event(session, event_id, error, utcnow() + delay)
    _log.warning("payment.business_event.postponed", event_id=event_id, error=error)


async def resolve_due_events(runtime: Runtime) -> int:
    """Resolve pending business events (left by a crash or a SAP outage)."""
    async with runtime.sessions() as session:
        due = await repository.due_events(session, utcnow(), _EVENTS_PER_SYNC)
    resolved = 0
    for event_id in due:
        resolved += await resolve_event(runtime, event_id)
    return resolved


async def shutdown(runtime: Runtime) -> None:
    """Cancel resolutions in flight; their events stay pending for the next sweep."""
    tasks: set[asyncio.Task[Any]] = set(runtime.extras.get(TASKS, ()))
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


# --- the clearing sync ----------------------------------------------------------------------


async def clearing_sync(
    runtime: Runtime, *, trigger: str, slot: datetime | None = None
) -> ClearingSyncResult:
    """One sync: pending events, re-matches, then SAP's clearings of open bills."""
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


async def _run(runtime: Runtime, config: BridgeConfig, run_id: int) -> ClearingSyncResult:
    result = ClearingSyncResult(status="succeeded", run_id=run_id)
    try:
        result.events_resolved = await resolve_due_events(runtime)
        result.payments_rematched = await rematch_all(runtime)
        async with runtime.sessions() as session:
            bills = [OpenBill.of(bill) for bill, _ in await repository.open_bills(session)]
        result.bills_checked = len(bills)
        result.payments_recorded = await check_bills(runtime, config, bills, source=SOURCE_SYNC)
        async with transaction(runtime.sessions) as session:
            await repository.prune_events(session, utcnow() - RETENTION)
    except SapError as exc:
        result.status, result.error = "failed", exc.detail
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
    _log.info("payment.clearing_sync", **result.model_dump(exclude_none=True))
    return result


async def rematch_all(runtime: Runtime) -> int:
    """Re-match unmatched payments whose bill has been posted since (safety net of the hook)."""
    async with runtime.sessions() as session:
        references = await repository.rematchable_references(session, 1000)
    moved = 0
    for reference in references:
        moved += await service.on_bill_posted(runtime, reference)
    return moved
