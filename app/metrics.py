"""Every Prometheus metric of the bridge, in one place, and the `GET /metrics` route.

Payments code (webhook, clearing sync) records its outcomes here; call, for example::

    from app import metrics
    metrics.record_webhook_answer("confirmed")
    metrics.record_clearing_sync("succeeded", recorded=2, rematched=0)

Webhook refusals (401, 413, 422, 503) are counted by `MetricsMiddleware` from the HTTP status.

Counters and histograms live in this process and count what it did. What the whole cluster
shares (the outbox depth and age, bills waiting for an operator, unmatched and mismatched
payments, the last audit's outcome) is read from the database at scrape time by a few small
indexed queries (kept `BRIDGE_METRICS_CACHE_SECONDS`), so every replica reports the same
truth and nothing is kept in memory that a restart would lose. Label values
are fixed sets (outcomes, operations, route templates), never ids or free text.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db import utcnow
from app.logging import route_template

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.deps import Runtime

#: The bridge's own registry: the process, GC and platform collectors plus everything below.
REGISTRY = CollectorRegistry(auto_describe=True)
try:  # pragma: no branch - the default collectors register themselves on a registry
    from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR

    for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        REGISTRY.register(_collector)
except (ImportError, ValueError):  # pragma: no cover
    pass

_SAP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_HTTP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_RUN_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

# --- HTTP -----------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "bridge_http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "bridge_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=_HTTP_BUCKETS,
    registry=REGISTRY,
)

# --- bills ----------------------------------------------------------------------------------

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

# --- SAP ------------------------------------------------------------------------------------

SAP_REQUEST_DURATION = Histogram(
    "bridge_sap_request_duration_seconds",
    "Latency of calls to SAP by operation (journal_entry.post, journal_entry.read_back, "
    "material_documents.read, token, ...) and status (the HTTP code, or unreachable, timeout, "
    "circuit_open; shed: a push not sent after a failed call, with every slot busy).",
    ["operation", "status"],
    buckets=_SAP_BUCKETS,
    registry=REGISTRY,
)
SAP_TOKEN_FETCHES = Counter(
    "bridge_sap_token_fetches_total",
    "OAuth client-credentials token fetches by result: ok, refused (bad credentials), error.",
    ["result"],
    registry=REGISTRY,
)
SAP_CLIENT_CERTIFICATE_EXPIRY = Gauge(
    "bridge_sap_client_certificate_expiry_timestamp_seconds",
    "When the SAP client certificate in use expires (Unix time); absent when none is set.",
    registry=REGISTRY,
)
SAP_CIRCUIT_TRANSITIONS = Counter(
    "bridge_sap_circuit_transitions_total",
    "Circuit-breaker state changes by the state entered: open, half_open, closed.",
    ["state"],
    registry=REGISTRY,
)

# --- payments (recorded by app/payments) -----------------------------------------------------

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
    buckets=_RUN_BUCKETS,
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


GROUP_COMMIT_BATCH = Histogram(
    "bridge_group_commit_batch_size",
    "Requests written together in one transaction, by writer (bills, payments).",
    ["writer"],
    buckets=(1, 2, 4, 8, 16, 32, 64),
    registry=REGISTRY,
)
GROUP_COMMIT_DURATION = Histogram(
    "bridge_group_commit_duration_seconds",
    "Time to write and commit one shared transaction, by writer.",
    ["writer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    registry=REGISTRY,
)

# --- inventory audit -------------------------------------------------------------------------

AUDIT_RUNS = Counter(
    "bridge_inventory_audit_runs_total",
    "Inventory audit runs this process executed, by result (succeeded, failed) and trigger.",
    ["result", "trigger"],
    registry=REGISTRY,
)
AUDIT_DURATION = Histogram(
    "bridge_inventory_audit_duration_seconds",
    "Duration of inventory audit runs this process executed, by result.",
    ["result"],
    buckets=_RUN_BUCKETS,
    registry=REGISTRY,
)
AUDIT_UNMATCHED = Counter(
    "bridge_inventory_audit_unmatched_items_total",
    "Goods-receipt items that no HMIS item matched, summed over the runs of this process.",
    registry=REGISTRY,
)


def record_audit_run(*, result: str, trigger: str, seconds: float, unmatched: int = 0) -> None:
    """Count one finished audit run (called by the inventory service)."""
    AUDIT_RUNS.labels(result=result, trigger=trigger).inc()
    AUDIT_DURATION.labels(result=result).observe(seconds)
    if unmatched:
        AUDIT_UNMATCHED.inc(unmatched)


# --- scrape-time state from the database ---------------------------------------------------

_CIRCUIT_VALUE = {"closed": 0, "half_open": 1, "open": 2}


class _Snapshot(Collector):
    """Precomputed families for one scrape (the queries are async, collectors are not)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def _gauge(name: str, doc: str, value: float | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _age(now: datetime, then: datetime | None) -> float:
    if then is None:
        return 0.0
    if then.tzinfo is None:  # SQLite aggregates drop the zone
        then = then.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - then).total_seconds())


