"""What every console page shares: the signed-in visit, CSRF on forms, rendering, flashes.

Pages are server-rendered (Jinja2, autoescaped); a page handler takes a `Visit` (GET) or a
`Post` (a form whose CSRF token was checked) and returns `visit.render(...)` or
`visit.redirect(...)`. A visit without a valid session never reaches a handler: it is sent to the
sign-in page, which says why (no session, expired, key changed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, cast
from urllib.parse import quote, urlencode, urlsplit

import jinja2
from fastapi import Depends, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.exc import DBAPIError
from starlette.responses import Response

from app.platform.errors import AppError, describe_validation
from app.shell.console import auth
from app.shell.runtime import Runtime

HERE = Path(__file__).parent
FLASH_COOKIE = "bridge_console_flash"
NAVIGATION = (
    ("Overview", "/console"),
    ("Bills", "/console/bills"),
    ("Payments", "/console/payments"),
    ("Reconciliation", "/console/reconciliation"),
    ("Inventory audits", "/console/audits"),
    ("Settings", "/console/settings"),
)
#: the pages load nothing from elsewhere and run no inline script or style
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,  # a misspelt variable is an error in tests, not a blank
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: datetime | date | str | None) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return value.isoformat()


def _money(value: Decimal | str | None) -> str:
    if value is None or value == "":
        return "–"
    amount = Decimal(value)
    exponent = amount.as_tuple().exponent
    places = max(0, -exponent) if isinstance(exponent, int) else 2
    return f"{amount:,.{places}f}"


def _age(since: datetime | None) -> str:
    """How long ago, in the two largest units: `3 d 4 h`, `2 h 5 min`, `40 s`."""
    if since is None:
        return "–"
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    seconds = max(0, int((datetime.now(UTC) - since).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (seconds, "s")]
    shown = [f"{n} {unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0 s"


templates.filters.update(when=_when, money=_money, age=_age, quote=lambda s: quote(str(s), safe=""))


class CsrfRefused(Exception):
    """A form without the console's CSRF token (or with another session's)."""


@dataclass
class Visit:
    request: Request
    runtime: Runtime
    session: auth.ConsoleSession
    flash: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        html = templates.get_template(template).render(
            csrf_token=self.session.csrf,
            navigation=NAVIGATION,
            path=self.request.url.path,
            flash=self.flash,
            signed_in=True,
            **context,
        )
        response = HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
        if self.flash:
            response.delete_cookie(FLASH_COOKIE, path=auth.PATH)
        return response

    def redirect(self, url: str, flash: str | None = None) -> RedirectResponse:
        """After a form: see the result on a page of its own (a reload never re-posts)."""
        response = RedirectResponse(url, status_code=303)
        if flash:
            token = _flashes(self.runtime).dumps(flash)
            response.set_cookie(
                FLASH_COOKIE, token, max_age=120, path=auth.PATH, httponly=True,
                samesite="strict", secure=self.request.url.scheme == "https",
            )  # fmt: skip
        return response


def _flashes(runtime: Runtime) -> URLSafeTimedSerializer:
    key = runtime.settings.encryption_key.get_secret_value()
    return URLSafeTimedSerializer(key, salt="console-flash")


async def visit(request: Request) -> Visit:
    runtime: Runtime = request.app.state.runtime
    session = auth.current(runtime.settings, request)
    flash = None
    fragment = bool(request.headers.get("X-Console-Fragment"))  # a refresh must not eat it
    if not fragment and (token := request.cookies.get(FLASH_COOKIE)):
        try:
            flash = str(_flashes(runtime).loads(token, max_age=120))
        except BadSignature:
            flash = None
    return Visit(request, runtime, session, flash)


VisitDep = Annotated[Visit, Depends(visit)]


async def checked_post(visit: VisitDep, csrf_token: Annotated[str, Form()] = "") -> Visit:
    if not auth.csrf_ok(visit.session, csrf_token):
        raise CsrfRefused
    return visit


PostDep = Annotated[Visit, Depends(checked_post)]


def query_string(base: Mapping[str, object] | None = None, **values: object) -> str:
    """`?a=1&b=2` of the values that are set (for paging links that keep the filters)."""
    merged = {**(base or {}), **values}
    kept = {k: str(v) for k, v in merged.items() if v not in (None, "")}
    return "?" + urlencode(kept) if kept else ""


templates.globals["query_string"] = query_string


def page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page outside a session (sign-in, errors)."""
    html = templates.get_template(template).render(
        navigation=NAVIGATION, path="", flash=None, signed_in=False, **context
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def install_handlers(app: FastAPI) -> None:
    async def not_signed_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, auth.NotSignedIn)
        if request.headers.get("X-Console-Fragment"):  # the overview's refresh: reload instead
            return Response(status_code=401, headers=SECURITY_HEADERS)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":  # after signing in the browser GETs `next`: the form's page
            referer = urlsplit(request.headers.get("referer", ""))
            target = referer.path if referer.path.startswith("/console") else "/console"
        query = urlencode({"reason": exc.reason, "next": target})
        response = RedirectResponse(f"/console/sign-in?{query}", status_code=303)
        if request.cookies.get(auth.SESSION_COOKIE):
            auth.end(response)
        return response

    async def csrf_refused(_request: Request, _exc: Exception) -> Response:
        return page(
            "error.html",
            403,
            title="Form refused",
            message="This form did not carry the console's token (it expired, or the form did "
            "not come from this console). Reload the page and try again.",
        )

    app.add_exception_handler(auth.NotSignedIn, not_signed_in)
    app.add_exception_handler(CsrfRefused, csrf_refused)
    for kind in (RequestValidationError, AppError, DBAPIError):
        app.add_exception_handler(kind, _as_page(app.exception_handlers[kind]))


def _is_console_page(request: Request) -> bool:
    path = request.url.path
    return (path == "/console" or path.startswith("/console/")) and not path.startswith(
        "/console/static/"
    )


def _as_page(api_handler: Any) -> Any:
    """What the API answers as JSON, a console page answers as a page saying the same."""

    async def handler(request: Request, exc: Exception) -> Response:
        if not _is_console_page(request):
            return cast(Response, await api_handler(request, exc))
        if isinstance(exc, RequestValidationError):
            status, message = 422, describe_validation(exc.errors())
        elif isinstance(exc, AppError):
            status, message = exc.status_code, exc.detail
        else:
            status, message = 503, "The database is not answering: try again in a moment."
        return page("error.html", status, title="That did not work", message=message)

    return handler
