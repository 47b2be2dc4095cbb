"""Bill rules: push once, answer duplicates, cancel, retry, report."""

from __future__ import annotations

import asyncio
import base64
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import get_args

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing import delivery, identity, mapping, metrics, preview, recognition, repository
from app.billing.models import (
    NEEDS_REVIEW,
    PENDING_STATUSES,
    POSTED,
    POSTING,
    QUEUED,
    REJECTED,
    REVERSAL,
    REVERSED,
    REVERSING,
    WITHDRAWN,
    Bill,
)
from app.billing.runtime import BillingRuntime, PaidOnBill
from app.billing.schemas import (
    ATTEMPT_HISTORY_SHOWN,
    AttemptView,
    BillIn,
    BillPage,
    BillStatus,
    BillView,
    ResolveIn,
    SentEntry,
)
from app.config.service import BridgeConfig
from app.platform import currency
from app.platform.db import statement, transaction, utcnow
from app.platform.errors import AppError, ConflictError, InvalidInputError, NotFoundError
from app.platform.logging import get_logger
from app.sap.circuit import CLOSED
from app.sap.journal_entry import JournalEntry, build_reversal, entry_from_json, entry_to_json

_log = get_logger("app.billing")
SKIPPED = BillView(status="skipped", reason="SAP integration is disabled")
_STATUS_CODE = {POSTED: 201, REJECTED: 502}


@dataclass(frozen=True)
class Answer:
    """What a route sends back: the HTTP status and the body."""

    status_code: int
    view: BillView


async def push(runtime: BillingRuntime, config: BridgeConfig, bill_id: str, bill: BillIn) -> Answer:
    """Record the bill and its intent, then try SAP once; duplicates get the first outcome."""
    try:
        answer = await _push(runtime, config, bill_id, bill)
    except AppError as exc:
        outcome = {409: "conflict", 422: "invalid"}.get(exc.status_code, "error")
        metrics.BILLS_PUSHED.labels(outcome=outcome).inc()
        raise
    metrics.BILLS_PUSHED.labels(outcome=answer.view.status).inc()
    return answer


async def _push(
    runtime: BillingRuntime, config: BridgeConfig, bill_id: str, bill: BillIn
) -> Answer:
    if not config.enabled:
        return Answer(200, SKIPPED)
    company_code = config.get("Company Code") or ""
    reference_id = identity.new_reference(POSTING)
    missing = config.missing_for_sap()
    why_queued = _sap_failing(runtime)
    if missing:
        why_queued = "SAP configuration incomplete: set " + ", ".join(missing)
    record_only = why_queued is not None
    entry: JournalEntry | None = None
    request: bytes | None = None
    if missing:  # recorded all the same; the entry is built once the settings are complete
        mapping.validate(bill)
    else:
        entry, request = mapping.prepare_request(
            bill,
            config,
            company_code=company_code,
            document_reference_id=reference_id,
            render=not record_only,
        )
    data = mapping.canonical(bill)
    fingerprint = mapping.fingerprint(data)
    now = utcnow()
    lease_id = None if record_only else delivery.new_lease_id()
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
        posted_entry=entry_to_json(entry) if entry is not None else None,
        attempts=0 if record_only else 1,
        maybe_posted=not record_only,
        sent_at=None if record_only else now,
        read_backs=0,
        cancel_requested=False,
        locked_until=None if record_only else delivery.lease_until(runtime, now),
        lease_id=lease_id,
        last_error=why_queued,
        created_at=now,
        updated_at=now,
    )
    if not await runtime.bill_inbox.submit(values):
        return await _duplicate(runtime, config, bill_id, data, fingerprint)
    _log.info("bill.recorded", bill_id=bill_id, reference=bill.reference, queued=record_only)
    if record_only or entry is None or request is None or lease_id is None:
        return _answer(Bill(**values), fresh=True)
    job = delivery.first_attempt(bill_id, lease_id, bill, company_code, entry, request)
    row = await delivery.attempt(runtime, bill_id, lease_id, job)
    if row is None:  # the lease was lost (this replica stalled): another replica delivers it
        row = await _settled(runtime, bill_id, 0)
    return _answer(row, fresh=True)


def _sap_failing(runtime: BillingRuntime) -> str | None:
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
    runtime: BillingRuntime, config: BridgeConfig, bill_id: str, data: dict, fingerprint: str
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


async def _settled(runtime: BillingRuntime, bill_id: str, patience: float) -> Bill:
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
    if row.status in (QUEUED, NEEDS_REVIEW):
        view.status = row.status  # type: ignore[assignment]
        return Answer(202, view)
    view.status = "already_pushed"
    return Answer(200, view)


