"""The ASGI app: `app.main:app`. The lifespan builds every resource; nothing connects at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import ValidationError

from app import console, metrics, openapi
from app import logging as applog
from app.api_docs import router as docs_router
from app.billing import repository as bills
from app.billing.outbox import OutboxWorker
from app.billing.router import router as billing_router
from app.config.crypto import SecretBox
from app.config.router import router as config_router
from app.config.service import ConfigService
from app.db import make_engine, make_session_factory
from app.deps import Runtime
from app.errors import install_handlers
from app.group_commit import GroupCommit
from app.health import router as health_router
from app.inventory import jobs as inventory_jobs
from app.inventory.router import router as inventory_router
from app.inventory.schemas import ITEMS_BODY_LIMIT
from app.limits import BodyLimitMiddleware
from app.payments import jobs as payments_jobs
from app.payments import service as payments
from app.payments import webhook_docs
from app.payments.router import WEBHOOK_PATH
from app.payments.router import router as payments_router
from app.payments.security import WEBHOOK_BODY_LIMIT
from app.sap.circuit import CircuitBreaker
from app.sap.client import SapClient
from app.sap.slots import ClusterSlots
from app.scheduler import Scheduler
from app.settings import Settings, describe_error

DESCRIPTION = """Keeps HMIS in step with SAP S/4HANA Cloud.

* **Bills → SAP Finance**: `POST /bills/{bill_id}/push` posts a journal entry, exactly once.
* **SAP payments → HMIS**: `POST /webhooks/sap/payment` (Standard Webhooks signature or
  HTTP Basic, not the API keys), `POST /payments/clearing-sync`, `GET /reconciliation`.
* **Configuration** (admin key): `/config`.

Authenticate with the `X-API-Key` header: `BRIDGE_API_KEY` for HMIS routes,
`BRIDGE_ADMIN_API_KEY` for operator routes. Every error body is `{"detail": "..."}`.
"""


class StartupError(RuntimeError):
    """Start-up refused, with one line saying why."""


def load_settings() -> Settings:
    try:
        return Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        raise StartupError(describe_error(exc)) from None


def build_runtime(settings: Settings) -> Runtime:
    """The resources of one bridge process: engine, sessions, settings store, SAP client."""
    engine = make_engine(settings.database_url)
    config = ConfigService(
        SecretBox(settings.encryption_key.get_secret_value()),
        allow_insecure_urls=settings.allow_insecure_sap_urls,
    )
    sap = SapClient(
        breaker=CircuitBreaker(
            min_calls=settings.circuit_min_calls,
            consecutive_failures=settings.circuit_consecutive_failures,
            failure_ratio=settings.circuit_failure_ratio,
            open_seconds=settings.circuit_open_seconds,
            max_open_seconds=settings.circuit_max_open_seconds,
        ),
        slots=ClusterSlots(engine) if engine.dialect.name == "postgresql" else None,
    )
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        config=config,
        sap=sap,
        # the bills and their identities of a batch, in one transaction
        bill_inbox=GroupCommit("bills", engine, bills.insert_if_absent),
        payment_inbox=GroupCommit("payments", engine, payments.record_many),
    )


async def close_runtime(runtime: Runtime) -> None:
    await runtime.bill_inbox.aclose()
    await runtime.payment_inbox.aclose()
    await runtime.sap.aclose()
    await runtime.config.aclose()
    await runtime.engine.dispose()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings or load_settings()
    applog.configure(settings.log_format)
    runtime = build_runtime(settings)
    engine = runtime.engine
    app.state.runtime = runtime
    outbox = OutboxWorker(runtime)
    runtime.extras["outbox"] = outbox
    if settings.outbox_enabled:
        outbox.start()
    scheduler = Scheduler(runtime)
    runtime.extras["scheduler"] = scheduler
    inventory_jobs.register(scheduler, runtime)
    payments_jobs.register(scheduler, runtime)
    await scheduler.start()
    applog.get_logger("app").info("bridge.started", database=engine.url.get_backend_name())
    try:
        yield
    finally:
        await scheduler.shutdown()
        await inventory_jobs.shutdown(runtime)
        await payments_jobs.shutdown(runtime)
        await outbox.stop()
        await close_runtime(runtime)


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
    app.add_middleware(metrics.MetricsMiddleware, webhook_path=WEBHOOK_PATH)
    openapi.install(app, security_schemes=webhook_docs.SECURITY_SCHEMES)
    return app


app = create_app()
