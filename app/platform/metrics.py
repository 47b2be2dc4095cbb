"""The bridge's Prometheus registry, its HTTP metrics and the middleware that records them.

Each layer declares its own metrics on `REGISTRY` (`app.sap.metrics`, `app.billing.metrics`,
...); `app.shell.metrics` serves them all on `GET /metrics`, with the gauges read from the
database at scrape time. Label values are fixed sets (outcomes, operations, route
templates), never ids or free text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.platform.logging import route_template

#: The bridge's own registry: the process, GC and platform collectors plus every layer's.
REGISTRY = CollectorRegistry(auto_describe=True)
try:  # pragma: no branch - the default collectors register themselves on a registry
    from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR

    for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        REGISTRY.register(_collector)
except (ImportError, ValueError):  # pragma: no cover
    pass

SAP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
RUN_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
_HTTP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

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


def gauge(name: str, doc: str, value: float | None = None) -> GaugeMetricFamily:
    """One unlabelled gauge of a scrape."""
    return GaugeMetricFamily(name, doc, value=value)


def age(now: datetime, then: datetime | None) -> float:
    """Seconds from `then` to `now` (0 when there is no `then`)."""
    if then is None:
        return 0.0
    if then.tzinfo is None:  # SQLite aggregates drop the zone
        then = then.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - then).total_seconds())


class _Snapshot(Collector):
    """Precomputed families for one scrape (the queries are async, collectors are not)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def render(families: list[Metric]) -> bytes:
    """The exposition text of the process metrics plus `families`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    return generate_latest(REGISTRY) + generate_latest(registry)


class MetricsMiddleware:
    """Counts every HTTP answer by route template (not the raw path: ids stay out of labels);
    `on_error` hears the status of each error answer to its path (given by the layer that owns
    the path), since a refusal can come before routing, where no route could count it."""

    def __init__(
        self, app: ASGIApp, on_error: Mapping[str, Callable[[int], None]] | None = None
    ) -> None:
        self.app = app
        self.on_error = on_error or {}

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
            listener = self.on_error.get(scope.get("path", "")) if status >= 400 else None
            if listener is not None:
                listener(status)
