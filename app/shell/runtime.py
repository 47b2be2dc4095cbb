"""The composition root: the one place that names every part of a bridge process.

`build_runtime` makes the resources (engine, sessions, settings store, SAP client, inboxes)
and wires the domains together (billing hears of payments through `bill_payments`);
`running` adds the background work (outbox worker, scheduled jobs) for the ASGI lifespan.
Every layer below sees this `Runtime` through its own protocol (`BillingRuntime`, ...).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.billing import repository as bills
from app.billing.outbox import OutboxWorker
from app.billing.runtime import BillPayments
from app.config.crypto import SecretBox
from app.config.scheduler import Scheduler
from app.config.service import ConfigService
from app.inventory import jobs as inventory_jobs
from app.payments import jobs as payments_jobs
from app.payments import service as payments
from app.payments.billing_link import PaymentsOfBills
from app.platform import logging as applog
from app.platform.db import SessionFactory, make_engine, make_session_factory
from app.platform.group_commit import GroupCommit
from app.platform.runtime import get_runtime
from app.platform.settings import Settings, describe_error
from app.sap.circuit import CircuitBreaker
from app.sap.client import SapClient
from app.sap.slots import ClusterSlots


@dataclass
class Runtime:
    """Everything a bridge process holds; the lifespan builds it and the routes use it."""

    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    config: ConfigService
    sap: SapClient
    #: new bills and webhook payments, written in shared transactions (`GroupCommit`)
    bill_inbox: GroupCommit[dict[str, Any], bool]
    payment_inbox: GroupCommit[payments.Recording, payments.Outcome]
    bill_payments: BillPayments
    extras: dict[str, Any] = field(default_factory=dict)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


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
        bill_payments=PaymentsOfBills(),
    )


async def close_runtime(runtime: Runtime) -> None:
    await runtime.bill_inbox.aclose()
    await runtime.payment_inbox.aclose()
    await runtime.sap.aclose()
    await runtime.config.aclose()
    await runtime.engine.dispose()


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Runtime]:
    """A runtime with its background work: the outbox worker and the scheduled jobs."""
    runtime = build_runtime(settings)
    outbox = OutboxWorker(runtime)
    runtime.extras["outbox"] = outbox
    if settings.outbox_enabled:
        outbox.start()
    scheduler = Scheduler(runtime)
    runtime.extras["scheduler"] = scheduler
    inventory_jobs.register(scheduler, runtime)
    payments_jobs.register(scheduler, runtime)
    await scheduler.start()
    applog.get_logger("app").info("bridge.started", database=runtime.engine.url.get_backend_name())
    try:
        yield runtime
    finally:
        await scheduler.shutdown()
        await inventory_jobs.shutdown(runtime)
        await payments_jobs.shutdown(runtime)
        await outbox.stop()
        await close_runtime(runtime)
