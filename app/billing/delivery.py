"""One delivery attempt of a leased bill: read back if needed, post or reverse, record.

The attempt owns the bill through its lease (`lease_id`), renews it while it runs, and writes
its outcome only under it: an attempt that lost its lease (its replica stalled past it) cannot
overwrite what the replica that took the bill over recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing import mapping, metrics, recognition, repository
from app.billing.models import (
    NEEDS_REVIEW,
    POSTED,
    QUEUED,
    REJECTED,
    REVERSED,
    REVERSING,
    WITHDRAWN,
    Bill,
)
from app.billing.recognition import NeedsReview
from app.billing.runtime import BillingRuntime
from app.billing.schemas import BillIn
from app.config.service import BridgeConfig
from app.platform.db import statement, transaction, utcnow
from app.platform.errors import InvalidInputError
from app.platform.logging import get_logger
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
    lease_id: str
    reversal: bool
    read_back: bool
    bill: BillIn
    company_code: str
    #: the DocumentReferenceID of what this attempt sends
    reference_id: str
    attempt: int
    #: the posting's entry as stored before its first send; a reversal mirrors it
    posting: JournalEntry
    cancel_requested: bool = False
    read_backs: int = 0
    #: when what is owed was last sent, if it may have been (SAP may still work on it)
    sent_at: datetime | None = None
    #: HMIS waits for this attempt: not sent when SAP is failing and busy (the outbox retries)
    pushed: bool = False
    #: the SOAP request of the first attempt, built when the push checked the bill
    request: bytes | None = None

    @property
    def kind(self) -> str:
        return "reversal" if self.reversal else "posting"

    def entry(self) -> JournalEntry:
        """What this attempt sends (or recognises in SAP): the stored posting, or its mirror."""
        message_id = f"{self.reference_id}-{self.attempt}"
        if not self.reversal:
            return replace(self.posting, message_id=message_id)
        return build_reversal(
            self.posting,
            document_reference_id=self.reference_id,
            message_id=message_id,
            header_text=f"HMIS reversal {self.bill.reference}",
        )


class _Withdrawn(Exception):
    """A cancelled bill's read-back showed SAP never had it: nothing is owed any more."""


class _Settling(Exception):
    """The read-back found nothing, but SAP may still be working on the last send."""

    def __init__(self, until: datetime) -> None:
        super().__init__(until)
        self.until = until


class _ReadBackFailed(SapRetryableError):
    """SAP could not be asked whether it holds the bill: it stays 'maybe posted'."""


class _LeaseLost(SapRetryableError):
    def __init__(self) -> None:
        super().__init__("another attempt took the bill over; nothing was sent")


@dataclass
class _Progress:
    """What one attempt has done so far, for judging a failure in the middle of it."""

    sending: bool = False
    read_backs: int = 0


def sap_budget(config: BridgeConfig) -> float:
    """How long one attempt may spend with SAP (read-back and posting, each of which may first
    wait as long as the SAP timeout for a call slot): past it the attempt gives up as ambiguous,
    so it always ends, however its calls and their retries add up."""
    return 4.0 * config.integer("Timeout Seconds")


def lease_until(runtime: BillingRuntime, now: datetime) -> datetime:
    """A lease is short and renewed while its attempt runs, so a dead replica's bills are taken
    over within about `BRIDGE_LEASE_SECONDS`, whatever SAP's timeout is."""
    return now + timedelta(seconds=runtime.settings.lease_seconds)


def new_lease_id() -> str:
    return uuid.uuid4().hex


def first_attempt(
    bill_id: str,
    lease_id: str,
    bill: BillIn,
    company_code: str,
    entry: JournalEntry,
    request: bytes,
) -> _Job:
    """The job of a bill just inserted with its lease, `maybe_posted` and `attempts=1` set."""
    return _Job(
        bill_id,
        lease_id,
        False,
        False,
        bill,
        company_code,
        entry.document_reference_id,
        1,
        entry,
        pushed=True,
        request=request,
    )