async def _database_families(runtime: Runtime) -> list[Metric]:
    from app.billing.models import NEEDS_REVIEW, PENDING_STATUSES, QUEUED, REJECTED, Bill
    from app.inventory.models import FAILED, SUCCEEDED, InventoryRun

    now = utcnow()
    async with runtime.sessions() as session:
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
        oldest = await session.scalar(
            select(func.min(Bill.created_at)).where(Bill.status == QUEUED)
        )
        latest = (
            await session.execute(
                select(InventoryRun.status, InventoryRun.finished_at)
                .where(InventoryRun.status.in_([SUCCEEDED, FAILED]))
                .order_by(InventoryRun.id.desc())
                .limit(1)
            )
        ).first()
        success = (
            await session.execute(
                select(InventoryRun.finished_at, InventoryRun.unmatched_items)
                .where(InventoryRun.status == SUCCEEDED)
                .order_by(InventoryRun.id.desc())
                .limit(1)
            )
        ).first()
        payments = await _payment_families(session, now)
    depth = GaugeMetricFamily(
        "bridge_outbox_depth",
        "Bills owed to SAP now, by status (queued: a posting, reversing: a reversal).",
        labels=["status"],
    )
    for status in PENDING_STATUSES:
        depth.add_metric([status], counts.get(status, 0))
    families: list[Metric] = [
        depth,
        _gauge(
            "bridge_outbox_oldest_age_seconds",
            "Seconds since the oldest queued bill was pushed by HMIS (0 when none is queued).",
            _age(now, oldest),
        ),
        _gauge(
            "bridge_bills_rejected",
            "Bills SAP rejected that wait for an operator (fix, then POST /bills/{id}/retry).",
            counts.get(REJECTED, 0),
        ),
        _gauge(
            "bridge_bills_needs_review",
            "Bills SAP may hold a document for that the bridge cannot safely recognise; never "
            "re-sent by themselves (POST /bills/{id}/resolve or /retry).",
            counts.get(NEEDS_REVIEW, 0),
        ),
        _gauge(
            "bridge_inventory_audit_last_run_failed",
            "1 when the newest finished inventory audit run failed, else 0.",
            1 if latest is not None and latest[0] == FAILED else 0,
        ),
        _gauge(
            "bridge_inventory_audit_last_success_timestamp_seconds",
            "Unix time the newest successful inventory audit finished (0: never).",
            success[0].timestamp() if success is not None and success[0] else 0,
        ),
        _gauge(
            "bridge_inventory_audit_last_unmatched_items",
            "Unmatched goods-receipt items of the newest successful inventory audit.",
            success[1] if success is not None else 0,
        ),
    ]
    return families + payments


async def _payment_families(session: AsyncSession, now: datetime) -> list[Metric]:
    from app.payments.models import MISMATCH, UNMATCHED, Payment

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
    age = GaugeMetricFamily(
        "bridge_payments_unresolved_oldest_age_seconds",
        "Seconds the oldest payment of this status has had it (0 when there is none).",
        labels=["status"],
    )
    for status in statuses:
        number, oldest = found.get(status, (0, None))
        count.add_metric([status], number)
        age.add_metric([status], _age(now, oldest))
    return [count, age]


_DATABASE_CACHE = "metrics.database_families"


async def _cached_database_families(runtime: Runtime) -> list[Metric]:
    """The database families, read again only when older than `metrics_cache_seconds`, so
    several scrapers (an HA Prometheus pair, a dashboard) cost the database one read."""
    cached: tuple[float, list[Metric]] | None = runtime.extras.get(_DATABASE_CACHE)
    now = time.monotonic()
    if cached is not None and now - cached[0] < runtime.settings.metrics_cache_seconds:
        return cached[1]
    families = await _database_families(runtime)
    runtime.extras[_DATABASE_CACHE] = (now, families)
    return families


async def _runtime_families(runtime: Runtime) -> list[Metric]:
    families: list[Metric] = []
    state = GaugeMetricFamily(
        "bridge_sap_circuit_state",
        "SAP circuit breaker of this process: 0 closed, 1 half-open (probing), 2 open.",
    )
    # `open` until the next call probes; reading `state` has no side effect
    state.add_metric([], _CIRCUIT_VALUE.get(runtime.sap.breaker.state, 0))
    families.append(state)
    database_up = 1
    try:
        families.extend(await _cached_database_families(runtime))
        config = await runtime.config.snapshot(runtime.sessions)
        families.append(
            _gauge(
                "bridge_sap_integration_enabled",
                "1 when `SAP Integration - Enabled` is true.",
                1 if config.enabled else 0,
            )
        )
    except Exception:  # a scrape must still answer when the database is down
        database_up = 0
    families.append(
        _gauge(
            "bridge_database_up",
            "1 when the database answered this scrape's queries.",
            database_up,
        )
    )
    return families


def render(families: list[Metric]) -> bytes:
    """The exposition text of the process metrics plus `families`."""
    return generate_latest(REGISTRY) + generate_latest(_registry_of(families))


def _registry_of(families: list[Metric]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    return registry


router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text format 0.0.4",
            "content": {
                CONTENT_TYPE_LATEST.split(";")[0]: {
                    "schema": {"type": "string"},
                    "example": "# TYPE bridge_outbox_depth gauge\n"
                    'bridge_outbox_depth{status="queued"} 0.0\n',
                }
            },
        }
    },
)
async def metrics(request: Request) -> Response:
    """Counters, histograms and database-derived gauges; see `deploy/` for alerts."""
    runtime: Runtime = request.app.state.runtime
    return Response(render(await _runtime_families(runtime)), media_type=CONTENT_TYPE_LATEST)


# --- HTTP middleware -------------------------------------------------------------------------


class MetricsMiddleware:
    """Counts every HTTP answer by route template (not the raw path: ids stay out of labels),
    and the error answers to `webhook_path` as refused webhook events."""

    def __init__(self, app: ASGIApp, webhook_path: str | None = None) -> None:
        self.app = app
        self.webhook_path = webhook_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = route_template(scope)
            method = scope.get("method", "GET")
            HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
            HTTP_DURATION.labels(method=method, route=route).observe(time.perf_counter() - started)
            # by path: a body over the cap is refused before routing, so without a template
            if status >= 400 and scope.get("path") == self.webhook_path:
                record_webhook_refusal(status)
