"""One error base for the whole service and the one handler that renders it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

_log = structlog.get_logger("app.errors")


class AppError(Exception):
    """An expected failure with a message a person can act on.

    Rendered as ``{"detail": message, **extra}`` with ``status_code``.
    """

    status_code: int = 400

    def __init__(self, detail: str, *, status_code: int | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, **self.extra}


class NotFoundError(AppError):
    """The thing asked for does not exist."""

    status_code = 404


class ConflictError(AppError):
    """The request contradicts what the bridge already holds."""

    status_code = 409


class InvalidInputError(AppError):
    """The request is well-formed JSON but breaks a business rule of the contract."""

    status_code = 422


def install_handlers(app: FastAPI) -> None:
    """Every failure renders as ``{"detail": ...}``; an expected outcome is never a 500."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(OSError, _database_error)
    app.add_exception_handler(UnicodeEncodeError, _database_error)
    app.add_exception_handler(Exception, _unexpected)


async def _app_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return JSONResponse(exc.body(), status_code=exc.status_code)


def describe_validation(errors: Sequence[Any]) -> str:
    """`items[1].net_value: Input should be a valid decimal` style, joined by '; '."""
    parts = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "header")]
        where = ".".join(loc).replace(".[", "[") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}".replace("Value error, ", ""))
    return "; ".join(parts)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
        for e in exc.errors()
    ]
    return JSONResponse(
        {"detail": describe_validation(exc.errors()), "errors": errors}, status_code=422
    )


_UNPARSABLE = "There was an error parsing the body"


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    # FastAPI's own reading of a body, on a route not built with json_body.JsonRoute
    if exc.status_code == 400 and exc.detail == _UNPARSABLE:
        return JSONResponse(
            {"detail": "body: not readable as JSON; send UTF-8 encoded JSON"}, status_code=422
        )
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


_UNSTORABLE = (
    "a value cannot be stored: text with NUL characters or invalid Unicode, "
    "or a value too large for its field; nothing was stored"
)


def _is_bad_value(exc: Exception) -> bool:
    """A data exception (SQLSTATE class 22, or text the driver cannot encode): the input's
    fault, not the database's, so a 422 rather than a 503 that would be retried forever."""
    if isinstance(exc, UnicodeEncodeError):
        return True
    orig = getattr(exc, "orig", None)
    for cause in (orig, getattr(orig, "__cause__", None)):
        if isinstance(cause, UnicodeEncodeError):
            return True
        if str(getattr(cause, "sqlstate", "") or "").startswith("22"):
            return True
        if type(cause).__name__ == "DataError" or isinstance(cause, asyncpg.DataError):
            return True
    return False


async def _database_error(_request: Request, exc: Exception) -> JSONResponse:
    if _is_bad_value(exc):
        _log.info("request.unstorable_value", error=type(exc).__name__)
        return JSONResponse({"detail": _UNSTORABLE}, status_code=422)
    _log.warning("database.unavailable", error=type(exc).__name__)
    return JSONResponse(
        {"detail": "the database is unavailable; nothing was stored, please retry"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    _log.exception("request.failed", error=type(exc).__name__)
    return JSONResponse(
        {"detail": "internal error; report the X-Request-ID of this response"}, status_code=500
    )
