"""Liveness and readiness for orchestrators (no key: probes carry none).

`/health/live` answers while the process can serve HTTP; it touches nothing else, so a slow
database never gets a healthy process restarted. `/health/ready` takes the replica out of the
load balancer while the database is unreachable, its schema is behind the code (`bridge
migrate` not run for this release) or SAP is enabled with its configuration incomplete.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.config import credentials
from app.platform.api_keys import AdminKey
from app.platform.logging import get_logger
from app.platform.openapi import outcome
from app.shell import preflight
from app.shell.migrate import is_current
from app.shell.runtime import RuntimeDep

router = APIRouter(prefix="/health", tags=["operations"])
_log = get_logger("app.health")
#: A probe answers within this even when the database hangs (orchestrators time out at ~5 s).
READY_TIMEOUT_SECONDS = 3.0


class Live(BaseModel):
    """The process is up."""

    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    """Readiness and each check's verdict (`ok`, or what is wrong and what to do)."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(
        description="`database`: reachable and migrated; `sap_config`: complete or disabled"
    )
    sap: dict[str, str] = Field(
        default_factory=dict,
        description="What this replica last knew of SAP, without calling it: `circuit` "
        "(closed, open, half_open), `token` (how the last OAuth fetch ended), each "
        "service's auth method, and `client_certificate` "
        "(its expiry; a warning 30 days ahead). Never makes the bridge unready: a SAP that is "
        "down is the outbox's to wait for, not the load balancer's.",
    )
    detail: str | None = Field(None, description="set when not ready: the first failing check")


_READY = {
    "status": "ok",
    "checks": {"database": "ok", "sap_config": "ok"},
    "sap": {
        "circuit": "closed",
        "posting_auth": "certificate",
        "read_auth": "oauth",
        "client_certificate": "warning: expires on 2027-01-10, in 21 days: "
        "renew it in SAP and here",
    },
}
_NOT_READY = {
    "status": "unavailable",
    "checks": {"database": "migrations behind: run `bridge migrate`", "sap_config": "ok"},
    "detail": "database: migrations behind: run `bridge migrate`",
}


@router.get(
    "/live",
    summary="The process is up",
    response_model=Live,
    responses={200: outcome("alive", {"status": "ok"})},
)
async def live() -> Live:
    return Live()


@router.get(
    "/ready",
    summary="Database reachable and migrated, SAP configured or disabled",
    response_model=Ready,
    response_model_exclude_none=True,
    responses={
        200: outcome("ready to take traffic", _READY),
        503: outcome(
            "not ready; `checks` says why",
            _NOT_READY,
            Ready,
            unreachable={
                "status": "unavailable",
                "checks": {"database": "unreachable (OSError)", "sap_config": "not checked"},
                "detail": "database: unreachable (OSError)",
            },
        ),
    },
)
async def ready(runtime: RuntimeDep) -> JSONResponse:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            checks = await _checks(runtime)
    except TimeoutError:
        checks = {"database": "unreachable (no answer in time)", "sap_config": "not checked"}
    failing = [f"{name}: {verdict}" for name, verdict in checks.items() if verdict != "ok"]
    body = Ready(
        status="unavailable" if failing else "ok",
        checks=checks,
        sap=await _sap_state(runtime),
        detail=failing[0] if failing else None,
    )
    if failing:
        _log.warning("health.not_ready", checks=checks)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=503 if failing else 200)


async def _sap_state(runtime: RuntimeDep) -> dict[str, str]:
    state = {"circuit": runtime.sap.breaker.state}
    if token := runtime.sap.token_state():
        state["token"] = token
    config = runtime.config.cached()
    if config is None:  # not read yet (the database is away): nothing more is known
        return state
    state["posting_auth"] = config.auth_method("posting")
    state["read_auth"] = config.auth_method("read")
    if certificate := config.get("Client Certificate"):
        state["client_certificate"] = credentials.expiry_verdict(certificate)
    return state


async def _checks(runtime: RuntimeDep) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        async with runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        current = await is_current(runtime.engine)
    except Exception as exc:  # any failure to reach the database means not ready
        return {"database": f"unreachable ({type(exc).__name__})", "sap_config": "not checked"}
    checks["database"] = "ok" if current else "migrations behind: run `bridge migrate`"
    if not current:
        checks["sap_config"] = "not checked"
        return checks
    try:
        config = await runtime.config.snapshot(runtime.sessions)
    except ValueError as exc:  # a stored secret the encryption key cannot open
        checks["sap_config"] = str(exc)
        return checks
    except Exception as exc:  # the database went away between the checks
        checks["sap_config"] = f"unreadable ({type(exc).__name__})"
        return checks
    missing = config.missing_for_sap() if config.enabled else []
    checks["sap_config"] = "ok" if not missing else "missing " + ", ".join(missing)
    return checks


class SapCheck(BaseModel):
    check: str
    status: Literal["pass", "warn", "fail"]
    detail: str
    remedy: str = ""


@router.get(
    "/sap",
    summary="The go-live preflight against the configured SAP tenant (admin key)",
    response_model=list[SapCheck],
    responses={
        200: outcome(
            "each check with what to do; `bridge sap-check` prints the same",
            [
                {"check": "settings", "status": "pass", "detail": "complete", "remedy": ""},
                {
                    "check": "posting_service",
                    "status": "fail",
                    "detail": "HTTP 403 (posting journal entries needs it)",
                    "remedy": "the user is not assigned to SAP_COM_0002: add the scenario to "
                    "the communication arrangement",
                },
            ],
        )
    },
)
async def sap(runtime: RuntimeDep, _key: AdminKey) -> list[SapCheck]:
    """Calls SAP (a token, each service, a test posting SAP does not keep): not for probes."""
    config = await runtime.config.snapshot(runtime.sessions)
    return [SapCheck(**c.as_dict()) for c in await preflight.run(runtime.sap, config)]
