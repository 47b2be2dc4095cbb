"""Payment rules: store the event, match it to a bill, judge it, record it exactly once.

Every path (webhook payment object, business event, clearing sync) ends in `record`, which in
one transaction inserts the inbox row (unique keys: duplicates stop here), locks the bill,
judges the payment against it and inserts the payment (unique per SAP payment document and
bill reference). Business events need SAP: they are stored `pending`, answered 202 and
resolved afterwards (`app.payments.clearing`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.models import POSTED, REJECTED, REVERSED, REVERSING, WITHDRAWN
from app.config.service import BridgeConfig
from app.payments import repository
from app.payments.models import (
    CLEARING,
    CONFIRMED,
    DONE,
    MISMATCH,
    UNMATCHED,
    Payment,
    payment_key,
)
from app.payments.schemas import PaymentIn
from app.platform import currency
from app.platform.db import transaction, utcnow
from app.platform.logging import get_logger
from app.platform.runtime import PlatformRuntime

_log = get_logger("app.payments")
_NOT_PAYABLE = (REJECTED, WITHDRAWN)
ALREADY = "already_confirmed"


@dataclass(frozen=True)
class PaymentFact:
    """A payment to record, whichever path reported it."""

    company_code: str
    payment_document: str
    payment_fiscal_year: str
    bill_reference: str
    amount: Decimal
    currency: str
    bill_id: str | None = None
    sap_document_number: str | None = None
    posting_date: date | None = None
    note: str | None = None
    #: the receivable SAP holds for the bill, when known (clearing sync)
    receivable_amount: Decimal | None = None

    @property
    def key(self) -> str:
        """The inbox key shared by every path: company/payment document/year/bill reference."""
        return payment_key(
            self.company_code,
            self.payment_document,
            self.payment_fiscal_year,
            self.bill_reference,
        )


@dataclass(frozen=True)
class Outcome:
    """What recording one payment did."""

    status: str  # confirmed, mismatch, unmatched or already_confirmed
    event_id: int | None = None
    bill_id: str | None = None
    reasons: list[str] = field(default_factory=list)


def fact_from_webhook(payment: PaymentIn, config: BridgeConfig) -> PaymentFact:
    """The payment object as a fact; the company code defaults to the configured one, the
    fiscal year to the year of the posting date (an assumption that holds for calendar fiscal
    years; other variants must send `paymentFiscalYear`)."""
    return PaymentFact(
        company_code=payment.companyCode or config.get("Company Code") or "",
        payment_document=payment.paymentDocument,
        payment_fiscal_year=payment.fiscal_year,
        bill_reference=payment.hmsBillReference,
        amount=payment.amount,
        currency=payment.currency,
        sap_document_number=payment.sapDocumentNumber,
        posting_date=payment.postingDate,
        note=payment.note,
    )


# --- recording ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """One payment to record with the inbox row of the event that reported it."""

    fact: PaymentFact
    source: str
    event: dict[str, Any]


class ReplayInBatch(Exception):
    """A new event for a payment recorded long ago (its event pruned) shared a batch with other
    payments, which were judged as if it were new; the batch is written again one by one."""


async def record(
    db: repository.Db, fact: PaymentFact, *, source: str, event: dict[str, Any]
) -> Outcome:
    """Store the event and the payment it reports, once; the caller commits."""
    return (await record_many(db, [Recording(fact, source, event)]))[0]


async def record_many(db: repository.Db, recordings: Sequence[Recording]) -> list[Outcome]:
    """`record` for several payments in one transaction: a few statements for all of them.

    They are judged in the order given. One that shares an inbox key with an earlier one waits
    for a later round, so that within a round every key is new to the others and every row the
    database inserts names its recording. Raises `ReplayInBatch` (write them one by one) in the
    rare case that invalidates judging several together."""
    outcomes: dict[int, Outcome] = {}
    for round_ in _rounds(recordings):
        outcomes |= await _record_round(db, round_, multiple=len(recordings) > 1)
    return [outcomes[index] for index in range(len(recordings))]


def _rounds(recordings: Sequence[Recording]) -> list[list[tuple[int, Recording]]]:
    rounds: list[list[tuple[int, Recording]]] = []
    last_round: dict[str, int] = {}  # inbox key -> the latest round that uses it
    for index, recording in enumerate(recordings):
        keys = [f"{column}:{value}" for column, value in _inbox_keys(recording)]
        at = max((last_round[key] + 1 for key in keys if key in last_round), default=0)
        if at == len(rounds):
            rounds.append([])
        rounds[at].append((index, recording))
        last_round |= dict.fromkeys(keys, at)
    return rounds


def _inbox_keys(recording: Recording) -> list[tuple[str, Any]]:
    event = recording.event
    keys = [("payment_key", recording.fact.key)]
    keys += [(c, event[c]) for c in ("webhook_id", "cloudevent_key") if event.get(c) is not None]
    return keys


async def _record_round(
    db: repository.Db, round_: list[tuple[int, Recording]], *, multiple: bool
) -> dict[int, Outcome]:
    events = [{**r.event, "payment_key": r.fact.key} for _, r in round_]
    event_ids = await repository.insert_events(db, events)
    outcomes = {i: Outcome(ALREADY) for i, r in round_ if r.fact.key not in event_ids}
    if outcomes:
        await _flag_disagreements(db, [r.fact for i, r in round_ if i in outcomes])
    fresh = [(i, r.fact, r.source, event_ids[r.fact.key]) for i, r in round_ if i not in outcomes]
    if not fresh:
        return outcomes
    references = {fact.bill_reference for _, fact, _, _ in fresh}
    bills = await repository.bills_by_reference(db, references)
    paid: dict[str, Decimal] = {}  # confirmed so far per bill, this round included
    payments = []
    for index, fact, source, event_id in fresh:
        candidates = bills.get(fact.bill_reference, [])
        if fact.bill_id is not None:
            candidates = [(b, p) for b, p in candidates if b.bill_id == fact.bill_id]
        bill, paid_before, ambiguous = choose_bill(candidates, fact.sap_document_number)
        already = paid.setdefault(bill.bill_id, paid_before) if bill else Decimal(0)
        status, reasons = (UNMATCHED, [ambiguous]) if ambiguous else judge(fact, bill, already)
        matched = bill.bill_id if bill is not None and status != UNMATCHED else None
        if matched and status == CONFIRMED:
            paid[matched] = already + fact.amount
        payments.append(_payment_values(fact, status, reasons, matched, source, event_id))
        outcomes[index] = Outcome(status, event_id, matched, reasons)
    inserted = await repository.insert_payments(db, payments)
    for index, fact, _, event_id in fresh:
        if fact.key in inserted:
            continue
        if multiple:
            raise ReplayInBatch(fact.key)
        await repository.finish_event(db, event_id, "payment already recorded", utcnow())
        await _flag_disagreements(db, [fact])
        outcomes[index] = Outcome(ALREADY, event_id)
    return outcomes


async def _flag_disagreements(db: repository.Db, facts: Sequence[PaymentFact]) -> None:
    """A payment reported again (by a webhook, the clearing sync or a business event) with
    another amount or currency: the two reports cannot both be right, so the stored payment is
    flagged `mismatch` and stops counting as paid until an operator looks."""
    keys = [
        (f.company_code, f.payment_document, f.payment_fiscal_year, f.bill_reference) for f in facts
    ]
    found = await repository.payments_by_key(db, keys)
    stored = {
        payment_key(p.company_code, p.payment_document, p.payment_fiscal_year, p.bill_reference): p
        for p in found
    }
    for fact in facts:
        payment = stored.get(fact.key)
        if payment is None or (payment.amount, payment.currency) == (fact.amount, fact.currency):
            continue
        first = _money(Decimal(payment.amount), payment.currency)
        reason = f"reported again as {_money(fact.amount, fact.currency)}; first as {first}"
        reasons = list(payment.reasons or [])
        if reason not in reasons:
            await repository.flag_payment(db, payment.id, [*reasons, reason], utcnow())
            _log.warning(
                "payment.reports_disagree",
                payment_document=fact.payment_document,
                bill_reference=fact.bill_reference,
            )


def _money(amount: Decimal, code: str) -> str:
    return f"{currency.display(amount, code)} {code}"


def _payment_values(
    fact: PaymentFact,
    status: str,
    reasons: list[str],
    bill_id: str | None,
    source: str,
    event_id: int,
) -> dict[str, Any]:
    now = utcnow()
    return {
        "company_code": fact.company_code,
        "payment_document": fact.payment_document,
        "payment_fiscal_year": fact.payment_fiscal_year,
        "bill_reference": fact.bill_reference,
        "bill_id": bill_id,
        "sap_document_number": fact.sap_document_number,
        "amount": fact.amount,
        "currency": fact.currency,
        "posting_date": fact.posting_date,
        "status": status,
        "reasons": reasons,
        "source": source,
        "event_id": event_id,
        "note": fact.note,
        "created_at": now,
        "updated_at": now,
    }


def choose_bill(
    candidates: Sequence[tuple[Any, Decimal]], document: str | None
) -> tuple[Any, Decimal, str | None]:
    """The bill a payment is for, its paid amount, and why none was chosen when it is unclear.

    Only bills a customer can pay count: not refunds (a negative total), not bills SAP never
    took (rejected, withdrawn). Of several, the one holding the payment's `sapDocumentNumber`;
    without one, none: the payment waits `unmatched` for an operator rather than paying
    whichever bill came first."""
    payable = [(b, p) for b, p in candidates if b.net_total > 0 and b.status not in _NOT_PAYABLE]
    if document:
        for bill, paid in payable:
            if bill.sap_document_number == document:
                return bill, paid, None
    if len(payable) > 1:
        ids = ", ".join(sorted(b.bill_id for b, _ in payable))
        held = f"none holds SAP document {document}" if document else "no sapDocumentNumber"
        return None, Decimal(0), f"matches {len(payable)} bills ({ids}); {held}"
    if payable:
        return payable[0][0], payable[0][1], None
    return None, Decimal(0), None


def judge(fact: PaymentFact, bill: Any, paid: Decimal) -> tuple[str, list[str]]:
    """`confirmed`, `mismatch` (with reasons) or `unmatched` for a payment against a bill."""
    if bill is None:
        return UNMATCHED, [f"no bill with reference {fact.bill_reference}"]
    if not bill.sap_document_number:
        return UNMATCHED, [
            f"bill {bill.bill_id} is {bill.status}, not posted to SAP; matched again once it posts"
        ]
    reasons = []
    if bill.status in (REVERSING, REVERSED):
        reasons.append(f"bill {bill.bill_id} is {bill.status}")
    if fact.currency != bill.currency:
        reasons.append(f"currency {fact.currency} differs from the bill's {bill.currency}")
    elif not currency.fits(fact.amount, fact.currency):
        reasons.append(f"amount {fact.amount} has more decimals than {fact.currency} allows")
    if fact.sap_document_number and fact.sap_document_number != bill.sap_document_number:
        reasons.append(
            f"SAP document {fact.sap_document_number} is not the document the bridge posted "
            f"for bill {bill.bill_id} ({bill.sap_document_number})"
        )
    total = Decimal(bill.net_total)
    if fact.receivable_amount is not None and fact.receivable_amount != total:
        reasons.append(f"SAP's receivable {fact.receivable_amount} differs from the bill total")
    if not reasons and paid + fact.amount > total:
        outstanding = currency.format_amount(total - paid, bill.currency)
        reasons.append(f"overpayment: {fact.amount} exceeds the outstanding {outstanding}")
    return (MISMATCH if reasons else CONFIRMED), reasons


def clearing_event(fact: PaymentFact, source: str, parent: int | None) -> dict[str, Any]:
    """The inbox row of a payment found in SAP (clearing sync or business event)."""
    body = {k: (str(v) if v is not None else None) for k, v in asdict(fact).items()}
    return {
        "kind": CLEARING,
        "status": DONE,
        "authenticated_by": source,
        "company_code": fact.company_code,
        "fiscal_year": fact.payment_fiscal_year,
        "accounting_document": fact.payment_document,
        "body": json.dumps({**body, "parent_event_id": parent}),
        "attempts": 0,
        "received_at": utcnow(),
    }


# --- re-matching ----------------------------------------------------------------------------


async def rematch(session: AsyncSession, reference: str) -> int:
    """Attach unmatched payments of `reference` to its bill once posted; how many moved."""
    candidates = (await repository.bills_by_reference(session, [reference])).get(reference, [])
    if not any(bill.status == POSTED for bill, _ in candidates):
        return 0
    paid = {bill.bill_id: amount for bill, amount in candidates}
    moved = 0
    for payment in await repository.unmatched_for_reference(session, reference):
        fact = _fact_of(payment)
        bill, _, ambiguous = choose_bill(candidates, payment.sap_document_number)
        if bill is None:
            if ambiguous and [ambiguous] != payment.reasons:
                payment.reasons, payment.updated_at = [ambiguous], utcnow()
            continue
        already = paid.get(bill.bill_id, Decimal(0))
        status, reasons = judge(fact, bill, already)
        if status == UNMATCHED:
            continue
        payment.bill_id, payment.status, payment.reasons = bill.bill_id, status, reasons
        payment.updated_at = utcnow()
        if status == CONFIRMED:
            paid[bill.bill_id] = paid.get(bill.bill_id, Decimal(0)) + payment.amount
        moved += 1
    return moved


async def on_bill_posted(runtime: PlatformRuntime, reference: str) -> int:
    """Hook for billing: a bill posted, so payments that waited for its reference match now."""
    async with transaction(runtime.sessions) as session:
        moved = await rematch(session, reference)
    if moved:
        _log.info("payment.rematched", reference=reference, payments=moved)
    return moved


def _fact_of(payment: Payment) -> PaymentFact:
    return PaymentFact(
        company_code=payment.company_code,
        payment_document=payment.payment_document,
        payment_fiscal_year=payment.payment_fiscal_year,
        bill_reference=payment.bill_reference,
        amount=Decimal(payment.amount),
        currency=payment.currency,
        sap_document_number=payment.sap_document_number,
    )