async def attempt(
    runtime: BillingRuntime, bill_id: str, lease_id: str, job: _Job | None = None
) -> Bill | None:
    """Deliver what the leased bill owes SAP and record the outcome; returns the new row, or
    None when the lease was lost to another attempt.

    `job` skips the start transaction when the caller has just recorded the intent itself.
    """
    config = await runtime.config.snapshot(runtime.sessions)
    try:
        job = job or await _start(runtime, config, bill_id, lease_id)
    except InvalidInputError as invalid:  # a legacy bill the rules cannot build
        refusal = SapRejectedError(f"the bridge cannot build this bill's journal entry: {invalid}")
        return await _record_failure(runtime, _Failed(bill_id, lease_id), refusal, config)
    if job is None:
        return await _release(runtime, bill_id, lease_id)
    progress = _Progress()
    try:
        async with _renewed(runtime, job), asyncio.timeout(sap_budget(config)):
            result = await _deliver(runtime, config, job, progress)
    except TimeoutError:  # the budget ran out, perhaps mid-call: SAP may have the posting
        error: SapError = SapAmbiguousError(
            f"the attempt took longer than its {sap_budget(config):g}s with SAP; "
            "it is read back before anything is sent again"
        )
        return await _record_failure(runtime, job, error, config, progress)
    except NeedsReview as review:
        return await _record_review(runtime, job, review.reason)
    except _Withdrawn:
        return await _record_withdrawn(runtime, job)
    except _Settling as settling:
        return await _record_settling(runtime, job, settling.until)
    except SapError as error:
        return await _record_failure(runtime, job, error, config, progress)
    except (DBAPIError, PoolTimeout, OSError) as error:  # the bridge's own database or network
        cause = f"the bridge's database or network failed ({type(error).__name__})"
        failure = SapAmbiguousError(cause) if progress.sending else SapRetryableError(cause)
        return await _record_failure(runtime, job, failure, config, progress)
    except Exception as error:  # a bug: never a loop of ambiguous attempts
        _log.exception("bill.delivery.crashed", bill_id=bill_id)
        if progress.sending:  # SAP may have it: only an operator can tell
            reason = f"the bridge failed while sending ({error!r}); check SAP for the document"
            return await _record_review(runtime, job, reason)
        return await _record_failure(runtime, job, _bug(error), config, progress)
    row = await _record_success(runtime, job, result)
    if row is not None and row.status == POSTED:  # payments that arrived before the bill
        await runtime.bill_payments.bill_posted(runtime, row.reference)
    return row


def _bug(error: Exception) -> SapRejectedError:
    return SapRejectedError(f"the bridge failed before sending ({error!r}); nothing was sent")


async def _deliver(
    runtime: BillingRuntime, config: BridgeConfig, job: _Job, progress: _Progress
) -> PostingResult:
    if job.read_back:
        found = await _read_back(runtime, config, job)
        if found is not None:
            return found
        progress.read_backs = job.read_backs + 1
        if job.cancel_requested and not job.reversal:
            raise _Withdrawn()
        if job.sent_at is not None:
            settled = job.sent_at + timedelta(seconds=runtime.settings.ambiguous_settle_seconds)
            if settled > utcnow():
                raise _Settling(settled)
        if job.read_backs >= runtime.settings.read_back_limit:
            raise NeedsReview(
                f"SAP showed no document for {job.reference_id} after {job.read_backs} "
                "read-backs, each after a send that may have posted; check SAP, then resolve "
                "naming its document or retry"
            )
        await _mark_sending(runtime, job)
    progress.sending = True
    result = await runtime.sap.post_journal_entry(
        config,
        job.entry(),
        shed_when_failing=job.pushed,
        request=job.request,
        watch=_SendMarks(runtime, job),
    )
    _log.info(
        "sap.journal_entry.posted",
        bill_id=job.bill_id,
        reversal=job.reversal,
        document=result.accounting_document,
        fiscal_year=result.fiscal_year,
    )
    return result


