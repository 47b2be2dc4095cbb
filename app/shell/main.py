"""The ASGI app (served as `app.main:app`): routes, middleware and the lifespan that runs the
runtime (`app.shell.runtime`); nothing connects at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.billing.router import router as billing_router
from app.config.router import router as config_router
from app.inventory.router import router as inventory_router
from app.inventory.schemas import ITEMS_BODY_LIMIT
from app.payments import metrics as payments_metrics
from app.payments import webhook_docs
from app.payments.router import WEBHOOK_PATH
from app.payments.router import router as payments_router
from app.payments.security import WEBHOOK_BODY_LIMIT
from app.platform import logging as applog
from app.platform import openapi
from app.platform.errors import install_handlers
from app.platform.limits import BodyLimitMiddleware
from app.platform.metrics import MetricsMiddleware
from app.platform.settings import Settings
from app.shell import console, metrics
from app.shell.api_docs import router as docs_router
from app.shell.health import router as health_router
from app.shell.runtime import load_settings, running

DESCRIPTION = """Keeps HMIS in step with SAP S/4HANA Cloud.

* **Bills → SAP Finance**: `POST /bills/{bill_id}/push` posts a journal entry, exactly once.
* **SAP payments → HMIS**: `POST /webhooks/sap/payment` (Standard Webhooks signature or
  HTTP Basic, not the API keys), `POST /payments/clearing-sync`, `GET /reconciliation`.
* **Configuration** (admin key): `/config`.

Authenticate with the `X-API-Key` header: `BRIDGE_API_KEY` for HMIS routes,
`BRIDGE_ADMIN_API_KEY` for operator routes. Every error body is `{"detail": "..."}`.
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings or load_settings()
    applog.configure(settings.log_format)
    async with running(settings) as runtime:
        app.state.runtime = runtime
        yield


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; `settings` lets tests and the CLI skip the environment."""
    app = FastAPI(
        title="hmis-sap-bridge",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # api_docs serves /docs and /redoc from vendored assets, not a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    install_handlers(app)
    app.include_router(billing_router)
    app.include_router(config_router)
    app.include_router(health_router)
    app.include_router(inventory_router)
    app.include_router(payments_router)
    app.include_router(metrics.router)
    app.include_router(docs_router)
    console.install(app)
    limit = settings.max_body_bytes if settings else 1_048_576
    app.add_middleware(
        BodyLimitMiddleware,
        default=limit,
        per_prefix={"/inventory/items": ITEMS_BODY_LIMIT, "/webhooks/": WEBHOOK_BODY_LIMIT},
    )
    app.add_middleware(applog.AccessLogMiddleware)  # inside: it logs with the request id
    app.add_middleware(applog.RequestIdMiddleware)
    refusals = {WEBHOOK_PATH: payments_metrics.record_webhook_refusal}
    app.add_middleware(MetricsMiddleware, on_error=refusals)
    openapi.install(app, security_schemes=webhook_docs.SECURITY_SCHEMES)
    return app


app = create_app()
