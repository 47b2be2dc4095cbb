"""The runtime as business settings see it: the platform's parts and the settings store."""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends

from app.config.service import BridgeConfig, ConfigService
from app.platform.runtime import PlatformRuntime, get_runtime


class ConfigRuntime(PlatformRuntime, Protocol):
    config: ConfigService


RuntimeDep = Annotated[ConfigRuntime, Depends(get_runtime)]


async def get_config(runtime: RuntimeDep) -> BridgeConfig:
    return await runtime.config.snapshot(runtime.sessions)


ConfigDep = Annotated[BridgeConfig, Depends(get_config)]
