"""Bill rules: push once, answer duplicates, cancel, retry, report."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app import currency, metrics
from app.billing import delivery, mapping, repository
from app.billing.models import (
    PENDING_STATUSES,
    POSTED,
    QUEUED,
    REJECTED,
    REVERSED,
    REVERSING,
    WITHDRAWN,
    Bill,
)
from app.billing.schemas import BillIn, BillPage, BillView
from app.config.service import BridgeConfig
from app.db import statement, transaction, utcnow
from app.deps import Runtime
from app.errors import AppError, ConflictError, InvalidInputError, NotFoundError
from app.logging import get_logger
from app.payments import repository as payments_repository
from app.payments import service as payments
from app.payments.models import Payment
from app.sap.circuit import CLOSED

_log = get_logger("app.billing")
SKIPPED = BillView(status="skipped", reason="SAP integration is disabled")
_STATUS_CODE = {POSTED: 201, REJECTED: 502}


@dataclass(frozen=True)
class Answer:
    """What a route sends back: the HTTP status and the body."""

    status_code: int
    view: BillView


async def push(runtime: Runtime, config: BridgeConfig, bill_id: str, bill: BillIn) -> Answer:
    """Record the bill and its intent, then try SAP once; duplicates get the first outcome."""
    try:
        answer = await _push(runtime, config, bill_id, bill)
    except AppError as exc:
        outcome = {409: "conflict", 422: "invalid"}.get(exc.status_code, "error")
        metrics.BILLS_PUSHED.labels(outcome=outcome).inc()
        raise
    metrics.BILLS_PUSHED.labels(outcome=answer.view.status).inc()
    return answer


async def _push(runtime: Runtime, config: BridgeConfig, bill_id: str, bill: BillIn) -> Answer:
    if not config.enabled:
        return Answer(200, SKIPPED)
    mapping.validate(bill)
    data = mapping.canonical(bill)
    fingerprint = mapping.fingerprint(data)
    now = utcnow()
    company_code = config.get("Company Code") or ""
    reference_id = mapping.posting_reference(bill_id, bill.reference)
    why_queued = _sap_failing(runtime)
    record_only = why_queued is not None
    values = dict(
        bill_id=bill_id,
        reference=bill.reference,
        bill_date=bill.bill_date,
        currency=bill.currency,
        net_total=bill.net_total,
        fingerprint=fingerprint,
        payload=data,
        status=QUEUED,
        company_code=company_code,
        document_reference_id=reference_id,
        attempts=0 if record_only else 1,
        maybe_posted=not record_only,
        cancel_requested=False,
        locked_until=None if record_only else delivery.lease_until(runtime, config, now),
        last_error=why_queued,
        created_at=now,
        updated_at=now,
    )
    if not await runtime.bill_inbox.submit(values):
        return await _duplicate(runtime, config, bill_id, data, fingerprint)
    _log.info("bill.recorded", bill_id=bill_id, reference=bill.reference, queued=record_only)
    if record_only:
        return _answer(Bill(**values), fresh=True)
    job = delivery.first_attempt(bill_id, bill, company_code, reference_id)
    row = await delivery.attempt(runtime, bill_id, job)
    assert row is not None
    return _answer(row, fresh=True)


def _sap_failing(runtime: Runtime) -> str | None:
    """Why a push should only record the bill for the outbox, if it should. While the circuit
    is not closed the outbox sends the one probe, so a burst of pushes does not race for it;
    after a failed call a push does not queue behind other calls only to meet the same failure
    (the outbox's next delivery finds out whether SAP is back)."""
    breaker = runtime.sap.breaker
    if breaker.state != CLOSED:
        return "SAP circuit is open after repeated failures"
    if breaker.failing():
        return "SAP failed the last call; the bridge delivers the bill in the background"
    return None


async def _duplicate(
    runtime: Runtime, config: BridgeConfig, bill_id: str, data: dict, fingerprint: str
) -> Answer:
    row = await _settled(runtime, bill_id, config.integer("Timeout Seconds") + 5.0)
    if row.fingerprint != fingerprint:
        diff = mapping.differences(row.payload, data)
        raise ConflictError(
            f"bill {bill_id} was already pushed with different content: " + ", ".join(diff),
            status="conflict",
            differences=diff,
        )
    return _answer(row, fresh=False)


async def _settled(runtime: Runtime, bill_id: str, patience: float) -> Bill:
    """The bill once no delivery holds it, or as it stands when patience runs out."""
    loop = asyncio.get_running_loop()
    deadline, pause = loop.time() + patience, 0.02
    while True:
        async with runtime.sessions() as session:
            row = await repository.get(session, bill_id)
        assert row is not None
        in_flight = (
            row.status in PENDING_STATUSES and row.locked_until and row.locked_until > utcnow()
        )
        if not in_flight or loop.time() >= deadline:
            return row
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, 0.5)


def _answer(row: Bill, *, fresh: bool) -> Answer:
    view = to_view(row)
    if row.status == POSTED:
        view.status = "posted" if fresh else "already_pushed"
        return Answer(201 if fresh else 200, view)
    if row.status == REJECTED:
        view.status = "rejected"
        view.detail = row.last_error or "SAP rejected the journal entry"
        return Answer(502, view)
    if row.status == QUEUED:
        view.status = "queued"
        return Answer(202, view)
    view.status = "already_pushed"
    return Answer(200, view)