async def _start(
    runtime: BillingRuntime, config: BridgeConfig, bill_id: str, lease_id: str
) -> _Job | None:
    async with transaction(runtime.sessions) as session:
        bill = await repository.get_for_update(session, bill_id)
        if bill is None or bill.lease_id != lease_id or bill.status not in (QUEUED, REVERSING):
            return None
        if bill.status == QUEUED and bill.cancel_requested and not bill.maybe_posted:
            bill.status, bill.locked_until, bill.lease_id = WITHDRAWN, None, None
            _log.info("bill.withdrawn", bill_id=bill_id)
            return None
        bill.company_code = bill.company_code or config.get("Company Code") or ""
        payload = BillIn.model_validate(bill.payload)
        if bill.posted_entry is None:  # recorded before entries were stored, or before config
            bill.posted_entry = entry_to_json(
                mapping.prepare(
                    payload,
                    config,
                    company_code=bill.company_code,
                    document_reference_id=bill.document_reference_id,
                )
            )
        reversal = bill.status == REVERSING
        job = _Job(
            bill_id,
            lease_id,
            reversal,
            bill.maybe_posted,
            payload,
            bill.company_code,
            (bill.reversal_reference_id or "") if reversal else bill.document_reference_id,
            bill.attempts + 1,
            entry_from_json(bill.posted_entry),
            cancel_requested=bill.cancel_requested,
            read_backs=bill.read_backs,
            sent_at=bill.sent_at,
        )
        if not job.read_back:  # sent right away; a read-back marks the send when it comes
            bill.sent_at = utcnow()
        bill.maybe_posted, bill.attempts = True, bill.attempts + 1
        return job


@dataclass(frozen=True)
class _SendMarks:
    """While a posting waits for a call slot SAP cannot have it, and once the wait has lasted
    `WAIT_NOTICE_SECONDS` the bill says so (`sent_at` cleared): a replica that takes it over
    after this one died sends it after one read-back instead of waiting out the settle time of
    a send that never happened. The send is marked again, under the lease, just before it goes
    out; a lost lease sends nothing."""

    runtime: BillingRuntime
    job: _Job

    async def waiting(self) -> None:
        try:
            await self._mark(None)
        except (DBAPIError, PoolTimeout, OSError):  # the mark only speeds up a takeover
            _log.warning("bill.send_wait.unmarked", bill_id=self.job.bill_id)

    async def sending(self) -> None:
        try:
            held = await self._mark(utcnow())
        except (DBAPIError, PoolTimeout, OSError) as error:
            raise SapRetryableError(
                f"the bridge's database failed before sending ({type(error).__name__}); "
                "nothing was sent"
            ) from None
        if not held:
            raise _LeaseLost()

    async def _mark(self, sent_at: datetime | None) -> bool:
        return await _set_held(self.runtime, self.job, {"sent_at": sent_at})


async def _set_held(runtime: BillingRuntime, job: _Job, values: dict[str, Any]) -> bool:
    """Write `values` while the attempt holds the bill's lease; False once it was lost."""
    async with statement(runtime.engine) as session:
        row = await repository.update_fenced(
            session, job.bill_id, job.lease_id, values, repository.UPDATE_FENCED
        )
    return row is not None


async def _mark_sending(runtime: BillingRuntime, job: _Job) -> None:
    """The read-back found nothing: this attempt sends again, from now on SAP may have it.
    Only read-backs after a send count towards the limit (a send may never have happened)."""
    counted = job.read_backs + (1 if job.sent_at is not None else 0)
    if not await _set_held(runtime, job, {"sent_at": utcnow(), "read_backs": counted}):
        raise _LeaseLost()


async def _read_back(
    runtime: BillingRuntime, config: BridgeConfig, job: _Job
) -> PostingResult | None:
    """The document SAP already holds for what this attempt owes, if an earlier send posted."""
    try:
        documents = await runtime.sap.find_journal_entries(
            config, job.company_code, job.reference_id
        )
    except (SapConfigurationError, SapRejectedError) as error:
        raise NeedsReview(
            f"SAP refused the read-back ({error.detail}); the bill may be posted and is not "
            "sent again until an operator checks SAP"
        ) from None
    except SapError as error:  # unknown stays unknown: never post without a clean read-back
        raise _ReadBackFailed(
            f"could not check SAP for an earlier posting: {error.detail}",
            retry_after=getattr(error, "retry_after", None),
        ) from None
    document = recognition.recognise(job.entry(), documents)
    if document is None:
        return None
    _log.info(
        "sap.journal_entry.found",
        bill_id=job.bill_id,
        document=document.accounting_document,
        reversal=job.reversal,
    )
    return PostingResult(
        document.accounting_document, document.company_code, document.fiscal_year, ()
    )


