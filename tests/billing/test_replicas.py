"""Several real `bridge serve` processes on one PostgreSQL: no bill lost, none posted twice."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support.bridge import RULES, bill, make_settings, seed, sim_config
from tests.support.database import PG_ADMIN_DSN
from tests.support.processes import Replica

pytestmark = pytest.mark.postgres


@pytest.fixture
def replicas(pg_url: str, sim: httpx.Client, tmp_path: Path) -> Iterator[callable]:
    settings = make_settings(pg_url, BRIDGE_LOG_FORMAT="json")
    seed(settings, sim_config(str(sim.base_url).rstrip("/"), **{"Timeout Seconds": "2"}), RULES)
    started: list[Replica] = []

    def start() -> Replica:
        replica = Replica(settings, tmp_path / f"replica-{len(started)}.log")
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.stop()


async def push_many(url: str, count: int, prefix: str = "R") -> list[int]:
    async with httpx.AsyncClient(
        base_url=url, headers={"X-API-Key": "test-hmis-key-0123456789"}, timeout=60
    ) as client:
        semaphore = asyncio.Semaphore(16)

        async def one(n: int) -> int:
            async with semaphore:
                response = await client.post(
                    f"/bills/{prefix}-{n}/push", json=bill(f"{prefix}-{n:05d}")
                )
                return response.status_code

        return await asyncio.gather(*(one(n) for n in range(count)))


async def wait_until_drained(url: str, rounds: int = 1200) -> None:
    async with httpx.AsyncClient(
        base_url=url, headers={"X-API-Key": "test-hmis-key-0123456789"}
    ) as c:
        for _ in range(rounds):
            answers = [
                await c.get("/bills", params={"status": s, "limit": 1})
                for s in ("queued", "reversing")
            ]
            # a poll that met a connection the test just dropped is answered 503: ask again
            assert {a.status_code for a in answers} <= {200, 503}
            if all(a.status_code == 200 and not a.json()["items"] for a in answers):
                return
            await asyncio.sleep(0.1)
    raise AssertionError("bills still queued")


def ledger_references(sim: httpx.Client) -> list[str]:
    return [d["reference_id"] for d in sim.get("/sim/ledger").json()["documents"]]


async def test_three_replicas_drain_a_thousand_queued_bills_once_within_the_cap(
    replicas, sim: httpx.Client
) -> None:
    sim.put("/sim/faults", json={"down": True}).raise_for_status()
    first = replicas()
    codes = await push_many(first.url, 1000)
    assert set(codes) == {202}
    others = [replicas(), replicas()]
    sim.put("/sim/faults", json={"down": False, "latency_ms": 20}).raise_for_status()
    await wait_until_drained(others[0].url)
    references = ledger_references(sim)
    assert len(references) == 1000 and len(set(references)) == 1000
    # Max Concurrent Calls (4) caps what SAP sees from all three together, not from each
    assert sim.get("/sim/stats").json()["soap_max_in_flight"] <= 4


async def test_sigkill_while_draining_loses_and_duplicates_nothing(
    replicas, sim: httpx.Client
) -> None:
    sim.put("/sim/faults", json={"down": True}).raise_for_status()
    doomed = replicas()
    assert set(await push_many(doomed.url, 300)) == {202}
    sim.put("/sim/faults", json={"down": False, "latency_ms": 50}).raise_for_status()
    for _ in range(600):
        if len(ledger_references(sim)) >= 40:
            break
        await asyncio.sleep(0.02)
    doomed.kill()
    assert len(ledger_references(sim)) < 300  # killed mid-drain, with leases held
    survivor = replicas()
    await wait_until_drained(survivor.url)
    references = ledger_references(sim)
    assert len(references) == 300 and len(set(references)) == 300


async def test_postgres_connections_dropped_mid_run(
    replicas, sim: httpx.Client, pg_url: str
) -> None:
    sim.put("/sim/faults", json={"down": True}).raise_for_status()
    replica = replicas()
    assert set(await push_many(replica.url, 200)) == {202}
    sim.put("/sim/faults", json={"down": False, "latency_ms": 30}).raise_for_status()
    database = pg_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        for _ in range(5):
            await asyncio.sleep(0.3)
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
    finally:
        await admin.close()
    await wait_until_drained(replica.url)
    references = ledger_references(sim)
    assert len(references) == 200 and len(set(references)) == 200