def to_view(row: Bill, paid_with: PaidOnBill | None = None) -> BillView:
    """The push record as HMIS and operators see it; with its payments when they are given."""
    total = Decimal(row.net_total)
    paid = paid_with.amount if paid_with is not None else Decimal(0)
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
        reversal_reference_id=row.reversal_reference_id,
        reversal_document_number=row.reversal_document_number,
        reversal_fiscal_year=row.reversal_fiscal_year,
        net_total=currency.format_amount(total, row.currency),
        currency=row.currency,
        attempts=row.attempts,
        last_error=row.last_error,
        messages=row.sap_messages or [],
        payments=paid_with.payments if paid_with is not None else None,
        paid_amount=currency.format_amount(paid, row.currency) if known else None,
        outstanding_amount=currency.format_amount(outstanding, row.currency) if known else None,
    )


async def get(runtime: BillingRuntime, session: AsyncSession, bill_id: str) -> BillView:
    """The whole record of one bill (`GET /bills/{bill_id}`, `bridge bills show`)."""
    row = await repository.get(session, bill_id)
    if row is None:
        raise NotFoundError(f"bill {bill_id} has never been pushed")
    paid = await runtime.bill_payments.paid(session, [bill_id])
    view = _listed(row, paid[bill_id])
    view.posted_at, view.last_sent_at = row.posted_at, row.sent_at
    view.next_attempt_at, view.maybe_posted = row.next_attempt_at, row.maybe_posted
    view.read_backs, view.cancel_requested = row.read_backs, row.cancel_requested
    view.resolution_note = row.resolution_note
    view.attempt_history = [
        AttemptView(
            kind=a.kind,  # type: ignore[arg-type]
            outcome=a.outcome,
            sent_at=a.sent_at,
            recorded_at=a.recorded_at,
            sap_document_number=a.sap_document_number,
            error=a.error,
            messages=a.sap_messages or [],
        )
        for a in await repository.attempts(session, bill_id, ATTEMPT_HISTORY_SHOWN)
    ]
    if row.posted_entry is not None:
        shown = preview.entry_view(entry_from_json(row.posted_entry))
        view.entry = SentEntry.model_validate(shown.model_dump())
    return view


#: what GET /bills accepts as `status`
LISTED_STATUSES: tuple[str, ...] = get_args(BillStatus)
#: a list row's `last_error` is cut to this many characters; the bill's own record has it whole
SHORT_ERROR = 200
MAX_SEARCH = 64


def bill_query(
    status: str | None = None,
    search: str | None = None,
    bill_date_from: date | None = None,
    bill_date_to: date | None = None,
) -> repository.BillQuery:
    """An operator's list request, checked (422 naming the parameter)."""
    if status is not None and status not in LISTED_STATUSES:
        raise InvalidInputError(
            f"status: {status!r} is none of " + ", ".join(LISTED_STATUSES), field="status"
        )
    search = (search or "").strip() or None
    if search is not None:
        if len(search) > MAX_SEARCH:
            raise InvalidInputError(
                f"q: at most {MAX_SEARCH} characters (a bill id, reference, "
                "DocumentReferenceID or SAP document number)",
                field="q",
            )
        if any(ord(c) < 32 or ord(c) == 127 for c in search):
            raise InvalidInputError("q: contains a control character", field="q")
    if bill_date_from and bill_date_to and bill_date_from > bill_date_to:
        raise InvalidInputError(
            f"from: {bill_date_from} is after to ({bill_date_to})", field="from"
        )
    return repository.BillQuery(status, search, bill_date_from, bill_date_to)


