"""Races on PostgreSQL between replicas: cancels, retries, postings and leases never lose a
state change. Each runs several rounds with the timings spread around SAP's answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.billing import delivery
from app.billing import repository as bills
from app.billing import service as billing
from app.billing.schemas import BillIn
from app.platform.errors import ConflictError
from tests.support.bridge import RULES, bill, make_settings, replica, seed_config, sim_config

pytestmark = pytest.mark.postgres


@pytest.fixture
async def two(pg_url: str, sim: httpx.Client) -> AsyncIterator[tuple[Any, Any]]:
    """Two replicas' runtimes on one PostgreSQL database and the simulator."""
    await seed_config(make_settings(pg_url), sim_config(str(sim.base_url).rstrip("/")), RULES)
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(replica(pg_url))
        b = await stack.enter_async_context(replica(pg_url))
        yield a, b


async def snapshot(runtime: Any) -> Any:
    return await runtime.config.snapshot(runtime.sessions)


async def row(runtime: Any, bill_id: str) -> Any:
    async with runtime.sessions() as session:
        return await bills.get(session, bill_id)


def documents_of(sim: httpx.Client, reference_ids: set[str]) -> list[dict]:
    docs = sim.get("/sim/ledger").json()["documents"]
    return [d for d in docs if d["reference_id"] in reference_ids]


async def settle(runtime: Any, bill_id: str) -> Any:
    """Deliver whatever the bill still owes (as the outbox would), until nothing is owed."""
    for _ in range(50):
        current = await row(runtime, bill_id)
        if current.status not in ("queued", "reversing"):
            return current
        lease = await billing._claim(runtime, bill_id)
        if lease is not None:
            await delivery.attempt(runtime, bill_id, lease)
        else:
            await asyncio.sleep(0.1)
    raise AssertionError(f"{bill_id} still owes SAP: {current.status}")


def assert_exactly_once(final: Any, sim: httpx.Client) -> None:
    """A cancelled bill: reversed with one posting and one reversal, or withdrawn with none."""
    refs = {final.document_reference_id, final.reversal_reference_id}
    docs = documents_of(sim, refs)
    postings = [d for d in docs if d["reference_id"] == final.document_reference_id]
    reversals = [d for d in docs if d["reference_id"] == final.reversal_reference_id]
    if final.status == "reversed":
        assert len(postings) == 1 and len(reversals) == 1, docs
        assert final.sap_document_number == postings[0]["number"]
        assert final.reversal_document_number == reversals[0]["number"]
    else:
        assert final.status == "withdrawn", final.status
        assert docs == []


@pytest.mark.parametrize("cancel_after_ms", [0, 120, 180, 220, 260, 400])
async def test_cancel_overlapping_a_posting_is_never_lost(
    two: tuple[Any, Any], sim: httpx.Client, cancel_after_ms: int
) -> None:
    a, b = two
    sim.put("/sim/faults", json={"latency_ms": 200}).raise_for_status()
    posting = asyncio.create_task(
        billing.push(a, await snapshot(a), "B-1", BillIn.model_validate(bill()))
    )
    await asyncio.sleep(cancel_after_ms / 1000)
    await billing.cancel(b, await snapshot(b), "B-1")
    await posting
    sim.put("/sim/faults", json={"latency_ms": 0}).raise_for_status()
    assert_exactly_once(await settle(b, "B-1"), sim)


