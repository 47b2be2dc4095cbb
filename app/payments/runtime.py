"""The runtime as the payments domain sees it: billing's parts and the payment inbox."""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends

from app.billing.runtime import BillingRuntime
from app.payments.service import Outcome, Recording
from app.platform.group_commit import GroupCommit
from app.platform.runtime import get_runtime


class PaymentsRuntime(BillingRuntime, Protocol):
    #: webhook payments, written in shared transactions
    payment_inbox: GroupCommit[Recording, Outcome]


RuntimeDep = Annotated[PaymentsRuntime, Depends(get_runtime)]
