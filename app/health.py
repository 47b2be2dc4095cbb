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

from app.deps import RuntimeDep
from app.logging import get_logger
from app.migrate import is_current
from app.openapi import outcome

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
    detail: str | None = Field(None, description="set when not ready: the first failing check")


_READY = {"status": "ok", "checks": {"database": "ok", "sap_config": "ok"}}
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
        detail=failing[0] if failing else None,
    )
    if failing:
        _log.warning("health.not_ready", checks=checks)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=503 if failing else 200)


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
