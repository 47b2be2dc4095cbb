"""The runtime as the platform sees it, and the route dependencies every layer shares.

The shell's composition root (`app.shell.runtime`) builds one `Runtime` per process; each
layer above this one names the parts it adds in its own protocol (`ConfigRuntime`,
`BillingRuntime`, ...), so code depends only on what it uses and imports nothing above it.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.platform.db import SessionFactory
from app.platform.settings import Settings


class PlatformRuntime(Protocol):
    """The process settings, the database and per-process state (`extras`)."""

    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    extras: dict[str, Any]


async def get_runtime(request: Request) -> Any:
    """The runtime the lifespan stored; each layer's `RuntimeDep` types it as it sees it."""
    return request.app.state.runtime


RuntimeDep = Annotated[PlatformRuntime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> Any:
    """A session whose transaction commits when the route returns without error."""
    async with runtime.sessions() as session, session.begin():
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]  # commit before reply
