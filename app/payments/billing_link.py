"""What the payments domain does for billing, which cannot import it (`BillPayments`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.runtime import PaidOnBill
from app.payments import repository, service
from app.platform.runtime import PlatformRuntime


class PaymentsOfBills:
    """Billing's `BillPayments`, answered from the payments the bridge recorded."""

    async def paid(
        self, session: AsyncSession, bill_ids: Sequence[str]
    ) -> Mapping[str, PaidOnBill]:
        found = await repository.for_bills(session, bill_ids)
        return {
            bill_id: PaidOnBill(
                service.paid_amount(found[bill_id]), service.payment_views(found[bill_id])
            )
            for bill_id in bill_ids
        }

    async def bill_cancelled(self, session: AsyncSession, bill_id: str) -> None:
        await service.flag_refund_due(session, bill_id)

    async def bill_posted(self, runtime: PlatformRuntime, reference: str) -> None:
        await service.after_bill_posted(runtime, reference)
