"""Structured logs as events, each line carrying the request id of what caused it."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
#: Seconds this request spent waiting for and talking to SAP, for the Server-Timing header
#: (beside `app`, the whole time from the request's arrival to its answer).
sap_seconds_var: ContextVar[list[float] | None] = ContextVar("sap_seconds", default=None)
REQUEST_ID_HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def _add_request_id(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    request_id = request_id_var.get()
    if request_id and "request_id" not in event:
        event["request_id"] = request_id
    return event


def configure(log_format: str = "json", level: int = logging.INFO) -> None:
    """One renderer for the bridge's own events and for other libraries' log records.

    The bridge's events go from structlog straight to stderr: routed through the standard
    library's logging they cost about 5 % of a webhook's CPU time. Records of uvicorn,
    SQLAlchemy and the rest still arrive through `logging`, rendered the same way.
    """
    json_lines = log_format == "json"
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    # the console renderer lays out tracebacks itself; JSON needs them as a string field
    tracebacks = [structlog.processors.format_exc_info] if json_lines else []
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, *tracebacks, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "uvicorn.access", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _stderr_logger(*_args: Any) -> structlog.WriteLogger:
    return structlog.WriteLogger(sys.stderr)  # looked up per call: tests swap sys.stderr


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


def new_request_id() -> str:
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The matched route's template (`/bills/{bill_id}`), never the raw path with its ids."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


_access = get_logger("app.access")


class AccessLogMiddleware:
    """One `http.request` line per answer: method, route template, status, duration and (bound
    by RequestIdMiddleware around it) the request id. Never the path, query string, headers or
    body: they carry ids, API keys and signatures."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when an exception escapes before any answer

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            _access.info(
                "http.request",
                method=scope.get("method"),
                route=route_template(scope),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )


class RequestIdMiddleware:
    """Takes the caller's X-Request-ID (or makes one), binds it to logs, echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _VALID_ID.fullmatch(incoming) else new_request_id()
        token = request_id_var.set(request_id)
        sap_seconds: list[float] = []
        timing_token = sap_seconds_var.set(sap_seconds)
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                timing = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
                if sap_seconds:
                    timing += f", sap;dur={sum(sap_seconds) * 1000:.1f}"
                headers.append((b"server-timing", timing.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
            sap_seconds_var.reset(timing_token)
