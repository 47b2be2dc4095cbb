"""Raw ASGI gate in front of every ``/sap/...`` route: counting, outage, authentication, CSRF
token fetch and injected faults (including connections broken in the middle of a response).

It sits outside FastAPI so that a fault can act on the finished HTTP exchange: ``commit_then_*``
lets the route do its work (post the document), captures the response and then drops, replaces
or delays it. Faults about the *content* of a SOAP confirmation (``document_with_error``,
``extra_confirmation``) are only taken from the queue here and handed to the route in the ASGI
scope, since only the route knows the documents it posted. Routes added later under ``/sap/``
(goods receipts) are covered automatically.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sapsim.auth import TOKEN_PATH, is_authorized, unauthorized_response
from sapsim.journal import soap_fault_response
from sapsim.soap import SoapFault
from sapsim.state import (
    CONFIRMATION_FAULT_KEY,
    CONFIRMATION_FAULTS,
    FaultAction,
    FaultTarget,
    SimState,
)


class ConnectionDropped(httpx.RemoteProtocolError):
    """Raised on purpose to break the connection mid-response.

    Under a real server the client sees a protocol error; through ``httpx.ASGITransport`` this
    exception itself reaches the client, so both look like ``httpx.RemoteProtocolError``.
    """


class _DropLogFilter(logging.Filter):
    """Turns uvicorn's traceback for an injected drop into one quiet line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ConnectionDropped):
            record.msg, record.args, record.exc_info = (
                "sapsim: connection dropped on purpose (fault injection)",
                (),
                None,
            )
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_DROP_FILTER = _DropLogFilter()


def install_drop_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if _DROP_FILTER not in logger.filters:
        logger.addFilter(_DROP_FILTER)


def _target(path: str, method: str) -> FaultTarget | None:
    if path == TOKEN_PATH:
        return "token"
    if path.startswith("/sap/bc/srt/"):  # postings, and the ?wsdl a preflight reads
        return "soap"
    if path.startswith("/sap/opu/odata/"):
        return "odata"
    return None


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


def status_page(status: int, retry_after: int | None = None) -> tuple[dict[str, Any], bytes]:
    """An ``http.response.start`` message and HTML body like the ICM/Web Dispatcher sends."""
    phrase = HTTPStatus(status).phrase
    body = (
        f"<html><head><title>{status} {phrase}</title></head><body><h1>{phrase}</h1></body></html>"
    ).encode()
    headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    return {"type": "http.response.start", "status": status, "headers": headers}, body


async def _send_page(send: Send, status: int, retry_after: int | None = None) -> None:
    start, body = status_page(status, retry_after)
    await send(start)
    await send({"type": "http.response.body", "body": body})


class SapGate:
    """Pure ASGI middleware of the simulator app (``scope["app"].state.sim`` is the state)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/sap/"):
            await self.app(scope, receive, send)
            return
        state: SimState = scope["app"].state.sim
        target = _target(scope["path"], scope["method"])
        self._count(state, scope, target)
        if state.faults.down:
            state.stats.unavailable += 1
            await _send_page(send, 503, state.faults.down_retry_after)
            return
        authorized = is_authorized(
            state,
            _header(scope, b"authorization"),
            soap=target == "soap",
            tls_client=state.config.certificate_clients and scope.get("scheme") == "https",
        )
        if target != "token" and not authorized:
            state.stats.auth_failures += 1
            await unauthorized_response()(scope, receive, send)
            return
        send = self._dated(state, self._csrf(scope, send))
        action = state.faults.take(target) if target else None
        if action is None:
            if target == "odata" and state.faults.odata_latency_ms:
                await asyncio.sleep(state.faults.odata_latency_ms / 1000)
            await self.app(scope, receive, send)
            return
        state.stats.injected_faults += 1
        await self._inject(action, state, scope, receive, send)

    @staticmethod
    def _count(state: SimState, scope: Scope, target: FaultTarget | None) -> None:
        stats = state.stats
        if target == "token":
            stats.token_requests += 1
        elif target == "soap" and scope["method"] == "POST":
            stats.soap_posts += 1
        elif target == "odata":
            stats.odata_requests += 1
        path = scope["path"]
        templates: list[tuple[re.Pattern[str], str]] = scope["app"].state.sap_route_templates
        route = next((template for regex, template in templates if regex.match(path)), path)
        stats.by_route[f"{scope['method']} {route}"] += 1

    @staticmethod
    def _dated(state: SimState, send: Send) -> Send:
        """SAP's ``Date`` header, ``clock_offset_s`` off (served with uvicorn's own Date off)."""
        stamp = formatdate(time.time() + state.faults.clock_offset_s, usegmt=True).encode()

        async def with_date(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                message = {**message, "headers": [*headers, (b"date", stamp)]}
            await send(message)

        return with_date

    @staticmethod
    def _csrf(scope: Scope, send: Send) -> Send:
        """Answer ``X-CSRF-Token: Fetch`` with a token, as Gateway does on reads."""
        if _header(scope, b"x-csrf-token").lower() != "fetch":
            return send
        token = secrets.token_urlsafe(24).encode()

        async def with_token(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"x-csrf-token", token)]
                message = {**message, "headers": headers}
            await send(message)

        return with_token

    async def _inject(
        self, action: FaultAction, state: SimState, scope: Scope, receive: Receive, send: Send
    ) -> None:
        kind = action.kind
        if kind in CONFIRMATION_FAULTS:
            await self.app({**scope, CONFIRMATION_FAULT_KEY: kind}, receive, send)
        elif kind == "status":
            await _send_page(send, action.status, action.retry_after)
        elif kind == "soap_fault":
            response = soap_fault_response(state, SoapFault("Injected fault (soap_fault)"))
            await response(scope, receive, send)
        elif kind == "drop":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/xml; charset=utf-8"),
                        (b"content-length", b"512"),
                    ],
                }
            )
            raise ConnectionDropped("Injected drop before processing")
        else:
            body = await _read_body(receive)
            replay = _replay(body, receive)
            if kind == "slow":
                await asyncio.sleep(action.delay_ms / 1000)
                await self.app(scope, replay, send)
                return
            captured = _Captured()
            await self.app(scope, replay, captured.send)
            await captured.finish(action, send)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class _Captured:
    """Holds a finished response so a ``commit_then_*`` fault can decide what the client sees."""

    def __init__(self) -> None:
        self.start: Message | None = None
        self.body = bytearray()

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.start = message
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    async def finish(self, action: FaultAction, send: Send) -> None:
        assert self.start is not None
        if action.kind == "commit_then_status":
            await _send_page(send, action.status, action.retry_after)
            return
        if action.kind == "commit_then_slow":
            await asyncio.sleep(action.delay_ms / 1000)
            await send(self.start)
            await send({"type": "http.response.body", "body": bytes(self.body)})
            return
        # commit_then_drop: promise the whole body, deliver half, then break the connection.
        headers = [
            (k, v) for k, v in self.start.get("headers", []) if k.lower() != b"content-length"
        ]
        headers.append((b"content-length", str(len(self.body)).encode()))
        await send({**self.start, "headers": headers})
        await send(
            {
                "type": "http.response.body",
                "body": bytes(self.body[: len(self.body) // 2]),
                "more_body": True,
            }
        )
        raise ConnectionDropped("Injected drop after the document was posted")
