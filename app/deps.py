"""Dependencies routes declare: the runtime, a session, the caller's role."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.config.service import BridgeConfig, ConfigService
from app.db import SessionFactory
from app.errors import AppError
from app.settings import Settings

if TYPE_CHECKING:
    from app.group_commit import GroupCommit
    from app.payments.service import Outcome, Recording
    from app.sap.client import SapClient


@dataclass
class Runtime:
    """Everything the lifespan builds and the routes use."""

    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    config: ConfigService
    sap: SapClient
    #: new bills and webhook payments, written in shared transactions (`app.group_commit`)
    bill_inbox: GroupCommit[dict[str, Any], bool]
    payment_inbox: GroupCommit[Recording, Outcome]
    extras: dict[str, Any] = field(default_factory=dict)


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> Any:
    """A session whose transaction commits when the route returns without error."""
    async with runtime.sessions() as session, session.begin():
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]  # commit before reply


async def get_config(runtime: RuntimeDep) -> BridgeConfig:
    return await runtime.config.snapshot(runtime.sessions)


ConfigDep = Annotated[BridgeConfig, Depends(get_config)]

_api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="BRIDGE_API_KEY for HMIS, BRIDGE_ADMIN_API_KEY for operators",
)


class AuthError(AppError):
    """Missing or wrong API key."""

    status_code = 401


def _matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _role(runtime: Runtime, key: str | None) -> str:
    if not key:
        raise AuthError("missing X-API-Key header")
    if _matches(key, runtime.settings.api_key.get_secret_value()):
        return "hmis"
    if _matches(key, runtime.settings.admin_api_key.get_secret_value()):
        return "admin"
    raise AuthError("invalid API key")


async def require_hmis(
    runtime: RuntimeDep, key: Annotated[str | None, Security(_api_key_header)]
) -> str:
    """HMIS routes: the HMIS key only."""
    if _role(runtime, key) != "hmis":
        raise AppError("this route takes BRIDGE_API_KEY, not the admin key", status_code=403)
    return "hmis"


async def require_admin(
    runtime: RuntimeDep, key: Annotated[str | None, Security(_api_key_header)]
) -> str:
    """Operator routes: the admin key only."""
    if _role(runtime, key) != "admin":
        raise AppError("this route takes BRIDGE_ADMIN_API_KEY", status_code=403)
    return "admin"


async def require_reader(
    runtime: RuntimeDep, key: Annotated[str | None, Security(_api_key_header)]
) -> str:
    """Read routes: HMIS or operators."""
    return _role(runtime, key)


HmisKey = Annotated[str, Depends(require_hmis)]
AdminKey = Annotated[str, Depends(require_admin)]
ReaderKey = Annotated[str, Depends(require_reader)]
