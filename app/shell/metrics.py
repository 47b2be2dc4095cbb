"""`GET /metrics`: every layer's metrics, and the cluster's state read from the database.

Counters and histograms live in this process and count what it did (each layer declares its
own: `app.platform.metrics`, `app.sap.metrics`, `app.billing.metrics`, ...). What the whole
cluster shares (the outbox depth and age, bills waiting for an operator, unmatched and
mismatched payments, the last audit's outcome) is read from the database at scrape time by a
few small indexed queries (kept `BRIDGE_METRICS_CACHE_SECONDS`), so every replica reports the
same truth and nothing is kept in memory that a restart would lose.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily, Metric

from app.billing import metrics as billing_metrics
from app.inventory import metrics as inventory_metrics
from app.payments import metrics as payments_metrics
from app.platform.db import utcnow
from app.platform.metrics import gauge, render
from app.shell.runtime import Runtime

_CIRCUIT_VALUE = {"closed": 0, "half_open": 1, "open": 2}
_DATABASE_CACHE = "metrics.database_families"


async def _database_families(runtime: Runtime) -> list[Metric]:
    now = utcnow()
    async with runtime.sessions() as session:
        bills = await billing_metrics.families(session, now)
        audits = await inventory_metrics.families(session)
        payments = await payments_metrics.families(session, now)
    return bills + audits + payments


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
            gauge(
                "bridge_sap_integration_enabled",
                "1 when `SAP Integration - Enabled` is true.",
                1 if config.enabled else 0,
            )
        )
    except Exception:  # a scrape must still answer when the database is down
        database_up = 0
    families.append(
        gauge(
            "bridge_database_up",
            "1 when the database answered this scrape's queries.",
            database_up,
        )
    )
    return families


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
