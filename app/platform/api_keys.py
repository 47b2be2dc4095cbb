"""The API keys routes take: `HmisKey`, `AdminKey`, `ReaderKey` (HMIS or operators)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader

from app.platform.errors import AppError
from app.platform.runtime import RuntimeDep
from app.platform.settings import Settings

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


def _role(settings: Settings, key: str | None) -> str:
    if not key:
        raise AuthError("missing X-API-Key header")
    if _matches(key, settings.api_key.get_secret_value()):
        return "hmis"
    if _matches(key, settings.admin_api_key.get_secret_value()):
        return "admin"
    raise AuthError("invalid API key")


async def require_hmis(
    runtime: RuntimeDep, key: Annotated[str | None, Security(_api_key_header)]
) -> str:
    """HMIS routes: the HMIS key only."""
    if _role(runtime.settings, key) != "hmis":
        raise AppError("this route takes BRIDGE_API_KEY, not the admin key", status_code=403)
    return "hmis"


async def require_admin(
    runtime: RuntimeDep, key: Annotated[str | None, Security(_api_key_header)]
) -> str:
    """Operator routes: the admin key only."""
    if _role(runtime.settings, key) != "admin":
        raise AppError("this route takes BRIDGE_ADMIN_API_KEY", status_code=403)
    return "admin"


async def require_reader(
    runtime: RuntimeDep, key: Annotated[str | None, Security(_api_key_header)]
) -> str:
    """Read routes: HMIS or operators."""
    return _role(runtime.settings, key)


HmisKey = Annotated[str, Depends(require_hmis)]
AdminKey = Annotated[str, Depends(require_admin)]
ReaderKey = Annotated[str, Depends(require_reader)]