async def test_a_posting_that_commits_while_a_cancel_is_being_recorded_is_reversed(
    two: tuple[Any, Any], sim: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel holds the bill for 300 ms between reading and writing it; SAP answers the
    posting meanwhile. Without the row lock the posting committed `posted` in between and the
    cancel's write left a posted bill with no reversal owed."""
    a, b = two
    locked = bills.get_for_update

    async def slow_reader(session: Any, bill_id: str) -> Any:
        found = await locked(session, bill_id)
        await asyncio.sleep(0.3)
        return found

    monkeypatch.setattr(bills, "get_for_update", slow_reader)
    sim.put("/sim/faults", json={"latency_ms": 200}).raise_for_status()
    posting = asyncio.create_task(
        billing.push(a, await snapshot(a), "B-1", BillIn.model_validate(bill()))
    )
    await asyncio.sleep(0.1)
    await billing.cancel(b, await snapshot(b), "B-1")
    await posting
    sim.put("/sim/faults", json={"latency_ms": 0}).raise_for_status()
    assert_exactly_once(await settle(b, "B-1"), sim)


@pytest.mark.parametrize("cancel_after_ms", [0, 50, 120, 250])
async def test_cancel_against_retry_of_a_rejected_bill(
    two: tuple[Any, Any], sim: httpx.Client, cancel_after_ms: int
) -> None:
    a, b = two
    closed = [{"company_code": "1000", "period": "2024-03"}]
    sim.put("/sim/closed-periods", json=closed).raise_for_status()
    answer = await billing.push(a, await snapshot(a), "B-1", BillIn.model_validate(bill()))
    assert answer.status_code == 502, answer.view
    sim.put("/sim/closed-periods", json=[]).raise_for_status()
    sim.put("/sim/faults", json={"latency_ms": 150}).raise_for_status()

    async def retry() -> None:
        with contextlib.suppress(ConflictError):  # the cancel came first: withdrawn
            await billing.retry(a, await snapshot(a), "B-1")

    async def cancel() -> None:
        await asyncio.sleep(cancel_after_ms / 1000)
        await billing.cancel(b, await snapshot(b), "B-1")

    await asyncio.gather(retry(), cancel())
    sim.put("/sim/faults", json={"latency_ms": 0}).raise_for_status()
    assert_exactly_once(await settle(b, "B-1"), sim)


async def test_two_cancels_on_two_replicas_reverse_once(
    two: tuple[Any, Any], sim: httpx.Client
) -> None:
    a, b = two
    pushed = await billing.push(a, await snapshot(a), "B-1", BillIn.model_validate(bill()))
    assert pushed.status_code == 201
    sim.put("/sim/faults", json={"latency_ms": 150}).raise_for_status()
    answers = await asyncio.gather(
        billing.cancel(a, await snapshot(a), "B-1"), billing.cancel(b, await snapshot(b), "B-1")
    )
    sim.put("/sim/faults", json={"latency_ms": 0}).raise_for_status()
    final = await settle(a, "B-1")
    assert final.status == "reversed"
    assert_exactly_once(final, sim)
    assert {answer.view.status for answer in answers} <= {"reversed", "reversing"}


async def test_an_attempt_that_outlived_its_lease_records_nothing(
    two: tuple[Any, Any], sim: httpx.Client
) -> None:
    """Replica A's posting is still with SAP when B takes the bill over (A's lease ran out
    while its process stalled). A's outcome must not land; B reads back and finds A's
    document instead of posting again."""
    a, b = two
    sim.put("/sim/faults", json={"latency_ms": 400}).raise_for_status()
    posting = asyncio.create_task(
        billing.push(a, await snapshot(a), "B-1", BillIn.model_validate(bill()))
    )
    await asyncio.sleep(0.2)
    async with b.engine.begin() as conn:  # B's claim after A's lease expired
        await conn.execute(
            text(
                "UPDATE bills SET lease_id = 'replica-b', "
                "locked_until = now() + interval '30 seconds' WHERE bill_id = 'B-1'"
            )
        )
    answer = await posting
    sim.put("/sim/faults", json={"latency_ms": 0}).raise_for_status()
    stale = await row(b, "B-1")
    assert answer.status_code == 202  # A could not record its posting
    assert stale.status == "queued" and stale.lease_id == "replica-b" and stale.maybe_posted
    final = await delivery.attempt(b, "B-1", "replica-b")
    assert final is not None and final.status == "posted"
    [doc] = documents_of(sim, {final.document_reference_id})
    assert final.sap_document_number == doc["number"]
    assert sim.get("/sim/stats").json()["soap_posts"] == 1


async def test_a_bill_waiting_for_a_call_slot_is_taken_over_without_the_settle_time(
    pg_url: str, sim: httpx.Client
) -> None:
    """One call slot, held by A's posting of B-1; A's push of B-2 waits for it, and after
    WAIT_NOTICE_SECONDS its row says SAP cannot have it (`sent_at` cleared). A dies (B takes
    the lease, as after it ran out): B reads back once and posts at once instead of waiting out
    the settle time. When the slot comes, A finds its lease gone and sends nothing."""
    config = sim_config(str(sim.base_url).rstrip("/"), **{"Max Concurrent Calls": "1"})
    await seed_config(make_settings(pg_url), config, RULES)
    async with replica(pg_url) as a, replica(pg_url) as b:
        sim.put("/sim/faults", json={"latency_ms": 2500}).raise_for_status()
        first = asyncio.create_task(
            billing.push(a, await snapshot(a), "B-1", BillIn.model_validate(bill()))
        )
        await asyncio.sleep(0.2)
        second = asyncio.create_task(
            billing.push(
                a, await snapshot(a), "B-2", BillIn.model_validate(bill(reference="HMIS-2"))
            )
        )
        for _ in range(200):
            waiting = await row(a, "B-2")
            if waiting is not None and waiting.sent_at is None:
                break
            await asyncio.sleep(0.02)
        assert waiting.maybe_posted and waiting.sent_at is None, "the wait was never marked"
        async with b.engine.begin() as conn:  # B's claim after A's lease expired
            await conn.execute(
                text(
                    "UPDATE bills SET lease_id = 'replica-b', "
                    "locked_until = now() + interval '30 seconds' WHERE bill_id = 'B-2'"
                )
            )
        sim.put("/sim/faults", json={"latency_ms": 0}).raise_for_status()
        taken_over = await delivery.attempt(b, "B-2", "replica-b")
        assert taken_over is not None and taken_over.status == "posted", taken_over
        assert (await first).status_code == 201
        assert (await second).status_code in (201, 202)  # A recorded nothing for B-2
        final = await row(b, "B-2")
    assert final.status == "posted" and final.sap_document_number == taken_over.sap_document_number
    [doc] = documents_of(sim, {final.document_reference_id})
    assert doc["number"] == final.sap_document_number
    assert sim.get("/sim/stats").json()["soap_posts"] == 2
