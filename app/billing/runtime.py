"""The runtime as billing sees it, and what billing needs from the payments domain above it.

Billing may not import payments (payments reads bills, so it sits above). What a bill's
record shows of its payments, and what payments must do when a bill posts or is cancelled,
come through `BillPayments`, which the composition root fills with the payments domain's
implementation (`app.payments.billing_link`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Protocol

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.schemas import PaymentView
from app.platform.group_commit import GroupCommit
from app.platform.runtime import PlatformRuntime, get_runtime
from app.sap.runtime import SapRuntime


@dataclass(frozen=True)
class PaidOnBill:
    """What counts as paid on one bill, and the payments recorded against it."""

    amount: Decimal = Decimal(0)
    payments: list[PaymentView] = field(default_factory=list)


class BillPayments(Protocol):
    async def paid(
        self, session: AsyncSession, bill_ids: Sequence[str]
    ) -> Mapping[str, PaidOnBill]:
        """Each bill's payments (a bill without any maps to `PaidOnBill()`)."""

    async def bill_cancelled(self, session: AsyncSession, bill_id: str) -> None:
        """In the cancel's transaction: the payments counted against the bill need a refund."""

    async def bill_posted(self, runtime: PlatformRuntime, reference: str) -> None:
        """After the posting committed: payments that arrived first may now match. Never
        raises (a failure is logged; the clearing sync re-tries)."""


class BillingRuntime(SapRuntime, Protocol):
    #: new bills and their identities, written in shared transactions
    bill_inbox: GroupCommit[dict[str, Any], bool]
    bill_payments: BillPayments


RuntimeDep = Annotated[BillingRuntime, Depends(get_runtime)]
