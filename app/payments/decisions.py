"""Operators' decisions on payments: match one to a bill, accept a mismatch, dismiss.

The API, the CLI and the console call these same functions. Each takes a session and leaves
the commit to its caller; each refuses with the app's errors (404 unknown payment or bill,
409 a state that does not allow the decision, 422 a bad note), writing nothing.

* **match** to a bill: from `unmatched`, or `mismatch` (attached to the wrong bill, say); the
  payment is judged against that bill as an incoming payment is: `confirmed` or `mismatch`;
* **accept**: a `mismatch` on a posted bill, in its currency, becomes `accepted` and counts as
  paid;
* **dismiss**: `unmatched` or `mismatch` becomes `dismissed`: it does not count and leaves the
  exception lists.

`confirmed`, `accepted` and `dismissed` are final for operators (a later SAP report that
disagrees with a payment still flags it `mismatch`, as for any payment).

Each decision writes its outcome with a conditional UPDATE that holds only while the payment
is as it was read (status and `updated_at`), and its row in `payment_decisions` in the same
transaction: of two decisions made at once on one payment, exactly one applies; the other is
refused with 409 "changed meanwhile". A match locks the bill first (as the webhook does), so
payments judged against one bill take turns and an overpayment is seen.
"""

from __future__ import annotations

import base64
import re
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.billing import repository as bills
from app.billing.models import POSTED, Bill
from app.payments import repository, service
from app.payments.clearing import VANISHED
from app.payments.models import (
    ACCEPT,
    ACCEPTED,
    DISMISS,
    DISMISSED,
    MATCH,
    MISMATCH,
    STATUSES,
    UNMATCHED,
    Payment,
    PaymentDecision,
)
from app.payments.schemas import (
    DecisionView,
    PaymentDetail,
    PaymentPage,
    PaymentRecord,
    note_problem,
)
from app.platform import currency
from app.platform.db import utcnow
from app.platform.errors import ConflictError, InvalidInputError, NotFoundError
from app.platform.logging import get_logger, request_id_var

_log = get_logger("app.payments.decisions")

#: the statuses each decision may start from
ALLOWED: dict[str, tuple[str, ...]] = {
    MATCH: (UNMATCHED, MISMATCH),
    ACCEPT: (MISMATCH,),
    DISMISS: (UNMATCHED, MISMATCH),
}
_WHAT = {
    MATCH: "an unmatched payment or a mismatch can be matched to a bill",
    ACCEPT: "a mismatch can be accepted",
    DISMISS: "an unmatched payment or a mismatch can be dismissed",
}
#: `reasons` that are about the payment's reports, not about the bill it was judged against:
#: choosing a bill does not answer them, so a match keeps them (and the payment a mismatch)
_REPORTED_AGAIN = "reported again as "


# --- reading --------------------------------------------------------------------------------


async def get(session: AsyncSession, payment_id: int) -> PaymentDetail:
    """One payment with its audit trail; 404 when there is none."""
    payment = await _payment(session, payment_id)
    trail = await repository.decisions_of(session, payment_id)
    return PaymentDetail(**record(payment).model_dump(), decisions=[_decision(d) for d in trail])


