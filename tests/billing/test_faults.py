"""SAP down, slow, rate-limiting or losing answers: every bill still reaches SAP exactly once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from app.billing import repository as billing_repository
from app.billing import service as billing
from app.billing.schemas import BillIn
from app.sap.circuit import OPEN
from tests.support.bridge import (
    RULES,
    Bridge,
    bill,
    make_settings,
    replica,
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
    """HMIS's references of the documents SAP holds (the header's Reference 1)."""
    return [d["reference1"] for d in sim.get("/sim/ledger").json()["documents"]]


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


async def deliver_queued(db_url: str, *bill_ids: str) -> None:
    """Start a replica with its outbox and wait until it has posted `bill_ids`."""
    with run_bridge(make_settings(db_url)) as worker:
        async with worker.client() as client:
            for bill_id in bill_ids:
                await wait_for_status(client, bill_id, "posted")


async def test_push_after_a_failed_call_only_records_the_bill(
    db_url: str, sim: httpx.Client
) -> None:
    """Right after SAP failed a call, a push answers 202 without calling SAP; the outbox
    delivers it (here a second replica's, as the first has its outbox off)."""
    settings = make_settings(db_url, BRIDGE_OUTBOX_ENABLED=False)
    await seed_config(settings, sim_config(str(sim.base_url).rstrip("/")), RULES)
    sim.put("/sim/faults", json={"queue": [{"kind": "status", "status": 503}]})
    with run_bridge(settings) as running:
        async with running.client() as client:
            first = await client.post("/bills/B-1/push", json=bill("R-1"))
            second = await client.post("/bills/B-2/push", json=bill("R-2"))
    assert first.status_code == second.status_code == 202
    assert second.json()["attempts"] == 0
    assert "failed the last call" in second.json()["last_error"]
    assert sim.get("/sim/stats").json()["soap_posts"] == 1
    await deliver_queued(db_url, "B-1", "B-2")
    assert sorted(references(sim)) == ["R-1", "R-2"]


async def test_push_waiting_for_a_call_slot_stops_waiting_when_a_call_fails(
    db_url: str, sim: httpx.Client
) -> None:
    """One call slot: the first push holds it (a slow token fetch) and then fails; the second,
    waiting for the slot, is answered 202 at once instead of being sent after it."""
    settings = make_settings(db_url, BRIDGE_OUTBOX_ENABLED=False)
    await seed_config(
        settings,
        sim_config(str(sim.base_url).rstrip("/"), **{"Max Concurrent Calls": "1"}),
        RULES,
    )
    faults = [
        {"kind": "slow", "delay_ms": 500, "target": "token"},
        {"kind": "status", "status": 503},
    ]
    sim.put("/sim/faults", json={"queue": faults})
    with run_bridge(settings) as running:
        async with running.client() as client:
            holder = asyncio.create_task(client.post("/bills/B-1/push", json=bill("R-1")))
            while sim.get("/sim/stats").json()["token_requests"] == 0:
                await asyncio.sleep(0.01)  # the first push holds the slot
            waiter = await client.post("/bills/B-2/push", json=bill("R-2"))
            assert (await holder).status_code == 202
    assert waiter.status_code == 202
    assert "failed the last call" in waiter.json()["last_error"]
    assert sim.get("/sim/stats").json()["soap_posts"] == 1  # the waiter was never sent
    await deliver_queued(db_url, "B-1", "B-2")
    assert sorted(references(sim)) == ["R-1", "R-2"]


async def test_while_sap_fails_the_outbox_sends_one_bill_at_a_time(
    db_url: str, sim: httpx.Client
) -> None:
    """A replica starts on a queue of 20 bills while SAP refuses every post: after its first
    burst it finds out with one delivery at a time, so SAP sees just the calls that open the
    circuit instead of a refilled burst of 2 x Max Concurrent Calls until then."""
    settings = make_settings(db_url, BRIDGE_OUTBOX_ENABLED=False)
    await seed_config(settings, sim_config(str(sim.base_url).rstrip("/")), RULES)
    sim.put("/sim/faults", json={"queue": [{"kind": "status", "status": 429}]})
    with run_bridge(settings) as running:
        async with running.client() as client:
            for n in range(20):  # the first is refused, the rest only recorded
                response = await client.post(f"/bills/B-{n}/push", json=bill(f"R-{n}"))
                assert response.status_code == 202
    refusals = [{"kind": "status", "status": 429}] * 30  # not ambiguous: no read-backs
    sim.put("/sim/faults", json={"queue": refusals})
    before = sim.get("/sim/stats").json()["soap_posts"]
    worker = make_settings(
        db_url,
        BRIDGE_CIRCUIT_OPEN_SECONDS=60,
        BRIDGE_RETRY_BASE_SECONDS=30,
        BRIDGE_CIRCUIT_CONSECUTIVE_FAILURES=1000,  # the share of failures decides here
    )
    with run_bridge(worker) as running:
        breaker = running.runtime.sap.breaker
        for _ in range(400):
            if breaker.state == OPEN:
                break
            await asyncio.sleep(0.05)
    assert breaker.state == OPEN
    calls = sim.get("/sim/stats").json()["soap_posts"] - before
    # the first burst (8 deliveries) and then 2 more, one by one: 10 failures open the circuit
    assert calls == worker.circuit_min_calls


async def test_an_attempt_past_its_sap_budget_ends_ambiguous_inside_its_lease(
    db_url: str, sim: httpx.Client
) -> None:
    """However its calls, slot waits and read-back retries add up (here a SAP client that never
    returns), an attempt gives up at 4 x Timeout Seconds as ambiguous, before its lease ends,
    so no other replica can take the bill while this one may still send it."""
    overrides = {"BRIDGE_AMBIGUOUS_SETTLE_SECONDS": 0, "BRIDGE_LEASE_SECONDS": 30}
    settings = make_settings(db_url, **overrides)
    await seed_config(
        settings, sim_config(str(sim.base_url).rstrip("/"), **{"Timeout Seconds": "1"}), RULES
    )
    never = asyncio.Event()

    async def hang(*_: object, **__: object) -> None:
        await never.wait()

    async with replica(db_url, **overrides) as runtime:
        runtime.sap.post_journal_entry = hang
        config = await runtime.config.snapshot(runtime.sessions)
        answer = await billing.push(runtime, config, "B-1", BillIn.model_validate(bill()))
        async with runtime.sessions() as session:
            row = await billing_repository.get(session, "B-1")
    assert answer.status_code == 202
    assert row is not None and row.status == "queued" and row.maybe_posted
    assert "longer than its 4s with SAP" in (row.last_error or "")
    assert row.locked_until is None  # released by this attempt, not left to expire
    assert row.updated_at < row.created_at + timedelta(seconds=4 + 30)  # inside the lease
    assert row.posted_entry is not None  # stored before the send: what may have posted
