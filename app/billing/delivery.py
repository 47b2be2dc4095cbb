"""One delivery attempt of a leased bill: read back if needed, post or reverse, record."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from app import metrics
from app.billing import mapping, repository
from app.billing.models import POSTED, QUEUED, REJECTED, REVERSED, REVERSING, WITHDRAWN, Bill
from app.billing.schemas import BillIn
from app.config.service import BridgeConfig
from app.db import statement, transaction, utcnow
from app.deps import Runtime
from app.logging import get_logger
from app.payments import service as payments
from app.sap.errors import (
    SapAmbiguousError,
    SapConfigurationError,
    SapError,
    SapRejectedError,
    SapRetryableError,
)
from app.sap.journal_entry import (
    JournalEntry,
    PostingResult,
    build_reversal,
    entry_from_json,
    entry_to_json,
)
from app.sap.retry import backoff

_log = get_logger("app.billing")


@dataclass(frozen=True)
class _Job:
    bill_id: str
    reversal: bool
    read_back: bool
    bill: BillIn
    company_code: str
    posting_ref: str
    reversal_ref: str | None
    attempt: int
    #: the entry that posted (JSON), which a reversal mirrors
    posted_entry: dict[str, Any] | None = None
    #: HMIS waits for this attempt: not sent when SAP is failing and busy (the outbox retries)
    pushed: bool = False

    @property
    def reference_id(self) -> str:
        """The DocumentReferenceID of what this attempt sends."""
        return (self.reversal_ref or "") if self.reversal else self.posting_ref


def sap_budget(config: BridgeConfig) -> float:
    """How long one attempt may spend with SAP (read-back and posting, each of which may first
    wait as long as the SAP timeout for a call slot): past it the attempt gives up as ambiguous,
    so it always ends inside its lease, however its calls and their retries add up."""
    return 4.0 * config.integer("Timeout Seconds")


def lease_until(runtime: Runtime, config: BridgeConfig, now: datetime) -> datetime:
    """How long a worker owns a bill: its time with SAP, then the settle time, so a bill whose
    replica died mid-call is read back only once SAP is done with that call."""
    settings = runtime.settings
    seconds = sap_budget(config) + settings.ambiguous_settle_seconds + settings.lease_margin_seconds
    return now + timedelta(seconds=seconds)


def first_attempt(bill_id: str, bill: BillIn, company_code: str, reference_id: str) -> _Job:
    """The job of a bill just inserted with its lease, `maybe_posted` and `attempts=1` set."""
    return _Job(bill_id, False, False, bill, company_code, reference_id, None, 1, pushed=True)


async def attempt(runtime: Runtime, bill_id: str, job: _Job | None = None) -> Bill | None:
    """Deliver what the leased bill owes SAP and record the outcome; returns the new row.

    `job` skips the start transaction when the caller has just recorded the intent itself.
    """
    config = await runtime.config.snapshot(runtime.sessions)
    job = job or await _start(runtime, config, bill_id)
    if job is None:
        return await _release(runtime, bill_id)
    entry: JournalEntry | None = None
    try:
        async with asyncio.timeout(sap_budget(config)):
            result = await _read_back(runtime, config, job) if job.read_back else None
            if result is None:
                entry = _entry(config, job)
                result = await _post(runtime, config, job, entry)
    except TimeoutError:  # the budget ran out, perhaps mid-call: SAP may have the posting
        error = SapAmbiguousError(
            f"the attempt took longer than its {sap_budget(config):g}s with SAP; "
            "it is read back before anything is sent again"
        )
        return await _record_failure(runtime, job, error, config, entry)
    except SapError as error:
        return await _record_failure(runtime, job, error, config, entry)
    except Exception as error:  # a bug must not strand the bill: treat it as ambiguous
        _log.exception("bill.delivery.crashed", bill_id=bill_id)
        return await _record_failure(runtime, job, SapAmbiguousError(repr(error)), config, entry)
    row = await _record_success(runtime, job, result, entry)
    if row is not None and row.status == POSTED:  # payments that arrived before the bill
        await payments.after_bill_posted(runtime, row.reference)
    return row


async def _start(runtime: Runtime, config: BridgeConfig, bill_id: str) -> _Job | None:
    async with transaction(runtime.sessions) as session:
        bill = await repository.get(session, bill_id)
        if bill is None or bill.status not in (QUEUED, REVERSING):
            return None
        if bill.status == QUEUED and bill.cancel_requested and not bill.maybe_posted:
            bill.status, bill.locked_until = WITHDRAWN, None
            _log.info("bill.withdrawn", bill_id=bill_id)
            return None
        reversal = bill.status == REVERSING
        bill.company_code = bill.company_code or config.get("Company Code") or ""
        job = _Job(
            bill_id,
            reversal,
            bill.maybe_posted,
            BillIn.model_validate(bill.payload),
            bill.company_code,
            bill.document_reference_id,
            bill.reversal_reference_id,
            bill.attempts + 1,
            bill.posted_entry,
        )
        bill.maybe_posted, bill.attempts = True, bill.attempts + 1
        return job


def _entry(config: BridgeConfig, job: _Job) -> JournalEntry:
    """What this attempt sends: the posting, from the bill and the current revenue rules; or the
    mirror of the entry that posted, so a rules change in between cannot skew the reversal
    (bills posted before entries were kept are rebuilt from the rules)."""
    message_id = f"{job.reference_id}-{job.attempt}"
    if job.reversal and job.posted_entry:
        posted = entry_from_json(job.posted_entry)
    else:
        posted = mapping.journal_entry(
            job.bill,
            config,
            company_code=job.company_code,
            document_reference_id=job.posting_ref,
            message_id=message_id,
        )
    if not job.reversal:
        return posted
    return build_reversal(
        posted,
        document_reference_id=job.reference_id,
        message_id=message_id,
        header_text=f"HMIS reversal {job.bill.reference}",
    )


async def _post(
    runtime: Runtime, config: BridgeConfig, job: _Job, entry: JournalEntry
) -> PostingResult:
    result = await runtime.sap.post_journal_entry(config, entry, shed_when_failing=job.pushed)
    _log.info(
        "sap.journal_entry.posted",
        bill_id=job.bill_id,
        reversal=job.reversal,
        document=result.accounting_document,
        fiscal_year=result.fiscal_year,
    )
    return result


async def _read_back(runtime: Runtime, config: BridgeConfig, job: _Job) -> PostingResult | None:
    """The document SAP already holds for this bill, if an earlier attempt did post it."""
    try:
        documents = await runtime.sap.find_journal_entries(
            config, job.company_code, job.reference_id
        )
    except SapError as error:  # unknown stays unknown: never post without a clean read-back
        raise SapAmbiguousError(
            f"could not check SAP for an earlier posting: {error.detail}",
            retry_after=getattr(error, "retry_after", None),
        ) from None
    total = abs(job.bill.net_total)  # a refund's debit side is its revenue lines
    for doc in documents:
        if Decimal(doc.debit_total) == total and not doc.is_reversed:
            _log.info(
                "sap.journal_entry.found",
                bill_id=job.bill_id,
                document=doc.accounting_document,
                reversal=job.reversal,
            )
            return PostingResult(doc.accounting_document, doc.company_code, doc.fiscal_year, ())
    return None


async def _record_success(
    runtime: Runtime, job: _Job, result: PostingResult, entry: JournalEntry | None
) -> Bill | None:
    values: dict[str, Any] = {
        "sap_messages": [m.as_dict() for m in result.messages],
        "last_error": None,
        "maybe_posted": False,
        "locked_until": None,
        "next_attempt_at": None,
    }
    if job.reversal:
        update = repository.UPDATE
        values |= {
            "status": REVERSED,
            "reversal_document_number": result.accounting_document,
            "reversal_fiscal_year": result.fiscal_year,
        }
    else:
        update = repository.UPDATE_POSTED
        if entry is not None:  # else read back: the entry kept when it was sent stays
            values["posted_entry"] = entry_to_json(entry)
        values |= {
            "sap_document_number": result.accounting_document,
            "fiscal_year": result.fiscal_year,
            "posted_at": utcnow(),
        }
    async with statement(runtime.engine) as session:
        row = await repository.update_returning(session, job.bill_id, values, update)
    metrics.BILL_DELIVERIES.labels(_kind(job), "posted").inc()
    return row


def _kind(job: _Job) -> str:
    return "reversal" if job.reversal else "posting"


async def _record_failure(
    runtime: Runtime,
    job: _Job,
    error: SapError,
    config: BridgeConfig,
    entry: JournalEntry | None,
) -> Bill | None:
    values: dict[str, Any] = {"last_error": error.detail, "locked_until": None}
    if isinstance(error, SapRejectedError):
        # a rejected reversal leaves the bill posted, with SAP's reason to act on
        values |= {
            "sap_messages": [m.as_dict() for m in error.messages],
            "maybe_posted": False,
            "next_attempt_at": None,
            "status": POSTED if job.reversal else REJECTED,
        }
        _log.warning(
            "sap.journal_entry.rejected",
            bill_id=job.bill_id,
            reversal=job.reversal,
            error=error.detail,
        )
    else:
        delay = _retry_delay(runtime, config, job, error)
        values |= {
            "maybe_posted": isinstance(error, SapAmbiguousError),
            "next_attempt_at": utcnow() + timedelta(seconds=delay),
        }
        if values["maybe_posted"] and entry is not None and not job.reversal:
            values["posted_entry"] = entry_to_json(entry)  # it may have posted: mirror it later
        _log.warning(
            "sap.journal_entry.deferred",
            bill_id=job.bill_id,
            error=error.detail,
            ambiguous=values["maybe_posted"],
            retry_in=round(delay, 2),
        )
    async with statement(runtime.engine) as session:
        row = await repository.update_returning(session, job.bill_id, values)
    if isinstance(error, SapRejectedError):
        outcome = "rejected"
    else:
        outcome = "ambiguous" if values["maybe_posted"] else "deferred"
    metrics.BILL_DELIVERIES.labels(_kind(job), outcome).inc()
    return row


def _retry_delay(runtime: Runtime, config: BridgeConfig, job: _Job, error: SapError) -> float:
    settings = runtime.settings
    retry_after = error.retry_after if isinstance(error, SapRetryableError) else None
    delay = backoff(
        job.attempt,
        initial=settings.retry_base_seconds,
        maximum=settings.retry_max_seconds,
        retry_after=retry_after,
    )
    if isinstance(error, SapAmbiguousError):  # a SAP still working on it must finish first
        delay = max(delay, settings.ambiguous_settle_seconds)
    if isinstance(error, SapConfigurationError):  # an operator must act: do not spin
        delay = max(delay, settings.retry_max_seconds / 4)
    return delay


async def _release(runtime: Runtime, bill_id: str) -> Bill | None:
    async with transaction(runtime.sessions) as session:
        bill = await repository.get(session, bill_id)
        if bill is not None:
            bill.locked_until = None
        return bill
