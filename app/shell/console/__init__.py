"""The operator console at /console: server-rendered pages over the same services as the API."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.shell.console import (
    audits,
    auth,
    bills,
    overview,
    payments,
    preview,
    reconciliation,
    settings_page,
    sign_in,
    web,
)


def install(app: FastAPI) -> None:
    """Serve the console's pages and its two static files from this process."""
    web.install_handlers(app)
    app.state.console_sign_in_limiter = auth.SignInLimiter()
    for module in (
        sign_in,
        overview,
        bills,
        preview,
        payments,
        reconciliation,
        audits,
        settings_page,
    ):
        app.include_router(module.router)
    app.mount("/console/static", StaticFiles(directory=web.HERE / "static"), name="console-static")
