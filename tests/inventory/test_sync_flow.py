"""Audit runs end to end: bridge over HTTP, simulator with known ground truth, both databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from tests.inventory.conftest import (
    assert_matches_truth,
    expected,
    generate,
    load_items,
    set_config,
    sync,
)
from tests.support.bridge import Bridge


async def test_backfill_matches_ground_truth(bridge: Bridge, sim: httpx.Client) -> None:
    data = generate(sim, seed=11, items=600, days=20)
    await load_items(bridge, data["hmis_items"])
    response = await sync(bridge, from_date="2024-03-04", to_date="2024-03-15")
    assert response.status_code == 200, response.text
    run = response.json()
    truth = expected(sim, "2024-03-04", "2024-03-15")
    assert truth["unmatched_items"] > 0 and truth["inactive_items"] > 0
    assert truth["cancelled_items"] > 0 and truth["ignored_items"] > 0
    assert_matches_truth(run, truth)
    assert run["mode"] == "backfill" and run["watermark"] is None
    assert "101" in run["rule"]
    material = run["unmatched_materials"][0]
    assert material["documents"] and "/2024/" in material["documents"][0]
    async with bridge.client() as client:
        again = (await client.get(f"/inventory/sync/{run['run_id']}")).json()
        listed = (await client.get("/inventory/sync")).json()
    assert_matches_truth(again, truth)
    assert listed[0]["run_id"] == run["run_id"] and "received_items" not in listed[0]


async def test_barcode_field_and_plant_filter(bridge: Bridge, sim: httpx.Client) -> None:
    data = generate(sim, seed=5, items=400, days=10, code_field="barcode")
    await load_items(bridge, data["hmis_items"])
    set_config(bridge, "Material Code Field", "barcode")
    set_config(bridge, "Plant", "1720")
    run = (await sync(bridge, from_date="2024-03-01", to_date="2024-03-10")).json()
    truth = expected(sim, "2024-03-01", "2024-03-10", plant="1720")
    assert_matches_truth(run, truth)
    assert run["plant"] == "1720" and run["code_field"] == "barcode"
    assert any("other plants" in w for w in run["warnings"])


async def test_window_of_more_than_60_pages(bridge: Bridge, sim: httpx.Client) -> None:
    data = generate(sim, seed=7, items=900, days=15)
    sim.put("/sim/materials/settings", json={"page_size": 5, "latency_ms": 20}).raise_for_status()
    await load_items(bridge, data["hmis_items"])
    run = (await sync(bridge, from_date="2024-03-01", to_date="2024-03-15")).json()
    truth = expected(sim, "2024-03-01", "2024-03-15")
    assert truth["headers"] > 300
    assert run["pages_read"] == -(-truth["headers"] // 5) and run["pages_read"] >= 60
    assert_matches_truth(run, truth)
    stats = sim.get("/sim/materials/stats").json()
    assert 2 <= stats["max_in_flight"] <= 4  # Max Concurrent Calls is 4


def day(offset: int) -> str:
    """Today (UTC) plus `offset` days, as YYYY-MM-DD."""
    return (datetime.now(UTC).date() + timedelta(days=offset)).isoformat()


def end_of(text: str) -> str:
    return f"{text}T23:59:59"


async def test_forward_sync_moves_watermark_backfill_does_not(
    bridge: Bridge, sim: httpx.Client
) -> None:
    data = generate(sim, seed=3, items=200, days=12, start=day(-11))
    await load_items(bridge, data["hmis_items"])
    first = (await sync(bridge)).json()
    assert first["status"] == "succeeded" and first["mode"] == "forward"
    assert (first["from_date"], first["to_date"]) == (day(-7), day(0))
    assert first["watermark"] == end_of(day(-1))  # today is not over: audited again next time
    assert_matches_truth(first, expected(sim, day(-7), day(0)))
    backfill = (await sync(bridge, from_date=day(-11), to_date=day(-8))).json()
    assert backfill["status"] == "succeeded" and backfill["watermark"] == first["watermark"]
    second = (await sync(bridge)).json()
    assert (second["from_date"], second["to_date"]) == (day(0), day(0))
    assert second["watermark"] == first["watermark"]


async def test_sap_400_mid_run_fails_and_next_run_catches_up(
    bridge: Bridge, sim: httpx.Client
) -> None:
    data = generate(sim, seed=9, items=300, days=10, start=day(-9))
    await load_items(bridge, data["hmis_items"])
    sim.put("/sim/materials/settings", json={"page_size": 10}).raise_for_status()
    sim.put("/sim/materials/faults", json={"page": 3, "status": 400}).raise_for_status()
    failed = (await sync(bridge, to_date=day(-2))).json()
    assert failed["status"] == "failed"
    assert "HTTP 400" in failed["error"] and "Injected error on page 3" in failed["error"]
    assert failed["watermark"] is None
    retry = (await sync(bridge, to_date=day(-2))).json()
    assert retry["status"] == "succeeded"
    assert retry["from_date"] == failed["from_date"] == day(-7)
    assert retry["watermark"] == end_of(day(-2))
    assert_matches_truth(retry, expected(sim, day(-7), day(-2)))


async def test_sap_503_mid_run_fails_with_reason_watermark_unchanged(
    bridge: Bridge, sim: httpx.Client
) -> None:
    data = generate(sim, seed=4, items=300, days=10, start=day(-9))
    await load_items(bridge, data["hmis_items"])
    sim.put("/sim/materials/settings", json={"page_size": 10}).raise_for_status()
    first = (await sync(bridge, to_date=day(-5))).json()
    assert first["watermark"] == end_of(day(-5))
    sim.put("/sim/materials/faults", json={"page": 2, "status": 503, "times": None})
    failed = (await sync(bridge, to_date=day(-1))).json()
    assert failed["status"] == "failed" and "HTTP 503" in failed["error"]
    assert failed["watermark"] == first["watermark"]
    sim.put("/sim/materials/faults", json={"page": None}).raise_for_status()
    caught_up = (await sync(bridge, to_date=day(-1))).json()
    assert caught_up["status"] == "succeeded"
    assert (caught_up["from_date"], caught_up["watermark"]) == (day(-4), end_of(day(-1)))
    assert_matches_truth(caught_up, expected(sim, day(-4), day(-1)))


async def test_second_request_while_running_is_409(bridge: Bridge, sim: httpx.Client) -> None:
    generate(sim, seed=2, items=200, days=5)
    sim.put("/sim/materials/settings", json={"page_size": 5, "latency_ms": 100})
    async with bridge.client() as client:
        started = await client.post("/inventory/sync", params={"from_date": "2024-03-01"})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        assert started.json()["status"] == "running"
        second = await client.post("/inventory/sync")
        assert second.status_code == 409, second.text
        assert second.json()["run_id"] == run_id
        for _ in range(400):
            run = (await client.get(f"/inventory/sync/{run_id}")).json()
            if run["status"] != "running":
                break
            await asyncio.sleep(0.05)
    assert run["status"] == "succeeded"


async def test_bad_dates_are_422(bridge: Bridge) -> None:
    async with bridge.client() as client:
        for params, fragment in (
            ({"from_date": "15/03/2024"}, "YYYY-MM-DD"),
            ({"from_date": "2024-02-30"}, "YYYY-MM-DD"),
            ({"from_date": "2024-03-10", "to_date": "2024-03-01"}, "before"),
            ({"from_date": "2023-01-01", "to_date": "2024-01-02"}, "366"),
        ):
            response = await client.post("/inventory/sync", params=params)
            assert response.status_code == 422, response.text
            assert fragment in response.json()["detail"]
        assert (await client.get("/inventory/sync")).json() == []
        assert (await client.get("/inventory/sync/999")).status_code == 404


async def test_disabled_integration_is_skipped(bridge: Bridge, sim: httpx.Client) -> None:
    set_config(bridge, "Enabled", "false")
    response = await sync(bridge)
    assert response.status_code == 200
    assert response.json() == {"status": "skipped", "reason": "SAP integration is disabled"}
    assert sim.get("/sim/materials/stats").json()["requests"] == 0