async def page(
    session: AsyncSession, status: str | None, q: str | None, cursor: str | None, limit: int
) -> PaymentPage:
    """Payments newest first, one page; `next_cursor` fetches the next."""
    if status is not None and status not in STATUSES:
        raise InvalidInputError(f"status: one of {', '.join(STATUSES)}", field="status")
    before = _decode_cursor(cursor) if cursor else None
    rows = await repository.page_payments(session, status, (q or "").strip(), before, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _encode_cursor(rows[-1].id) if more and rows else None
    return PaymentPage(items=[record(p) for p in rows], next_cursor=next_cursor)


def record(payment: Payment) -> PaymentRecord:
    return PaymentRecord(
        id=payment.id,
        company_code=payment.company_code,
        payment_document=payment.payment_document,
        payment_fiscal_year=payment.payment_fiscal_year or "",
        bill_reference=payment.bill_reference,
        bill_id=payment.bill_id,
        sap_document_number=payment.sap_document_number,
        amount=currency.display(Decimal(payment.amount), payment.currency),
        currency=payment.currency,
        posting_date=payment.posting_date,
        status=payment.status,  # type: ignore[arg-type]
        reasons=list(payment.reasons or []),
        source=payment.source,
        note=payment.note,
        allowed_actions=[a for a, starts in ALLOWED.items() if payment.status in starts],  # type: ignore[misc]
        created_at=payment.created_at,
        updated_at=payment.updated_at,
    )


def _decision(row: PaymentDecision) -> DecisionView:
    return DecisionView(
        action=row.action,  # type: ignore[arg-type]
        note=row.note,
        actor=row.actor,
        request_id=row.request_id,
        from_status=row.from_status,  # type: ignore[arg-type]
        to_status=row.to_status,  # type: ignore[arg-type]
        bill_id=row.bill_id,
        at=row.created_at,
    )


# --- deciding -------------------------------------------------------------------------------


async def match(
    session: AsyncSession,
    payment_id: int,
    bill: str,
    note: str,
    actor: str,
    expected_status: str | None = None,
) -> PaymentDetail:
    """Attach the payment to `bill` (a bill id, else an HMIS reference) and judge it against
    that bill as an incoming payment is judged: `confirmed` or `mismatch`."""
    note = _note(note)
    payment = await _decidable(session, payment_id, MATCH, expected_status)
    target = await _bill_to_match(session, payment, bill)
    paid = await repository.paid_on(session, target.bill_id)  # after the lock: current
    status, reasons = service.judge(_fact(payment), target, paid)
    kept = [r for r in payment.reasons or [] if _about_the_payment(r) and r not in reasons]
    if kept:
        status, reasons = MISMATCH, [*reasons, *kept]
    return await _apply(session, payment, MATCH, note, actor, status, reasons, target.bill_id)


async def accept(
    session: AsyncSession,
    payment_id: int,
    note: str,
    actor: str,
    expected_status: str | None = None,
) -> PaymentDetail:
    """A mismatch counts as paid on its bill (`accepted`); its reasons stay on record."""
    note = _note(note)
    payment = await _decidable(session, payment_id, ACCEPT, expected_status)
    if payment.bill_id is None:
        raise _conflict(
            payment, f"payment {payment.id} is attached to no bill; match it to a bill first"
        )
    bill = await bills.get_for_update(session, payment.bill_id)  # as a cancel takes it
    if bill is None or bill.status != POSTED:
        state = bill.status if bill is not None else "gone"
        raise _conflict(
            payment,
            f"bill {payment.bill_id} is {state}, not posted: an accepted payment would count "
            "towards a bill that no longer asks for it; dismiss the payment once it is "
            "settled (refunded), or match it to the right bill",
        )
    if payment.currency != bill.currency:
        raise _conflict(
            payment,
            f"payment {payment.id} is in {payment.currency}, bill {bill.bill_id} in "
            f"{bill.currency}: only a payment in the bill's currency can count towards it",
        )
    if not currency.fits(Decimal(payment.amount), payment.currency):
        raise _conflict(
            payment,
            f"payment {payment.id}'s amount {Decimal(payment.amount):f} has more decimals than "
            f"{payment.currency} allows, so it cannot count towards the bill",
        )
    reasons = list(payment.reasons or [])
    # read under the bill's lock: what counts now, not what was judged when it arrived
    paid = await repository.paid_on(session, bill.bill_id) + Decimal(payment.amount)
    if paid > Decimal(bill.net_total):
        code = bill.currency
        reasons.append(
            f"accepted above the bill's total: paid {currency.display(paid, code)} of "
            f"{currency.display(Decimal(bill.net_total), code)} (refund due)"
        )
    return await _apply(session, payment, ACCEPT, note, actor, ACCEPTED, reasons, bill.bill_id)


async def dismiss(
    session: AsyncSession,
    payment_id: int,
    note: str,
    actor: str,
    expected_status: str | None = None,
) -> PaymentDetail:
    """An unmatched payment or a mismatch does not count (`dismissed`), and leaves the
    reconciliation's exception lists and the unresolved-payments gauges."""
    note = _note(note)
    payment = await _decidable(session, payment_id, DISMISS, expected_status)
    reasons = list(payment.reasons or [])
    return await _apply(session, payment, DISMISS, note, actor, DISMISSED, reasons, payment.bill_id)


async def _apply(
    session: AsyncSession,
    payment: Payment,
    action: str,
    note: str,
    actor: str,
    status: str,
    reasons: list[str],
    bill_id: str | None,
) -> PaymentDetail:
    now = utcnow()
    values = {"status": status, "reasons": reasons, "bill_id": bill_id, "updated_at": now}
    if not await repository.change_payment(session, payment, values):
        raise await _changed(session, payment.id)
    session.add(
        PaymentDecision(
            payment_id=payment.id,
            action=action,
            note=note,
            actor=actor,
            request_id=request_id_var.get(),
            from_status=payment.status,
            to_status=status,
            bill_id=bill_id,
            created_at=now,
        )
    )
    await session.flush()
    _log.info(
        "payment.decision",
        payment_id=payment.id,
        action=action,
        from_status=payment.status,
        to_status=status,
        bill_id=bill_id,
        actor=actor,
    )
    return await get(session, payment.id)


# --- checks ---------------------------------------------------------------------------------


def _note(note: str) -> str:
    trimmed = note.strip()
    if (problem := note_problem(trimmed)) is not None:
        raise InvalidInputError(f"note: {problem}", field="note")
    return trimmed


async def _payment(session: AsyncSession, payment_id: int) -> Payment:
    payment = await repository.get_payment(session, payment_id)
    if payment is None:
        raise NotFoundError(f"no payment {payment_id}")
    return payment


async def _decidable(
    session: AsyncSession, payment_id: int, action: str, expected_status: str | None
) -> Payment:
    payment = await _payment(session, payment_id)
    if expected_status is not None and payment.status != expected_status:
        raise _changed_to(payment.id, payment.status)
    if payment.status not in ALLOWED[action]:
        raise _conflict(payment, f"payment {payment.id} is {payment.status}; only {_WHAT[action]}")
    return payment


async def _bill_to_match(session: AsyncSession, payment: Payment, named: str) -> Bill:
    """The bill an operator named, locked: by id, else the one posted bill with that HMIS
    reference (of several, the one holding the payment's SAP document)."""
    named = named.strip()
    if not named:
        raise InvalidInputError("bill_id: name the bill (its id or HMIS reference)")
    bill = await bills.get_for_update(session, named)
    if bill is None:
        candidates = await repository.bills_with_reference(session, named)
        if not candidates:
            raise NotFoundError(f"no bill with id or reference {named}")
        payable = [b for b in candidates if _payable(b)]
        if not payable:
            bill = candidates[0]  # refused below, saying why
        else:
            chosen = [b for b in payable if b.sap_document_number == payment.sap_document_number]
            if len(payable) > 1 and len(chosen) != 1:
                ids = ", ".join(sorted(b.bill_id for b in payable))
                raise _conflict(
                    payment,
                    f"reference {named} matches {len(payable)} posted bills ({ids}); "
                    "name the bill by its id",
                )
            bill = await bills.get_for_update(session, (chosen or payable)[0].bill_id)
            assert bill is not None  # bills are never deleted
    if not _payable(bill):
        if Decimal(bill.net_total) <= 0:
            why = "a refund (negative total): payments cannot be matched to it"
        else:
            why = f"{bill.status}, not posted: a payment can be matched only to a posted bill"
        raise _conflict(payment, f"bill {bill.bill_id} is {why}")
    return bill


def _payable(bill: Bill) -> bool:
    return bill.status == POSTED and bool(bill.sap_document_number) and bill.net_total > 0


def _about_the_payment(reason: str) -> bool:
    return reason.startswith(_REPORTED_AGAIN) or reason == VANISHED


def _fact(payment: Payment) -> service.PaymentFact:
    amount, code = Decimal(payment.amount), payment.currency
    if currency.is_known(code) and currency.fits(amount, code):
        amount = amount.quantize(currency.quantum(code))  # as it was reported, not as stored
    return service.PaymentFact(
        company_code=payment.company_code,
        payment_document=payment.payment_document,
        payment_fiscal_year=payment.payment_fiscal_year,
        bill_reference=payment.bill_reference,
        amount=amount,
        currency=code,
        sap_document_number=payment.sap_document_number,
        posting_date=payment.posting_date,
    )


def _conflict(payment: Payment, detail: str) -> ConflictError:
    return ConflictError(detail, payment_status=payment.status)


def _changed_to(payment_id: int, status: str | None) -> ConflictError:
    return ConflictError(
        f"payment {payment_id} changed meanwhile (now {status}); look at it again",
        payment_status=status,
    )


async def _changed(session: AsyncSession, payment_id: int) -> ConflictError:
    return _changed_to(payment_id, await repository.current_status(session, payment_id))


# --- cursor ---------------------------------------------------------------------------------


def _encode_cursor(payment_id: int) -> str:
    return base64.urlsafe_b64encode(f"P{payment_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    if not (re.fullmatch(r"P[1-9][0-9]{0,18}", text) and int(text[1:]) < 2**63):
        raise InvalidInputError("cursor: not a cursor this service issued", field="cursor")
    return int(text[1:])