@contextlib.asynccontextmanager
async def _renewed(runtime: BillingRuntime, job: _Job) -> AsyncIterator[None]:
    """Keep the attempt's lease while it runs."""
    task = asyncio.create_task(_renew(runtime, job))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _renew(runtime: BillingRuntime, job: _Job) -> None:
    every = runtime.settings.lease_seconds / 3
    while True:
        await asyncio.sleep(every)
        try:
            async with statement(runtime.engine) as session:
                held = await repository.renew_lease(
                    session, job.bill_id, job.lease_id, lease_until(runtime, utcnow())
                )
        except Exception:  # the database is away: try again; the lease may still hold
            _log.warning("bill.lease.renew_failed", bill_id=job.bill_id, exc_info=True)
            continue
        if not held:
            _log.warning("bill.lease.lost", bill_id=job.bill_id)
            return


#: a bill no attempt holds or owes anything to, until something new is asked of it
SETTLED: dict[str, Any] = {
    "locked_until": None,
    "lease_id": None,
    "next_attempt_at": None,
    "read_backs": 0,
}


async def _write(
    runtime: BillingRuntime,
    job: _Job | _Failed,
    values: dict[str, Any],
    outcome: str,
    update: Any = repository.UPDATE_FENCED,
) -> Bill | None:
    """Record the attempt's outcome under its lease, count it and add it to the bill's history.

    The history row follows the update on the same connection. That connection is in
    autocommit mode, so the two are not one transaction: a history insert that fails can never
    undo the outcome (a crash in between loses only the history row)."""
    async with statement(runtime.engine) as session:
        row = await repository.update_fenced(session, job.bill_id, job.lease_id, values, update)
        if row is not None:
            await _keep_history(session, job, row, values, outcome)
    if row is None:  # the lease was lost: the attempt that holds the bill records its outcome
        _log.warning("bill.lease.lost_outcome", bill_id=job.bill_id, outcome=outcome)
        outcome = "lease_lost"
    metrics.BILL_DELIVERIES.labels(job.kind, outcome).inc()
    return row


async def _keep_history(
    session: AsyncSession, job: _Job | _Failed, row: Bill, values: dict[str, Any], outcome: str
) -> None:
    """One row of the bill's attempt history, from what the attempt just recorded. Best
    effort: the outcome is already on the bill, so a failure is logged and delivery goes on."""
    document = values.get("reversal_document_number" if job.reversal else "sap_document_number")
    try:
        await repository.insert_attempt(
            session,
            {
                "bill_id": job.bill_id,
                "kind": job.kind,
                "outcome": outcome,
                # an attempt that could not even start sent nothing
                "sent_at": row.sent_at if isinstance(job, _Job) else None,
                "recorded_at": utcnow(),
                "sap_document_number": document,
                "error": values.get("last_error"),
                "sap_messages": values.get("sap_messages"),
            },
        )
    except Exception as error:  # history must never fail a delivery, nor vanish unnoticed
        _log.warning(
            "bill.attempt_history.failed",
            bill_id=job.bill_id,
            outcome=outcome,
            error=type(error).__name__,
            exc_info=True,
        )


async def _record_success(runtime: BillingRuntime, job: _Job, result: PostingResult) -> Bill | None:
    values: dict[str, Any] = SETTLED | {
        "sap_messages": [m.as_dict() for m in result.messages],
        "last_error": None,
        "maybe_posted": False,
    }
    if job.reversal:
        update = repository.UPDATE_FENCED
        values |= {
            "status": REVERSED,
            "reversal_document_number": result.accounting_document,
            "reversal_fiscal_year": result.fiscal_year,
        }
    else:
        update = repository.UPDATE_POSTED_FENCED
        values |= {
            "sap_document_number": result.accounting_document,
            "fiscal_year": result.fiscal_year,
            "posted_at": utcnow(),
        }
    try:
        return await _write(runtime, job, values, "posted", update)
    except IntegrityError:  # the unique document indexes: another bill holds this document
        return await _record_review(
            runtime,
            job,
            f"SAP answered with document {result.accounting_document} ({result.fiscal_year}) "
            "for this bill, but another bill already holds it",
        )


