"""OData V2 helpers for every SAP Gateway read path (shared/sap/README.md 3.2).

Pure functions: values arrive as JSON strings (decimals, ``__count``, ``/Date(ms)/``) and are
parsed into exact Python types, never float.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from app.sap.errors import SapError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DATE = re.compile(r"/Date\((-?\d+)(?:[+-]\d{1,4})?\)/")
_QUERY_SAFE = "$,'():/*@!"
_MAX_MESSAGE = 1000


@dataclass
class Page:
    """One page of an OData V2 collection; follow ``next_url`` until it is None."""

    results: list[dict[str, Any]]
    count: int | None
    next_url: str | None


def parse_datetime(value: str) -> datetime:
    """Parse ``/Date(ms)/`` or ``/Date(ms+0000)/`` into a UTC-aware datetime.

    The milliseconds count from the epoch in UTC; an offset only says which zone the value was
    recorded in, so the instant is the same with or without it.
    """
    match = _DATE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"not an OData V2 date: {value!r}")
    return _EPOCH + timedelta(milliseconds=int(match.group(1)))


def parse_date(value: str) -> date:
    """Parse a date-only ``Edm.DateTime`` (``/Date(ms)/``, UTC midnight) or ``YYYY-MM-DD``."""
    if isinstance(value, str) and value.strip().startswith("/Date("):
        return parse_datetime(value).date()
    try:
        return date.fromisoformat(value.strip())
    except (AttributeError, ValueError) as exc:
        raise ValueError(f"not an OData V2 date: {value!r}") from exc


def literal(value: str | bool | int | Decimal | date | datetime | None) -> str:
    """Render a ``$filter`` literal: ``'it''s'``, ``datetime'2024-03-15T00:00:00'``, ``true``.

    Aware datetimes are converted to UTC (OData V2 ``datetime'…'`` has no offset); naive ones
    are sent as they are. Floats are refused: money and quantities are Decimal.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, datetime):
        if value.utcoffset() is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return f"datetime'{value:%Y-%m-%dT%H:%M:%S}'"
    if isinstance(value, date):
        return f"datetime'{value:%Y-%m-%d}T00:00:00'"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal) and value.is_finite():
        return f"{value:f}"
    raise TypeError(f"no OData literal for {type(value).__name__} {value!r}")


def query(params: dict[str, str | int | None]) -> str:
    """Build a query string (no leading ``?``); None values are left out.

    ``$``, ``,``, quotes, parentheses and ``:`` stay readable; spaces become ``%20`` (never
    ``+``) and ``&``, ``=``, ``+``, ``#`` inside values are percent-encoded.
    """
    return "&".join(
        f"{quote(str(key), safe=_QUERY_SAFE)}={quote(str(value), safe=_QUERY_SAFE)}"
        for key, value in params.items()
        if value is not None
    )


def decimal(value: str | None) -> Decimal:
    """Parse an ``Edm.Decimal`` string exactly; None or empty → ``Decimal(0)``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return Decimal(0)
    if not isinstance(value, str | int | Decimal) or isinstance(value, bool):
        raise TypeError(f"expected a decimal string, got {type(value).__name__}")
    try:
        result = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"not a finite decimal: {value!r}")
    return result


def parse_page(payload: dict[str, Any]) -> Page:
    """Read ``{"d":{"results":[…],"__count":"123","__next":"…"}}`` or ``{"d":[…]}``.

    Raises SapError when the payload is not an OData V2 collection.
    """
    body = payload.get("d") if isinstance(payload, dict) else None
    if isinstance(body, list):
        return Page(results=_rows(body), count=None, next_url=None)
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise SapError("unreadable answer from SAP: not an OData V2 collection")
    count = body.get("__count")
    try:
        total = int(count) if count not in (None, "") else None
    except (TypeError, ValueError) as exc:
        raise SapError(f"unreadable answer from SAP: __count {count!r}") from exc
    next_url = body.get("__next") or None
    return Page(results=_rows(body["results"]), count=total, next_url=next_url)


def rebase_next(next_url: str, relative_to: str = "/") -> str:
    """SAP's ``__next`` as a path (and query) to fetch from the configured Base URL.

    Scheme and host of an absolute (or ``//host/…``) link are dropped, whatever host SAP
    names: SAP credentials only ever go to the configured host, over its scheme. A relative
    link is resolved against ``relative_to``, the path of the request that returned it.
    """
    parts = urlsplit(next_url)
    path = parts.path
    if not path.startswith("/"):
        path = urljoin(relative_to, path)
    return f"{path}?{parts.query}" if parts.query else path


def _rows(rows: list[Any]) -> list[dict[str, Any]]:
    if not all(isinstance(row, dict) for row in rows):
        raise SapError("unreadable answer from SAP: collection rows are not objects")
    return rows


def parse_error(status_code: int, body: bytes) -> str:
    """SAP's own error text from a Gateway JSON or XML error body, else a generic line."""
    text = _json_error(body) or _xml_error(body)
    if not text:
        return f"SAP answered HTTP {status_code} without a readable error message"
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _join(code: str, message: str, details: list[str]) -> str:
    """``message; detail …`` (details only when they add information) plus a message id."""
    notes = [n for n in dict.fromkeys([message, *details]) if n]
    if not notes:
        return ""
    suffix = f" ({code})" if "/" in code else ""  # T100 ids like /IWFND/MED/170; not GUIDs
    return "; ".join(notes) + suffix


def _json_error(body: bytes) -> str:
    try:
        document = json.loads(body)
    except (ValueError, TypeError):
        return ""
    if not isinstance(document, dict):
        return ""
    error = document.get("error", document)
    if not isinstance(error, dict):
        return ""
    message = error.get("message")
    value = message.get("value") if isinstance(message, dict) else message
    inner = error.get("innererror")
    raw = inner.get("errordetails") if isinstance(inner, dict) else None
    details = [d.get("message") for d in raw or [] if isinstance(d, dict)]
    texts = [str(t).strip() for t in details if isinstance(t, str)]
    return _join(str(error.get("code") or ""), str(value or "").strip(), texts)


def _xml_error(body: bytes) -> str:
    try:
        root = fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError, TypeError):
        return ""
    if _local(root.tag) != "error":
        return ""
    fields = {_local(child.tag): (child.text or "").strip() for child in root}
    details = [
        (field.text or "").strip()
        for detail in root.iter()
        if _local(detail.tag) == "errordetail"
        for field in detail
        if _local(field.tag) == "message"
    ]
    return _join(fields.get("code", ""), fields.get("message", ""), details)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
