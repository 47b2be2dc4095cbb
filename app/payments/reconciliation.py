"""`GET /reconciliation`: what finance has to look at, as JSON or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.models import Bill
from app.payments import repository
from app.payments.models import MISMATCH, UNMATCHED, Payment
from app.payments.schemas import CurrencyTotals, OpenBill, PaymentLine, Reconciliation
from app.platform import currency
from app.platform.csv_cells import safe_cell
from app.platform.errors import InvalidInputError

BUCKETS = ((30, "0-30"), (60, "31-60"), (90, "61-90"))


def bucket(age_days: int) -> str:
    """The ageing bucket of a bill `age_days` old."""
    for limit, name in BUCKETS:
        if age_days <= limit:
            return name
    return "90+"


async def report(session: AsyncSession, start: date | None, end: date) -> Reconciliation:
    """Open bills (posted, not fully paid) dated in range, plus unmatched and mismatched
    payments dated in range (posting date, else arrival), with totals per currency."""
    if start is not None and start > end:
        raise InvalidInputError("from: must not be after to", field="from")
    open_bills = [
        _open_bill(bill, paid, end)
        for bill, paid in await repository.posted_bills_between(session, start, end)
        if paid < bill.net_total
    ]
    payments = [
        p
        for p in await repository.payments_in(session, (UNMATCHED, MISMATCH))
        if _in_range(_day(p), start, end)
    ]
    unmatched = [_line(p) for p in payments if p.status == UNMATCHED]
    mismatches = [_line(p) for p in payments if p.status == MISMATCH]
    return Reconciliation(
        from_date=start,
        to_date=end,
        open_bills=open_bills,
        unmatched_payments=unmatched,
        mismatches=mismatches,
        totals=_totals(open_bills, unmatched, mismatches),
    )


def _day(payment: Payment) -> date:
    return payment.posting_date or payment.created_at.date()


def _in_range(day: date, start: date | None, end: date) -> bool:
    return (start is None or day >= start) and day <= end


def _open_bill(bill: Bill, paid: Decimal, end: date) -> OpenBill:
    total, code = Decimal(bill.net_total), bill.currency
    age = max(0, (end - bill.bill_date).days)
    return OpenBill(
        bill_id=bill.bill_id,
        reference=bill.reference,
        company_code=bill.company_code,
        sap_document_number=bill.sap_document_number,
        fiscal_year=bill.fiscal_year,
        bill_date=bill.bill_date,
        currency=code,
        net_total=currency.display(total, code),
        paid_amount=currency.display(paid, code),
        outstanding_amount=currency.display(total - paid, code),
        age_days=age,
        ageing_bucket=bucket(age),
    )


def _line(payment: Payment) -> PaymentLine:
    return PaymentLine(
        payment_document=payment.payment_document,
        payment_fiscal_year=payment.payment_fiscal_year or "",
        company_code=payment.company_code,
        bill_reference=payment.bill_reference,
        bill_id=payment.bill_id,
        sap_document_number=payment.sap_document_number,
        amount=currency.display(Decimal(payment.amount), payment.currency),
        currency=payment.currency,
        posting_date=_day(payment),
        status=payment.status,
        source=payment.source,
        reasons=list(payment.reasons or []),
    )


def _totals(
    bills: Sequence[OpenBill], unmatched: Sequence[PaymentLine], mismatches: Sequence[PaymentLine]
) -> list[CurrencyTotals]:
    codes = sorted({b.currency for b in bills} | {p.currency for p in [*unmatched, *mismatches]})
    totals = []
    for code in codes:
        open_ = [Decimal(b.outstanding_amount) for b in bills if b.currency == code]
        lost = [Decimal(p.amount) for p in unmatched if p.currency == code]
        odd = [Decimal(p.amount) for p in mismatches if p.currency == code]
        totals.append(
            CurrencyTotals(
                currency=code,
                open_bills=len(open_),
                outstanding_amount=currency.display(sum(open_, Decimal(0)), code),
                unmatched_payments=len(lost),
                unmatched_amount=currency.display(sum(lost, Decimal(0)), code),
                mismatched_payments=len(odd),
                mismatched_amount=currency.display(sum(odd, Decimal(0)), code),
            )
        )
    return totals


CSV_COLUMNS = (
    "section",
    "bill_id",
    "reference",
    "company_code",
    "sap_document_number",
    "fiscal_year",
    "payment_document",
    "payment_fiscal_year",
    "date",
    "currency",
    "amount",
    "paid_amount",
    "outstanding_amount",
    "age_days",
    "ageing_bucket",
    "status",
    "reasons",
)


def to_csv(result: Reconciliation) -> str:
    """One row per open bill, unmatched payment and mismatch, then one per currency total."""
    out = io.StringIO()
    writer = _SafeWriter(out)
    writer.writeheader()
    for b in result.open_bills:
        writer.writerow(
            {
                "section": "open_bill",
                "bill_id": b.bill_id,
                "reference": b.reference,
                "company_code": b.company_code,
                "sap_document_number": b.sap_document_number,
                "fiscal_year": b.fiscal_year,
                "date": b.bill_date.isoformat(),
                "currency": b.currency,
                "amount": b.net_total,
                "paid_amount": b.paid_amount,
                "outstanding_amount": b.outstanding_amount,
                "age_days": b.age_days,
                "ageing_bucket": b.ageing_bucket,
                "status": "open",
            }
        )
    for section, lines in (
        ("unmatched_payment", result.unmatched_payments),
        ("mismatch", result.mismatches),
    ):
        for p in lines:
            writer.writerow(
                {
                    "section": section,
                    "bill_id": p.bill_id,
                    "reference": p.bill_reference,
                    "company_code": p.company_code,
                    "sap_document_number": p.sap_document_number,
                    "payment_document": p.payment_document,
                    "payment_fiscal_year": p.payment_fiscal_year,
                    "date": p.posting_date.isoformat() if p.posting_date else "",
                    "currency": p.currency,
                    "amount": p.amount,
                    "status": p.status,
                    "reasons": "; ".join(p.reasons),
                }
            )
    for t in result.totals:
        writer.writerow(
            {
                "section": "total",
                "currency": t.currency,
                "amount": t.outstanding_amount,
                "outstanding_amount": t.outstanding_amount,
                "status": f"{t.open_bills} open, {t.unmatched_payments} unmatched "
                f"({t.unmatched_amount}), {t.mismatched_payments} mismatched "
                f"({t.mismatched_amount})",
            }
        )
    return out.getvalue()


class _SafeWriter(csv.DictWriter):  # type: ignore[type-arg]
    """A CSV writer that keeps spreadsheet programs from running cells as formulas."""

    def __init__(self, out: io.StringIO) -> None:
        super().__init__(out, CSV_COLUMNS, lineterminator="\r\n")

    def writerow(self, rowdict: dict[str, object]) -> object:  # type: ignore[override]
        return super().writerow({k: safe_cell(v) for k, v in rowdict.items()})
