"""Payments: webhooks and clearing syncs counted by this process, and the payments not
counted as paid, read at scrape time."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.payments.models import MISMATCH, UNMATCHED, Payment
from app.platform.metrics import REGISTRY, RUN_BUCKETS, age

WEBHOOK_EVENTS = Counter(
    "bridge_webhook_events_total",
    "Payment webhook requests by outcome: confirmed, duplicate (answered already_confirmed), "
    "accepted (business event queued for a clearing check), unmatched, mismatch, or refused "
    "with a reason: unauthenticated (401: credentials, signature or timestamp), too_large "
    "(413), invalid (422), unavailable (503), other (any other error answer).",
    ["outcome", "reason"],
    registry=REGISTRY,
)
CLEARING_SYNC_RUNS = Counter(
    "bridge_clearing_sync_runs_total",
    "Clearing-sync runs by result: succeeded, failed (SAP, the database or a bug), skipped "
    "(integration disabled, a sync already running here or on another replica, slot done).",
    ["result"],
    registry=REGISTRY,
)
CLEARING_SYNC_PAYMENTS = Counter(
    "bridge_clearing_sync_payments_total",
    "Payments the clearing sync changed, by outcome: recorded (new payments found in SAP), "
    "rematched (unmatched payments attached to a bill posted since).",
    ["outcome"],
    registry=REGISTRY,
)
CLEARING_SYNC_DURATION = Histogram(
    "bridge_clearing_sync_duration_seconds",
    "Duration of clearing-sync runs.",
    buckets=RUN_BUCKETS,
    registry=REGISTRY,
)
CLEARING_SYNC_LAST_SUCCESS = Gauge(
    "bridge_clearing_sync_last_success_timestamp_seconds",
    "Unix time this process last finished a clearing sync successfully (0: not yet).",
    registry=REGISTRY,
)

_WEBHOOK_OUTCOMES = {"already_confirmed": "duplicate"}  # the answer's status, as counted
_WEBHOOK_REFUSALS = {401: "unauthenticated", 413: "too_large", 422: "invalid", 503: "unavailable"}
# every series exists from the start, so the first increase is seen by rate() and increase()
for _outcome in ("confirmed", "duplicate", "accepted", "unmatched", "mismatch"):
    WEBHOOK_EVENTS.labels(outcome=_outcome, reason="")
for _reason in (*_WEBHOOK_REFUSALS.values(), "other"):
    WEBHOOK_EVENTS.labels(outcome="refused", reason=_reason)
for _result in ("succeeded", "failed", "skipped"):
    CLEARING_SYNC_RUNS.labels(result=_result)
for _outcome in ("recorded", "rematched"):
    CLEARING_SYNC_PAYMENTS.labels(outcome=_outcome)


def record_webhook_answer(status: str) -> None:
    """Count a webhook the bridge answered with a status body (called by the route)."""
    WEBHOOK_EVENTS.labels(outcome=_WEBHOOK_OUTCOMES.get(status, status), reason="").inc()


def record_webhook_refusal(status_code: int) -> None:
    """Count a webhook answered with an error; by its HTTP status, since a refusal can come
    from the body cap before routing, the authentication dependency or an error handler."""
    reason = _WEBHOOK_REFUSALS.get(status_code, "other")
    WEBHOOK_EVENTS.labels(outcome="refused", reason=reason).inc()


def record_clearing_sync(result: str, *, recorded: int = 0, rematched: int = 0) -> None:
    """Count one clearing-sync request by its result and the payments it changed."""
    CLEARING_SYNC_RUNS.labels(result=result).inc()
    CLEARING_SYNC_PAYMENTS.labels(outcome="recorded").inc(recorded)
    CLEARING_SYNC_PAYMENTS.labels(outcome="rematched").inc(rematched)
    if result == "succeeded":
        CLEARING_SYNC_LAST_SUCCESS.set_to_current_time()


async def families(session: AsyncSession, now: datetime) -> list[Metric]:
    """Unmatched and mismatched payments: how many, and how long the oldest has waited."""
    statuses = (UNMATCHED, MISMATCH)
    rows = await session.execute(
        # updated_at is when a payment took its status (a match or a flag sets it)
        select(Payment.status, func.count(), func.min(Payment.updated_at))
        .where(Payment.status.in_(statuses))
        .group_by(Payment.status)
    )
    found = {status: (count, oldest) for status, count, oldest in rows.all()}
    count = GaugeMetricFamily(
        "bridge_payments_unresolved",
        "Payments not counted as paid, by status: unmatched (no posted bill has the "
        "reference yet), mismatch (flagged with reasons; GET /reconciliation).",
        labels=["status"],
    )
    oldest_age = GaugeMetricFamily(
        "bridge_payments_unresolved_oldest_age_seconds",
        "Seconds the oldest payment of this status has had it (0 when there is none).",
        labels=["status"],
    )
    for status in statuses:
        number, oldest = found.get(status, (0, None))
        count.add_metric([status], number)
        oldest_age.add_metric([status], age(now, oldest))
    return [count, oldest_age]
