"""Shared fixtures: real databases built by migrations, the simulator and the bridge on loopback.

Every database test runs on SQLite and on PostgreSQL. Without PostgreSQL the PostgreSQL half is
skipped with a message saying so — except under CI=true, where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import httpx
import pytest

from app.platform.local_server import serve
from tests.support import database
from tests.support.bridge import RULES, Bridge, make_settings, run_bridge, seed, sim_config

CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    if not asyncio.run(database.postgres_available()):
        message = f"PostgreSQL not reachable at {database.PG_ADMIN_DSN}"
        if CI:
            pytest.fail(message + " (CI=true: the PostgreSQL tests must run)")
        pytest.skip(message + ": PostgreSQL part SKIPPED")
    url = asyncio.run(database.create_postgres())
    yield url
    asyncio.run(database.drop_postgres(url))


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return asyncio.run(database.create_sqlite(str(tmp_path_factory.mktemp("db"))))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty, migrated database of each kind."""
    url = request.getfixturevalue(f"{request.param}_url")
    asyncio.run(database.truncate_all(url))
    return url


@pytest.fixture
def pg_url(postgresql_url: str) -> str:
    """PostgreSQL only, emptied (locking and queueing tests)."""
    asyncio.run(database.truncate_all(postgresql_url))
    return postgresql_url


@pytest.fixture(scope="session")
def sim_server() -> Iterator[str]:
    from sapsim.app import create_sim_app

    with serve(create_sim_app(), date_header=False) as url:
        yield url


@pytest.fixture
def sim(sim_server: str) -> Iterator[httpx.Client]:
    """A reset simulator and a client for its /sim control routes."""
    with httpx.Client(base_url=sim_server, timeout=30) as client:
        client.post("/sim/reset").raise_for_status()
        yield client


@pytest.fixture
def bridge(db_url: str, sim: httpx.Client) -> Iterator[Bridge]:
    """The bridge on loopback, configured against the simulator."""
    settings = make_settings(db_url)
    seed(settings, sim_config(str(sim.base_url).rstrip("/")), RULES)
    with run_bridge(settings) as running:
        yield running
