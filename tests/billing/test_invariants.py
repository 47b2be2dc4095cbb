"""The money invariants, over generated bills and faults, against the bridge and the simulator.

Bills come with discount lines, refunds, shared, lower-case and long references, and cancels;
a fault is injected at a generated step (answer lost after SAP committed, a 503 page, a 504,
a timeout, a 429, a connection dropped before processing, the delivering process killed).
Once nothing is owed any more:

* every bill is posted, reversed, withdrawn, rejected or needs review;
* a posted bill holds exactly one SAP document carrying its identity, whose lines equal the
  entry it stored before sending;
* no SAP document is held by two bills, and every document SAP holds belongs to a bill;
* each cancel produced at most one reversal, the mirror of the posting.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.billing import service as billing
from app.billing.models import Bill
from app.billing.schemas import BillIn
from app.platform.db import make_engine
from app.sap.journal_entry import entry_from_json
from tests.support.bridge import (
    RULES,
    Bridge,
    bill,
    make_settings,
    replica,
    run_bridge,
    seed,
    sim_config,
)

FINAL = {"posted", "reversed", "withdrawn", "rejected", "needs_review"}
FAULTS: dict[str, list[dict[str, Any]]] = {
    "none": [],
    "lost_after_commit": [{"kind": "commit_then_drop"}],
    "503_page": [{"kind": "status", "status": 503}],
    "504": [{"kind": "status", "status": 504}],
    "timeout_after_commit": [{"kind": "commit_then_slow", "delay_ms": 1500}],
    "429": [{"kind": "status", "status": 429, "retry_after": 0}],
    "dropped_before": [{"kind": "drop"}],
    "killed": [],  # the delivering process dies mid-call (see _push)
}
REFERENCES = ["HMIS-1", "hmis-1", "HMIS-OPD-2024-000012345-LONG", "ref 2", "HMIS-1"]
_ids = itertools.count()


@st.composite
def bills(draw: st.DrawFn) -> list[dict[str, Any]]:
    """1-4 bills; a refund refers to an earlier bill of the same list."""
    specs = []
    for n in range(draw(st.integers(1, 4))):
        amounts = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["OPD", "LAB", "PHARM", "WARD"]),
                    st.integers(1, 500_000).map(lambda c: Decimal(c).scaleb(-2)),
                ),
                min_size=1,
                max_size=4,
            )
        )
        total = sum((a for _, a in amounts), Decimal(0))
        discount = draw(st.sampled_from([Decimal(0), Decimal("0.50"), total / 4]))
        discount = discount.quantize(Decimal("0.01"))
        refund_of = draw(st.sampled_from([None, *range(n)])) if n else None
        specs.append(
            {
                "reference": draw(st.sampled_from(REFERENCES)),
                "amounts": amounts,
                "discount": discount if discount < total else Decimal(0),
                "refund_of": refund_of,
                "fault": draw(st.sampled_from(sorted(FAULTS))),
                "cancel": draw(st.booleans()),
                "cancel_fault": draw(st.sampled_from(["none", "lost_after_commit", "503_page"])),
            }
        )
    return specs


def body_of(spec: dict[str, Any], refunded: str | None) -> dict[str, Any]:
    sign = -1 if refunded else 1
    items = [
        {"line_id": str(i), "description": "x", "net_value": str(sign * a), "department": d}
        for i, (d, a) in enumerate(spec["amounts"])
    ]
    if spec["discount"]:
        items.append(
            {
                "line_id": "d",
                "description": "discount",
                "net_value": str(-sign * spec["discount"]),
                "department": "DISC",
            }
        )
    total = sum((Decimal(i["net_value"]) for i in items), Decimal(0))
    return bill(spec["reference"], net_total=str(total), items=items, refund_of=refunded)


def _bridges(url: str, sim: httpx.Client, count: int) -> Iterator[list[Bridge]]:
    """Bridges with a short lease, so a killed delivery is taken over within a second."""
    bridge_settings = make_settings(url, BRIDGE_LEASE_SECONDS=1)
    config = sim_config(str(sim.base_url).rstrip("/"), **{"Timeout Seconds": "1"})
    seed(bridge_settings, config, RULES)
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(run_bridge(bridge_settings)) for _ in range(count)]


@pytest.fixture
def one_bridge(db_url: str, sim: httpx.Client) -> Iterator[list[Bridge]]:
    yield from _bridges(db_url, sim, 1)


@pytest.fixture
def three_replicas(pg_url: str, sim: httpx.Client) -> Iterator[list[Bridge]]:
    yield from _bridges(pg_url, sim, 3)


_SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_SETTINGS
@given(specs=bills())
def test_money_invariants_hold_whatever_fails(
    one_bridge: list[Bridge], sim: httpx.Client, db_url: str, specs: list[dict[str, Any]]
) -> None:
    sim.post("/sim/reset").raise_for_status()
    asyncio.run(_run(one_bridge, sim, db_url, specs))


@pytest.mark.postgres
@_SETTINGS
@given(specs=bills(), data=st.data())
def test_money_invariants_hold_across_three_replicas(
    three_replicas: list[Bridge],
    sim: httpx.Client,
    pg_url: str,
    specs: list[dict[str, Any]],
    data: st.DataObject,
) -> None:
    """Pushes and cancels go to any of three replicas; their outboxes compete for the bills."""
    sim.post("/sim/reset").raise_for_status()
    order = data.draw(st.lists(st.integers(0, 2), min_size=2 * len(specs), max_size=2 * len(specs)))
    asyncio.run(_run(three_replicas, sim, pg_url, specs, order))


async def _run(
    bridges: list[Bridge],
    sim: httpx.Client,
    db_url: str,
    specs: list[dict],
    order: list[int] | None = None,
) -> None:
    run = next(_ids)
    ids: list[str] = []
    order = order or [0] * (2 * len(specs))
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(b.client()) for b in bridges]
        for n, spec in enumerate(specs):
            client, bridge = clients[order[n]], bridges[order[n]]
            bill_id = f"INV-{run}-{n}"
            refunded = ids[spec["refund_of"]] if spec["refund_of"] is not None else None
            body = body_of(spec, refunded)
            sim.put("/sim/faults", json={"queue": FAULTS[spec["fault"]]}).raise_for_status()
            await _push(bridge, client, db_url, sim, bill_id, body, spec["fault"])
            ids.append(bill_id)
        for n, (bill_id, spec) in enumerate(zip(ids, specs, strict=True)):
            if spec["cancel"]:
                fault = FAULTS[spec["cancel_fault"]]
                sim.put("/sim/faults", json={"queue": fault}).raise_for_status()
                response = await clients[order[len(specs) + n]].post(f"/bills/{bill_id}/cancel")
                assert response.status_code in (200, 202), response.text
        views = {bill_id: await _final(clients[0], bill_id) for bill_id in ids}
    rows = await _rows(db_url, ids)
    check(views, rows, sim.get("/sim/ledger").json()["documents"], specs)


async def _push(
    bridge: Bridge,
    client: httpx.AsyncClient,
    db_url: str,
    sim: httpx.Client,
    bill_id: str,
    body: dict[str, Any],
    fault: str,
) -> None:
    if fault != "killed":
        response = await client.post(f"/bills/{bill_id}/push", json=body)
        assert response.status_code in (201, 202, 502), response.text
        return
    # another process of the bridge takes the push and dies while SAP is posting it
    sim.put("/sim/faults", json={"latency_ms": 300}).raise_for_status()
    async with replica(db_url, BRIDGE_LEASE_SECONDS=1, BRIDGE_OUTBOX_ENABLED=False) as runtime:
        config = await runtime.config.snapshot(runtime.sessions)
        push = asyncio.create_task(
            billing.push(runtime, config, bill_id, BillIn.model_validate(body))
        )
        await asyncio.sleep(0.15)
        push.cancel()
        await asyncio.gather(push, return_exceptions=True)
    sim.put("/sim/faults", json={"latency_ms": 0}).raise_for_status()


async def _final(client: httpx.AsyncClient, bill_id: str) -> dict[str, Any]:
    for _ in range(600):
        view = (await client.get(f"/bills/{bill_id}")).json()
        if view.get("status") in FINAL:
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"{bill_id} never settled: {view}")


async def _rows(db_url: str, ids: list[str]) -> dict[str, Any]:
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(select(Bill).where(Bill.bill_id.in_(ids)))
            return {r.bill_id: r for r in result}
    finally:
        await engine.dispose()


def _entry_lines(entry: dict[str, Any], sign: int = 1) -> Counter:
    parsed = entry_from_json(entry)
    gl = [(i.gl_account, sign * i.amount) for i in parsed.items]
    debtors = [(i.debtor, sign * i.amount) for i in parsed.debtor_items]
    return Counter(gl + debtors)


def _doc_lines(doc: dict[str, Any]) -> Counter:
    return Counter(
        (line["customer"] or line["gl_account"], Decimal(line["amount"])) for line in doc["lines"]
    )


def check(
    views: dict[str, dict], rows: dict[str, Any], ledger: list[dict], specs: list[dict]
) -> None:
    by_reference = Counter(doc["reference_id"] for doc in ledger)
    held: Counter = Counter()
    for bill_id, view in views.items():
        row = rows[bill_id]
        assert view["status"] in FINAL
        mine = [d for d in ledger if d["reference_id"] == row.document_reference_id]
        reversals = [d for d in ledger if d["reference_id"] == row.reversal_reference_id]
        if view["status"] in ("posted", "reversed"):
            [doc] = mine
            assert doc["number"] == row.sap_document_number
            assert _doc_lines(doc) == _entry_lines(row.posted_entry)
            held[(doc["company_code"], doc["fiscal_year"], doc["number"])] += 1
        if view["status"] == "reversed":
            [reversal] = reversals
            assert reversal["number"] == row.reversal_document_number
            assert _doc_lines(reversal) == _entry_lines(row.posted_entry, -1)
            held[(reversal["company_code"], reversal["fiscal_year"], reversal["number"])] += 1
        else:
            assert reversals == [] or view["status"] == "needs_review"
        if view["status"] in ("withdrawn", "rejected"):
            assert mine == []
        assert len(reversals) <= 1
    assert all(count == 1 for count in held.values()), held
    assert all(count == 1 for count in by_reference.values()), by_reference
    known = {r.document_reference_id for r in rows.values()}
    known |= {r.reversal_reference_id for r in rows.values()}
    assert {doc["reference_id"] for doc in ledger} <= known
