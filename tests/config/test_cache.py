"""The settings cache: a busy replica never waits for a refresh; a change is never lost to one."""

from __future__ import annotations

import asyncio
from typing import Any

from app.config.crypto import SecretBox
from app.config.keys import PREFIX
from app.config.service import BridgeConfig, ConfigService


class Loads:
    """Stands in for the database: each load returns the next version, after `gate` opens."""

    def __init__(self) -> None:
        self.count = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, session: Any) -> BridgeConfig:
        await self.gate.wait()
        self.count += 1
        return BridgeConfig({PREFIX + "Company Code": str(self.count)}, {})


class _Session:
    async def __aenter__(self) -> _Session:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None


def service(loads: Loads) -> ConfigService:
    config = ConfigService(SecretBox(SecretBox.generate_key()), allow_insecure_urls=True, ttl=60)
    config.load = loads  # type: ignore[method-assign]
    return config


async def test_a_stale_cache_is_answered_while_one_background_task_refreshes_it() -> None:
    loads = Loads()
    config = service(loads)
    assert (await config.snapshot(_Session)).get("Company Code") == "1"
    config._cached = (config._cached[0] - 61, config._cached[1])  # older than the ttl
    loads.gate.clear()  # the refresh is slow
    answers = [await config.snapshot(_Session) for _ in range(5)]
    assert {a.get("Company Code") for a in answers} == {"1"}  # nobody waited for it
    loads.gate.set()
    await config._background
    assert loads.count == 2  # one refresh for all five
    assert (await config.snapshot(_Session)).get("Company Code") == "2"


async def test_a_cache_twice_the_ttl_old_is_refreshed_before_answering() -> None:
    loads = Loads()
    config = service(loads)
    await config.snapshot(_Session)
    config._cached = (config._cached[0] - 121, config._cached[1])
    assert (await config.snapshot(_Session)).get("Company Code") == "2"


async def test_a_refresh_begun_before_a_change_does_not_overwrite_it() -> None:
    loads = Loads()
    config = service(loads)
    await config.snapshot(_Session)
    config._cached = (config._cached[0] - 61, config._cached[1])
    loads.gate.clear()
    await config.snapshot(_Session)  # starts the background refresh, which now waits
    await asyncio.sleep(0)
    changed = asyncio.create_task(config.changed(_Session))
    await asyncio.sleep(0)
    loads.gate.set()
    await changed
    await config._background
    assert loads.count == 3  # the background load's result was dropped, the change's kept
    assert (await config.snapshot(_Session)).get("Company Code") == "3"