async def list_bills(
    runtime: BillingRuntime,
    session: AsyncSession,
    query: repository.BillQuery,
    cursor: str | None,
    limit: int,
) -> BillPage:
    """One page of bills, newest recorded first; `next_cursor` continues after its last row
    (a keyset: bills recorded meanwhile never shift the pages that follow)."""
    before = _decode_cursor(cursor) if cursor else None
    rows = await repository.page(session, query, before, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _encode_cursor(rows[-1]) if more and rows else None
    paid_with = await runtime.bill_payments.paid(session, [r.bill_id for r in rows])
    items = [_listed(r, paid_with[r.bill_id], short=True) for r in rows]
    return BillPage(items=items, next_cursor=next_cursor)


def _listed(row: Bill, paid_with: PaidOnBill, *, short: bool = False) -> BillView:
    view = to_view(row, paid_with)
    view.bill_date, view.created_at, view.updated_at = row.bill_date, row.created_at, row.updated_at
    if short and view.last_error and len(view.last_error) > SHORT_ERROR:
        view.last_error = view.last_error[: SHORT_ERROR - 1] + "…"
    return view


async def cancel(runtime: BillingRuntime, config: BridgeConfig, bill_id: str) -> Answer:
    """Reverse a posted bill, or withdraw one SAP never got; exactly once either way.

    The bill is row-locked while the cancel is recorded, so a posting that commits meanwhile
    is seen (and reversed), and a posting's outcome written after it sees the cancel."""
    if not config.enabled:
        return Answer(200, SKIPPED)
    async with transaction(runtime.sessions) as session:
        row = await repository.get_for_update(session, bill_id)
        if row is None:
            raise NotFoundError(f"bill {bill_id} has never been pushed")
        if row.status in (REVERSED, WITHDRAWN):
            return Answer(200, _with_status(row, "already_reversed"))
        if row.status == REJECTED:
            row.status, row.lease_id = WITHDRAWN, None
            return Answer(200, _with_status(row, "withdrawn"))
        row.cancel_requested = True
        if row.reversal_reference_id is None:  # its own identity, given once
            row.reversal_reference_id = identity.new_reference(REVERSAL)
            await repository.register_reference(
                session, bill_id, row.company_code, row.reversal_reference_id, REVERSAL
            )
        if row.status == POSTED:
            row.status, row.next_attempt_at, row.read_backs = REVERSING, None, 0
        await runtime.bill_payments.bill_cancelled(session, bill_id)
    lease_id = await _claim(runtime, bill_id)
    if lease_id is not None:
        await delivery.attempt(runtime, bill_id, lease_id)
    final = await _settled(runtime, bill_id, config.integer("Timeout Seconds") + 5.0)
    code = 200 if final.status in (REVERSED, WITHDRAWN) else 202
    return Answer(code, _with_status(final, final.status))


async def retry(runtime: BillingRuntime, config: BridgeConfig, bill_id: str) -> Answer:
    """Send a rejected bill again after its cause was fixed, or a bill that needed review once
    an operator has made sure SAP holds no document for it.

    The entry is built again from the current rules. A bill that needed review gets a new
    identity: SAP may hold something under the old one, which must never be taken for it.
    Re-queueing and leasing happen under the row lock, so neither an outbox worker nor a
    second retry can take the bill in between."""
    now = utcnow()
    lease_id = delivery.new_lease_id()
    if missing := config.missing_for_sap():
        raise ConflictError("SAP configuration incomplete: set " + ", ".join(missing))
    async with transaction(runtime.sessions) as session:
        row = await repository.get_for_update(session, bill_id)
        if row is None:
            raise NotFoundError(f"bill {bill_id} has never been pushed")
        if row.status not in (REJECTED, NEEDS_REVIEW):
            raise ConflictError(
                f"bill {bill_id} is {row.status}; only rejected bills and bills that need "
                "review can be retried",
                status=row.status,
            )
        reversal = row.status == NEEDS_REVIEW and row.sap_document_number is not None
        if row.status == NEEDS_REVIEW:
            kind = REVERSAL if reversal else POSTING
            fresh = identity.new_reference(kind)
            await repository.register_reference(session, bill_id, row.company_code, fresh, kind)
            if reversal:
                row.reversal_reference_id = fresh
            else:
                row.document_reference_id = fresh
        if not reversal:
            row.posted_entry = None  # built again from the current rules at the attempt
            if company_code := config.get("Company Code"):
                row.company_code = company_code
        row.status = REVERSING if reversal else QUEUED
        row.next_attempt_at, row.last_error, row.updated_at = None, None, now
        row.maybe_posted, row.read_backs, row.sent_at = False, 0, None
        row.locked_until, row.lease_id = delivery.lease_until(runtime, now), lease_id
    final = await delivery.attempt(runtime, bill_id, lease_id)
    if final is None:
        final = await _settled(runtime, bill_id, 0)
    return _answer(final, fresh=True)


async def resolve(
    runtime: BillingRuntime, config: BridgeConfig, bill_id: str, body: ResolveIn
) -> Answer:
    """An operator names the SAP document that belongs to a bill needing review: recorded only
    if SAP holds it, its lines equal what the bill sent and no other bill holds it."""
    async with runtime.sessions() as session:
        row = await repository.get(session, bill_id)
    if row is None:
        raise NotFoundError(f"bill {bill_id} has never been pushed")
    if row.status != NEEDS_REVIEW:
        raise ConflictError(
            f"bill {bill_id} is {row.status}; only bills that need review can be resolved",
            status=row.status,
        )
    if row.company_code and body.company_code != row.company_code:
        raise ConflictError(
            f"bill {bill_id} belongs to company code {row.company_code}, not {body.company_code}",
            status="other_company_code",
        )
    if row.posted_entry is None and (missing := config.missing_for_sap()):
        raise ConflictError("SAP configuration incomplete: set " + ", ".join(missing))
    reversal = row.sap_document_number is not None
    number = body.sap_document_number.zfill(10)
    expected = _expected_entry(config, row, reversal)
    document = await runtime.sap.get_journal_entry(
        config, body.company_code, body.fiscal_year, number
    )
    where = f"{number} (company code {body.company_code}, fiscal year {body.fiscal_year})"
    if document is None:
        raise ConflictError(f"SAP holds no document {where}", status="not_found_in_sap")
    if not recognition.matches(expected, document):
        raise ConflictError(
            f"document {where} is not this bill's {'reversal' if reversal else 'posting'}: "
            + recognition.differences(expected, document),
            status="lines_differ",
        )
    if document.is_reversed:
        raise ConflictError(f"document {where} was reversed in SAP", status="reversed_in_sap")
    values: dict[str, object] = delivery.SETTLED | {
        "maybe_posted": False,
        "last_error": None,
        "resolution_note": body.note,
    }
    if reversal:
        update = repository.UPDATE_REVIEWED
        values |= {
            "status": REVERSED,
            "reversal_document_number": number,
            "reversal_fiscal_year": body.fiscal_year,
        }
    else:
        update = repository.UPDATE_RESOLVED
        values |= {
            "company_code": body.company_code,
            "sap_document_number": number,
            "fiscal_year": body.fiscal_year,
            "posted_at": utcnow(),
        }
    try:
        async with statement(runtime.engine) as session:
            resolved = await repository.update_returning(session, bill_id, values, update)
    except IntegrityError:
        async with runtime.sessions() as session:
            holder = await repository.holder(session, body.company_code, body.fiscal_year, number)
        raise ConflictError(
            f"document {where} is already held by bill {holder or 'another bill'}",
            status="held_by_another_bill",
        ) from None
    if resolved is None:
        raise ConflictError(f"bill {bill_id} changed meanwhile; look at it again")
    _log.info("bill.resolved", bill_id=bill_id, document=number, note=body.note)
    if resolved.status == POSTED:
        await runtime.bill_payments.bill_posted(runtime, resolved.reference)
    if resolved.status == REVERSING:
        runtime.extras["outbox"].wake()
    return Answer(200, to_view(resolved))


def _expected_entry(config: BridgeConfig, row: Bill, reversal: bool) -> JournalEntry:
    posting = (
        entry_from_json(row.posted_entry)
        if row.posted_entry
        else mapping.prepare(
            BillIn.model_validate(row.payload),
            config,
            company_code=row.company_code,
            document_reference_id=row.document_reference_id,
        )
    )
    if not reversal:
        return posting
    return build_reversal(
        posting,
        document_reference_id=row.reversal_reference_id or "",
        message_id="resolve",
        header_text="",
    )


async def _claim(runtime: BillingRuntime, bill_id: str) -> str | None:
    now, lease_id = utcnow(), delivery.new_lease_id()
    async with statement(runtime.engine) as session:
        leased = await repository.claim(
            session, bill_id, now, delivery.lease_until(runtime, now), lease_id
        )
    return lease_id if leased else None


def _with_status(row: Bill, status: str) -> BillView:
    view = to_view(row)
    view.status = status  # type: ignore[assignment]
    return view


_CURSOR_BILL_ID = re.compile(r"[A-Za-z0-9._:/-]{1,64}")


def _encode_cursor(row: Bill) -> str:
    text = f"{row.created_at.astimezone(UTC).isoformat()}|{row.bill_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (recorded time, bill id) a cursor continues after; a cursor of the older id-ordered
    list, or anything else this service did not issue, is a 422."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
        created_text, _, bill_id = text.partition("|")
        created = datetime.fromisoformat(created_text)
    except (ValueError, UnicodeDecodeError, OverflowError):
        created, bill_id = None, ""
    if created is None or created.tzinfo is None or not _CURSOR_BILL_ID.fullmatch(bill_id):
        raise InvalidInputError("cursor: not a cursor this service issued", field="cursor")
    return created, bill_id
