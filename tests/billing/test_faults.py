"""SAP down, slow, rate-limiting or losing answers: every bill still reaches SAP exactly once."""

from __future__ import annotations

import asyncio

import httpx

from tests.support.bridge import (
    RULES,
    Bridge,
    bill,
    make_settings,
    run_bridge,
    seed_config,
    sim_config,
)


async def wait_for_status(
    client: httpx.AsyncClient, bill_id: str, status: str, rounds: int = 400
) -> dict:
    for _ in range(rounds):
        body = (await client.get(f"/bills/{bill_id}")).json()
        if body.get("status") == status:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"bill {bill_id} never became {status}: {body}")


def references(sim: httpx.Client) -> list[str]:
    return [d["reference_id"] for d in sim.get("/sim/ledger").json()["documents"]]


async def test_sap_down_queues_then_delivers_once(bridge: Bridge, sim: httpx.Client) -> None:
    sim.put("/sim/faults", json={"down": True}).raise_for_status()
    async with bridge.client() as client:
        response = await client.post("/bills/B-1/push", json=bill())
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "queued"
        sim.put("/sim/faults", json={"down": False}).raise_for_status()
        posted = await wait_for_status(client, "B-1", "posted")
    assert posted["attempts"] >= 2
    assert references(sim) == ["HMIS-2024-001234"]


async def test_answer_lost_after_commit_is_read_back_not_reposted(
    bridge: Bridge, sim: httpx.Client
) -> None:
    sim.put("/sim/faults", json={"queue": [{"kind": "commit_then_drop"}]}).raise_for_status()
    async with bridge.client() as client:
        response = await client.post("/bills/B-1/push", json=bill())
        assert response.status_code == 202, response.text
        posted = await wait_for_status(client, "B-1", "posted")
    [doc] = sim.get("/sim/ledger").json()["documents"]
    assert posted["sap_document_number"] == doc["number"]
    assert sim.get("/sim/stats").json()["soap_posts"] == 1


async def test_gateway_timeout_after_commit_is_read_back(bridge: Bridge, sim: httpx.Client) -> None:
    sim.put("/sim/faults", json={"queue": [{"kind": "commit_then_status", "status": 504}]})
    async with bridge.client() as client:
        assert (await client.post("/bills/B-1/push", json=bill())).status_code == 202
        await wait_for_status(client, "B-1", "posted")
    assert references(sim) == ["HMIS-2024-001234"]


async def test_rate_limit_is_queued_and_retried(bridge: Bridge, sim: httpx.Client) -> None:
    sim.put("/sim/faults", json={"queue": [{"kind": "status", "status": 429, "retry_after": 1}]})
    async with bridge.client() as client:
        response = await client.post("/bills/B-1/push", json=bill())
        assert response.status_code == 202
        await wait_for_status(client, "B-1", "posted")
    assert references(sim) == ["HMIS-2024-001234"]
    assert sim.get("/sim/stats").json()["soap_posts"] == 2


async def test_revoked_token_is_refreshed_once(bridge: Bridge, sim: httpx.Client) -> None:
    async with bridge.client() as client:
        await client.post("/bills/B-1/push", json=bill("REF-1"))
        sim.put("/sim/faults", json={"revoke_tokens": True}).raise_for_status()
        response = await client.post("/bills/B-2/push", json=bill("REF-2"))
    assert response.status_code == 201, response.text
    assert sim.get("/sim/stats").json()["token_requests"] == 2
    assert references(sim) == ["REF-1", "REF-2"]


async def test_timeout_after_commit_is_read_back_not_reposted(
    bridge: Bridge, sim: httpx.Client
) -> None:
    async with bridge.admin() as admin:
        await admin.put("/config/SAP Integration - Timeout Seconds", json={"value": 1})
    sim.put("/sim/faults", json={"queue": [{"kind": "commit_then_slow", "delay_ms": 3000}]})
    async with bridge.client() as client:
        response = await client.post("/bills/B-1/push", json=bill())
        assert response.status_code == 202, response.text
        assert "within 1s" in response.json()["last_error"]
        await wait_for_status(client, "B-1", "posted")
    assert references(sim) == ["HMIS-2024-001234"]
    assert sim.get("/sim/stats").json()["soap_posts"] == 1


async def test_sap_still_working_after_timeout_is_waited_for(
    db_url: str, sim: httpx.Client
) -> None:
    """SAP commits 2.5 s after a call the bridge gave up on at 1 s: the read-back must wait."""
    settings = make_settings(db_url, BRIDGE_AMBIGUOUS_SETTLE_SECONDS=3)
    await seed_config(
        settings, sim_config(str(sim.base_url).rstrip("/"), **{"Timeout Seconds": "1"}), RULES
    )
    sim.put("/sim/faults", json={"queue": [{"kind": "slow", "delay_ms": 2500}]})
    with run_bridge(settings) as running:
        async with running.client() as client:
            assert (await client.post("/bills/B-1/push", json=bill())).status_code == 202
            posted = await wait_for_status(client, "B-1", "posted")
    assert references(sim) == ["HMIS-2024-001234"]
    assert sim.get("/sim/stats").json()["soap_posts"] == 1  # found by the read-back
    assert posted["attempts"] == 2
