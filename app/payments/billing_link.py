"""What the payments domain does for billing, which cannot import it (`BillPayments`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.runtime import PaidOnBill
from app.billing.schemas import PaymentView
from app.payments import repository, service
from app.payments.models import COUNTED, MISMATCH, Payment
from app.platform import currency
from app.platform.db import statement, utcnow
from app.platform.logging import get_logger
from app.platform.runtime import PlatformRuntime

_log = get_logger("app.payments")
REFUND_DUE = "bill reversed after payment: refund due"


class PaymentsOfBills:
    """Billing's `BillPayments`, answered from the payments the bridge recorded."""

    async def paid(
        self, session: AsyncSession, bill_ids: Sequence[str]
    ) -> Mapping[str, PaidOnBill]:
        found = await repository.for_bills(session, bill_ids)
        return {bill_id: _paid_on(found[bill_id]) for bill_id in bill_ids}

    async def bill_cancelled(self, session: AsyncSession, bill_id: str) -> None:
        """HMIS cancelled the bill: its reversal goes to SAP regardless, and the payments
        already counted against it (confirmed or accepted) become `mismatch` (refund due), so
        reconciliation shows money received for a bill that no longer exists."""
        counted = [p for p in await repository.for_bill(session, bill_id) if p.status in COUNTED]
        for payment in counted:
            payment.status, payment.updated_at = MISMATCH, utcnow()
            payment.reasons = [*(payment.reasons or []), REFUND_DUE]
        if counted:
            _log.warning("payment.refund_due", bill_id=bill_id, payments=len(counted))

    async def bill_posted(self, runtime: PlatformRuntime, reference: str) -> None:
        """Never fails the posting: a failed re-match is logged and the clearing sync re-tries."""
        try:
            async with statement(runtime.engine) as session:
                waiting = await repository.has_unmatched(session, reference)
            if waiting:
                await service.on_bill_posted(runtime, reference)
        except Exception:
            _log.warning("payment.rematch_failed", reference=reference, exc_info=True)


def _paid_on(payments: Sequence[Payment]) -> PaidOnBill:
    """What counts as paid on a bill (its confirmed payments and the mismatches an operator
    accepted), with its payments as `GET /bills/{bill_id}` shows them."""
    return PaidOnBill(
        amount=sum((Decimal(p.amount) for p in payments if p.status in COUNTED), Decimal(0)),
        payments=[
            PaymentView(
                payment_document=p.payment_document,
                amount=currency.display(Decimal(p.amount), p.currency),
                currency=p.currency,
                posting_date=p.posting_date,
                status=p.status,
                source=p.source,
                reasons=list(p.reasons or []) or None,
            )
            for p in payments
        ],
    )
