"""`/console/sign-in` and `/console/sign-out`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from app.platform.logging import get_logger
from app.shell.console import auth
from app.shell.console.web import PostDep, page
from app.shell.runtime import Runtime

router = APIRouter(prefix="/console", include_in_schema=False)
_log = get_logger("app.console")


def _safe_next(target: str | None) -> str:
    """Only a console page of this bridge: never another site (an open redirect)."""
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return "/console"


def _form(request: Request, status_code: int = 200, **context: object) -> HTMLResponse:
    runtime: Runtime = request.app.state.runtime
    token = auth.sign_in_token(runtime.settings, request)
    response = page("sign_in.html", status_code, title="Sign in", sign_in_token=token, **context)
    auth.keep_sign_in_token(response, request, token)
    return response


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(
    request: Request, reason: str | None = None, next: str | None = None
) -> Response:
    text = auth.REASONS.get(reason or "")
    return _form(request, reason=text, next=_safe_next(next), error=None)


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(
    request: Request,
    admin_key: Annotated[str, Form()] = "",
    sign_in_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/console",
) -> Response:
    runtime: Runtime = request.app.state.runtime
    limiter: auth.SignInLimiter = request.app.state.console_sign_in_limiter
    client = request.client.host if request.client else "unknown"
    target = _safe_next(next)
    if wait := limiter.retry_after(client):
        _log.warning("console.sign_in.limited", client=client)
        response = _form(request, 429, reason=None, next=target, error=(
            f"Too many wrong keys from this address: try again in {wait} seconds."))  # fmt: skip
        response.headers["Retry-After"] = str(wait)
        return response
    if not auth.sign_in_token_ok(runtime.settings, request, sign_in_token):
        return _form(request, 403, reason=None, next=target, error=(
            "The sign-in form expired: it has been renewed, enter the key again."))  # fmt: skip
    if not admin_key.strip():
        return _form(request, 422, reason=None, next=target, error="Enter the admin key.")
    if not auth.key_matches(runtime.settings, admin_key):
        limiter.failed(client)
        _log.warning("console.sign_in.refused", client=client)
        return _form(request, 401, reason=None, next=target, error=(
            "That is not the admin key (BRIDGE_ADMIN_API_KEY)."))  # fmt: skip
    limiter.succeeded(client)
    _log.info("console.sign_in", client=client)
    signed_in = RedirectResponse(target, status_code=303)
    auth.issue(runtime.settings, signed_in, request)
    return signed_in


@router.post("/sign-out")
async def sign_out(visit: PostDep) -> Response:
    response = RedirectResponse("/console/sign-in?reason=signed-out", status_code=303)
    auth.end(response)
    return response
