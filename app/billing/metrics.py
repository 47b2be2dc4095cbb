"""Bills: pushes and deliveries counted by this process, and the outbox read at scrape time."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.models import NEEDS_REVIEW, PENDING_STATUSES, QUEUED, REJECTED, Bill
from app.platform.metrics import REGISTRY, age, gauge

BILLS_PUSHED = Counter(
    "bridge_bills_pushed_total",
    "Answers to POST /bills/{id}/push by outcome: posted, already_pushed, queued, rejected, "
    "conflict, invalid, skipped.",
    ["outcome"],
    registry=REGISTRY,
)
BILL_DELIVERIES = Counter(
    "bridge_bill_deliveries_total",
    "Delivery attempts of bills and reversals (push and background outbox) by kind "
    "(posting, reversal) and outcome: posted (SAP holds the document: sent now or read "
    "back), rejected "
    "(SAP business error), deferred (will retry), ambiguous (may have posted; read back next), "
    "needs_review (an operator must look), withdrawn (cancelled, SAP never had it), "
    "lease_lost (another replica took the bill over; its outcome counts there).",
    ["kind", "outcome"],
    registry=REGISTRY,
)


async def families(session: AsyncSession, now: datetime) -> list[Metric]:
    """The outbox and the bills waiting for an operator, as the database holds them."""
    counts = dict(
        (
            await session.execute(
                select(Bill.status, func.count())
                .where(Bill.status.in_([*PENDING_STATUSES, REJECTED, NEEDS_REVIEW]))
                .group_by(Bill.status)
            )
        ).all()
    )
    # a reversal's bill was created long before the cancel, so only postings have an age
    oldest = await session.scalar(select(func.min(Bill.created_at)).where(Bill.status == QUEUED))
    depth = GaugeMetricFamily(
        "bridge_outbox_depth",
        "Bills owed to SAP now, by status (queued: a posting, reversing: a reversal).",
        labels=["status"],
    )
    for status in PENDING_STATUSES:
        depth.add_metric([status], counts.get(status, 0))
    return [
        depth,
        gauge(
            "bridge_outbox_oldest_age_seconds",
            "Seconds since the oldest queued bill was pushed by HMIS (0 when none is queued).",
            age(now, oldest),
        ),
        gauge(
            "bridge_bills_rejected",
            "Bills SAP rejected that wait for an operator (fix, then POST /bills/{id}/retry).",
            counts.get(REJECTED, 0),
        ),
        gauge(
            "bridge_bills_needs_review",
            "Bills SAP may hold a document for that the bridge cannot safely recognise; never "
            "re-sent by themselves (POST /bills/{id}/resolve or /retry).",
            counts.get(NEEDS_REVIEW, 0),
        ),
    ]
