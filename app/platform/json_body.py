"""Request bodies read as JSON the way RFC 8259 defines it, by every route.

Python's `json` alone also takes NaN and Infinity, UTF-16 and UTF-32 bodies and encoded lone
surrogates (which fail later, when the body is stored as text), and raises RecursionError on
a deeply nested body. Here each of those is a 422 saying what to send instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException


class UnreadableJson(ValueError):
    """The body is not UTF-8 encoded JSON the bridge can read; the message says why."""


def parse(body: bytes, *, parse_float: Callable[[str], Any] = float) -> Any:
    """The JSON document in `body`, or UnreadableJson."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableJson(
            f"body: byte {exc.start} is not UTF-8; send UTF-8 encoded JSON"
        ) from None
    try:
        return json.loads(text, parse_float=parse_float, parse_constant=_not_json)
    except RecursionError:
        raise UnreadableJson(
            "body: arrays and objects nested too deeply to read; send a flatter document"
        ) from None
    except ValueError as exc:
        raise UnreadableJson(f"body: not valid JSON ({exc})") from None


def _not_json(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value; send a number or a string")


class UnreadableBody(HTTPException):
    """A 422 raised while FastAPI reads the body: an HTTPException, which FastAPI re-raises
    (any other exception there becomes its 400 "error parsing the body")."""

    def __init__(self, detail: str) -> None:
        super().__init__(422, detail)


class JsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = parse(await self.body())
            except UnreadableJson as exc:
                raise UnreadableBody(str(exc)) from None
        return self._json


class JsonRoute(APIRoute):
    """A route whose JSON body is read by `parse` (`APIRouter(route_class=JsonRoute)`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def read_with_parse(request: Request) -> Response:
            return await handler(JsonRequest(request.scope, request.receive))

        return read_with_parse
