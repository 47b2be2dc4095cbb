"""Helpers of the inventory tests: generated SAP data, the matching HMIS item master."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from tests.support.bridge import ADMIN_KEY, Bridge

START = "2024-03-01"


def generate(sim: httpx.Client, **params: Any) -> dict[str, Any]:
    """Seeded goods receipts in the simulator; returns the HMIS item master that goes with it."""
    response = sim.post("/sim/materials/generate", json={"start": START, **params})
    response.raise_for_status()
    return response.json()


def expected(sim: httpx.Client, from_date: str, to_date: str, plant: str | None = None) -> dict:
    params = {"from_date": from_date, "to_date": to_date, **({"plant": plant} if plant else {})}
    response = sim.get("/sim/materials/expected", params=params)
    response.raise_for_status()
    return response.json()


def set_config(bridge: Bridge, key: str, value: Any) -> None:
    response = httpx.put(
        f"{bridge.url}/config/SAP Integration - {key}",
        json={"value": value},
        headers={"X-API-Key": ADMIN_KEY},
    )
    assert response.status_code == 200, response.text


async def load_items(bridge: Bridge, items: list[dict[str, Any]], size: int = 10_000) -> None:
    async with bridge.client() as client:
        for start in range(0, len(items), size):
            response = await client.put("/inventory/items", json=items[start : start + size])
            assert response.status_code == 200, response.text


async def sync(bridge: Bridge, **params: str) -> httpx.Response:
    async with bridge.client() as client:
        return await client.post("/inventory/sync", params={"wait": "true", **params})


def quantities(findings: list[dict[str, Any]], key: str = "material") -> dict[str, str]:
    """{normalised material (or item id): quantity} of a run's findings."""
    from app.inventory.matching import normalise

    result: dict[str, Decimal] = {}
    for finding in findings:
        name = normalise(finding[key]) if key == "material" else finding[key]
        result[name] = result.get(name, Decimal(0)) + Decimal(finding["quantity"])
    return {k: f"{v:.3f}" for k, v in result.items()}


def assert_matches_truth(run: dict[str, Any], truth: dict[str, Any]) -> None:
    assert run["status"] == "succeeded", run
    for name in (
        "matched_items",
        "unmatched_items",
        "inactive_items",
        "cancelled_items",
        "ignored_items",
        "total_document_items",
        "items_read",
    ):
        assert run[name] == truth[name], (name, run[name], truth[name])
    assert quantities(run["unmatched_materials"]) == truth["unmatched"]
    assert quantities(run["inactive_materials"]) == truth["inactive"]
    if "received_items" in run:
        assert quantities(run["received_items"], "item_id") == truth["received"]
