"""Liveness and readiness for orchestrators."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.deps import RuntimeDep
from app.migrate import is_current

router = APIRouter(prefix="/health", tags=["operations"])


@router.get("/live", summary="The process is up")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Database reachable and migrated, SAP configured or disabled",
    responses={503: {"description": "not ready; `checks` says why"}},
)
async def ready(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        async with runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        current = await is_current(runtime.engine)
        checks["database"] = "ok" if current else "migrations behind: run `bridge migrate`"
        config = await runtime.config.snapshot(runtime.sessions)
        missing = config.missing_for_sap() if config.enabled else []
        checks["sap_config"] = "ok" if not missing else "missing " + ", ".join(missing)
    except Exception as exc:  # any failure here means not ready, with the reason
        checks["database"] = f"unreachable ({type(exc).__name__})"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
    )