async def _record_review(runtime: BillingRuntime, job: _Job | _Failed, reason: str) -> Bill | None:
    _log.warning("bill.needs_review", bill_id=job.bill_id, reason=reason)
    values = SETTLED | {"status": NEEDS_REVIEW, "last_error": reason}
    return await _write(runtime, job, values, "needs_review")


async def _record_withdrawn(runtime: BillingRuntime, job: _Job) -> Bill | None:
    _log.info("bill.withdrawn", bill_id=job.bill_id, read_back=True)
    values = SETTLED | {"status": WITHDRAWN, "maybe_posted": False, "last_error": None}
    return await _write(runtime, job, values, "withdrawn")


async def _record_settling(runtime: BillingRuntime, job: _Job, until: datetime) -> Bill | None:
    values = {
        "locked_until": None,
        "lease_id": None,
        "next_attempt_at": until,
        "last_error": "SAP may still be working on the last send; it is read back again at "
        + until.isoformat(timespec="seconds"),
    }
    return await _write(runtime, job, values, "ambiguous")


@dataclass(frozen=True)
class _Failed:
    """A bill whose attempt could not even start (its entry cannot be built)."""

    bill_id: str
    lease_id: str
    kind: str = "posting"
    attempt: int = 1
    reversal: bool = False


async def _record_failure(
    runtime: BillingRuntime,
    job: _Job | _Failed,
    error: SapError,
    config: BridgeConfig,
    progress: _Progress | None = None,
) -> Bill | None:
    progress = progress or _Progress()
    values: dict[str, Any] = {"last_error": error.detail, "locked_until": None, "lease_id": None}
    if isinstance(error, SapRejectedError):
        # a rejected reversal leaves the bill posted, with SAP's reason to act on
        values |= SETTLED | {
            "sap_messages": [m.as_dict() for m in error.messages],
            "maybe_posted": False,
            "status": POSTED if job.reversal else REJECTED,
        }
        _log.warning(
            "sap.journal_entry.rejected",
            bill_id=job.bill_id,
            reversal=job.reversal,
            error=error.detail,
        )
        outcome = "rejected"
    else:
        delay = _retry_delay(runtime, config, job.attempt, error)
        ambiguous = isinstance(error, SapAmbiguousError | _ReadBackFailed)
        # read-backs that found nothing count until a clear answer from SAP settles the question
        counted = max(progress.read_backs, job.read_backs) if isinstance(job, _Job) else 0
        values |= {
            "maybe_posted": ambiguous,
            "next_attempt_at": utcnow() + timedelta(seconds=delay),
            "read_backs": counted if ambiguous else 0,
        }
        _log.warning(
            "sap.journal_entry.deferred",
            bill_id=job.bill_id,
            error=error.detail,
            ambiguous=ambiguous,
            retry_in=round(delay, 2),
        )
        outcome = "ambiguous" if ambiguous else "deferred"
    return await _write(runtime, job, values, outcome)


def _retry_delay(
    runtime: BillingRuntime, config: BridgeConfig, attempt: int, error: SapError
) -> float:
    settings = runtime.settings
    retry_after = error.retry_after if isinstance(error, SapRetryableError) else None
    delay = backoff(
        attempt,
        initial=settings.retry_base_seconds,
        maximum=settings.retry_max_seconds,
        retry_after=retry_after,
    )
    if isinstance(error, SapAmbiguousError):  # a SAP still working on it must finish first
        delay = max(delay, settings.ambiguous_settle_seconds)
    if isinstance(error, SapConfigurationError):  # an operator must act: do not spin
        delay = max(delay, settings.retry_max_seconds / 4)
    return delay


async def _release(runtime: BillingRuntime, bill_id: str, lease_id: str) -> Bill | None:
    async with transaction(runtime.sessions) as session:
        bill = await repository.get(session, bill_id)
        if bill is not None and bill.lease_id == lease_id:
            bill.locked_until, bill.lease_id = None, None
        return bill
