"""/health/live and /health/ready (no key): ready only with a reachable, migrated database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.shell.migrate import upgrade
from tests.conftest import CI
from tests.support import database
from tests.support.bridge import Bridge, custom_bridge, sim_config


async def test_live_and_ready_need_no_key(bridge: Bridge) -> None:
    async with bridge.client(None) as client:
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    assert ready.status_code == 200, ready.text
    assert ready.json() == {
        "status": "ok",
        "checks": {"database": "ok", "sap_config": "ok"},
        "sap": {"circuit": "closed", "posting_auth": "oauth", "read_auth": "oauth"},
    }


async def test_not_ready_when_sap_is_enabled_but_incomplete(db_url: str) -> None:
    with custom_bridge(db_url, None) as running:
        async with running.admin() as admin:
            enabled = await admin.put("/config/SAP Integration - Enabled", json={"value": True})
            assert enabled.status_code == 200, enabled.text
        async with running.client(None) as client:
            response = await client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert "SAP Integration - Base URL" in body["checks"]["sap_config"]
    assert body["detail"].startswith("sap_config: missing")


async def test_ready_when_sap_is_disabled_even_if_unconfigured(db_url: str) -> None:
    with custom_bridge(db_url, None) as running:
        async with running.client(None) as client:
            response = await client.get("/health/ready")
    assert response.status_code == 200, response.text


async def test_not_ready_when_the_database_is_unreachable(tmp_path: Path) -> None:
    for url in (
        f"sqlite+aiosqlite:///{tmp_path}/missing/dir/bridge.db",
        "postgresql+asyncpg://postgres@127.0.0.1:1/none",  # nothing listens on port 1
    ):
        with custom_bridge(url, None) as running:
            async with running.client(None) as client:
                live = await client.get("/health/live")
                ready = await client.get("/health/ready")
        assert live.status_code == 200
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"]["database"].startswith("unreachable")


@pytest.fixture(params=["sqlite", "postgresql"])
def old_schema_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database migrated only to the first revision: the code is newer than the schema."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/old.db"
        asyncio.run(upgrade(url, "0001"))
        yield url
        return
    if not asyncio.run(database.postgres_available()):
        message = f"PostgreSQL not reachable at {database.PG_ADMIN_DSN}"
        if CI:
            pytest.fail(message)
        pytest.skip(message + ": PostgreSQL part SKIPPED")
    name = f"bridge_old_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        connection = await asyncpg.connect(database.PG_ADMIN_DSN)
        await connection.execute(f'CREATE DATABASE "{name}"')
        await connection.close()

    asyncio.run(create())
    base = database.PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{base}/{name}"
    asyncio.run(upgrade(url, "0001"))
    yield url
    asyncio.run(database.drop_postgres(url))


async def test_not_ready_while_migrations_are_behind_then_ready_after_migrate(
    old_schema_url: str, sim: httpx.Client
) -> None:
    with custom_bridge(old_schema_url, None) as running:
        async with running.client(None) as client:
            behind = await client.get("/health/ready")
            assert behind.status_code == 503, behind.text
            assert behind.json()["checks"]["database"] == "migrations behind: run `bridge migrate`"
            await upgrade(old_schema_url)
            async with running.admin() as admin:
                for key, value in sim_config(str(sim.base_url).rstrip("/")).items():
                    assert (await admin.put(f"/config/{key}", json={"value": value})).is_success
            current = await client.get("/health/ready")
    assert current.status_code == 200, current.text