def to_view(row: Bill, paid_with: Sequence[Payment] | None = None) -> BillView:
    """The push record as HMIS and operators see it; with its payments when they are given."""
    total = Decimal(row.net_total)
    paid = payments.paid_amount(paid_with or ())
    outstanding = max(total - paid, Decimal(0)) if row.status == POSTED else Decimal(0)
    known = paid_with is not None
    return BillView(
        status=row.status,
        record_status=row.status,
        bill_id=row.bill_id,
        reference=row.reference,  # type: ignore[arg-type]
        sap_document_number=row.sap_document_number,
        company_code=row.company_code if row.sap_document_number else None,
        fiscal_year=row.fiscal_year,
        document_reference_id=row.document_reference_id,
        reversal_document_number=row.reversal_document_number,
        reversal_fiscal_year=row.reversal_fiscal_year,
        net_total=currency.format_amount(total, row.currency),
        currency=row.currency,
        attempts=row.attempts,
        last_error=row.last_error,
        messages=row.sap_messages or [],
        payments=payments.payment_views(paid_with) if paid_with is not None else None,
        paid_amount=currency.format_amount(paid, row.currency) if known else None,
        outstanding_amount=currency.format_amount(outstanding, row.currency) if known else None,
    )


async def get(session: AsyncSession, bill_id: str) -> BillView:
    row = await repository.get(session, bill_id)
    if row is None:
        raise NotFoundError(f"bill {bill_id} has never been pushed")
    return to_view(row, await payments_repository.for_bill(session, bill_id))


async def list_bills(
    session: AsyncSession, status: str | None, cursor: str | None, limit: int
) -> BillPage:
    after = _decode_cursor(cursor) if cursor else None
    rows = await repository.page(session, status, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _encode_cursor(rows[-1].bill_id) if more and rows else None
    paid_with = await payments_repository.for_bills(session, [r.bill_id for r in rows])
    return BillPage(items=[to_view(r, paid_with[r.bill_id]) for r in rows], next_cursor=next_cursor)


async def cancel(runtime: Runtime, config: BridgeConfig, bill_id: str) -> Answer:
    """Reverse a posted bill, or withdraw one SAP never got; exactly once either way."""
    if not config.enabled:
        return Answer(200, SKIPPED)
    async with transaction(runtime.sessions) as session:
        row = await repository.get(session, bill_id)
        if row is None:
            raise NotFoundError(f"bill {bill_id} has never been pushed")
        if row.status in (REVERSED, WITHDRAWN):
            return Answer(200, _with_status(row, "already_reversed"))
        if row.status == REJECTED:
            row.status = WITHDRAWN
            return Answer(200, _with_status(row, "withdrawn"))
        row.cancel_requested = True
        if row.status == POSTED:
            row.status, row.next_attempt_at = REVERSING, None
        row.reversal_reference_id = mapping.reversal_reference(row.bill_id, row.reference)
    if await _claim(runtime, config, bill_id):
        await delivery.attempt(runtime, bill_id)
    final = await _settled(runtime, bill_id, config.integer("Timeout Seconds") + 5.0)
    code = 200 if final.status in (REVERSED, WITHDRAWN) else 202
    return Answer(code, _with_status(final, final.status))


async def retry(runtime: Runtime, config: BridgeConfig, bill_id: str) -> Answer:
    """Send a rejected bill again after its cause was fixed.

    Re-queueing and leasing are one compare-and-set, so neither an outbox worker nor a second
    retry can take the bill between them."""
    now = utcnow()
    values = dict(
        status=QUEUED,
        next_attempt_at=None,
        last_error=None,
        locked_until=delivery.lease_until(runtime, config, now),
        updated_at=now,
    )
    if company_code := config.get("Company Code"):
        values["company_code"] = company_code
    async with transaction(runtime.sessions) as session:
        leased = await repository.requeue_rejected(session, bill_id, values)
        row = None if leased else await repository.get(session, bill_id)
    if not leased:
        if row is None:
            raise NotFoundError(f"bill {bill_id} has never been pushed")
        raise ConflictError(
            f"bill {bill_id} is {row.status}; only rejected bills can be retried",
            status=row.status,
        )
    final = await delivery.attempt(runtime, bill_id)
    assert final is not None
    return _answer(final, fresh=True)


async def _claim(runtime: Runtime, config: BridgeConfig, bill_id: str) -> bool:
    now = utcnow()
    async with statement(runtime.engine) as session:
        return await repository.claim(
            session, bill_id, now, delivery.lease_until(runtime, config, now)
        )


def _with_status(row: Bill, status: str) -> BillView:
    view = to_view(row)
    view.status = status  # type: ignore[assignment]
    return view


def _encode_cursor(bill_id: str) -> str:
    return base64.urlsafe_b64encode(bill_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        after = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        after = ""
    if not after:
        raise InvalidInputError("cursor: not a cursor this service issued", field="cursor")
    return after
