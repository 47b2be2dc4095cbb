"""PUT /inventory/items: bulk upsert by item_id, all or nothing, on both databases."""

from __future__ import annotations

from typing import Any

from tests.support.bridge import ADMIN_KEY, Bridge


def item(item_id: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "item_id": item_id,
        "code": f"MED-{item_id}",
        "barcode": f"479{item_id:>010}",
        "name": f"Item {item_id}",
        "unit": "TAB",
        "active": True,
    }
    return {**body, **overrides}


async def test_upsert_inserts_then_updates(bridge: Bridge) -> None:
    async with bridge.client() as client:
        first = await client.put("/inventory/items", json=[item(str(i)) for i in range(10_000)])
        assert first.status_code == 200, first.text
        assert first.json() == {"received": 10_000, "inserted": 10_000, "updated": 0}
        second = await client.put("/inventory/items", json=[item("1", active=False), item("10000")])
        assert second.json() == {"received": 2, "inserted": 1, "updated": 1}


async def test_bad_batches_are_422_and_write_nothing(bridge: Bridge) -> None:
    async with bridge.client() as client:
        cases = (
            ([item("1"), item("2"), item("1")], "appears twice"),
            ([item("1"), item("2", code="  ")], "1.code"),
            ([item("1"), {"item_id": "2"}], "1.code"),
            ([item(str(i)) for i in range(10_001)], "10000"),
        )
        for body, fragment in cases:
            response = await client.put("/inventory/items", json=body)
            assert response.status_code == 422, response.text
            assert fragment in response.json()["detail"]
        check = await client.put("/inventory/items", json=[item("1")])
        assert check.json()["inserted"] == 1  # nothing of the refused batches was written


async def test_items_take_the_hmis_key(bridge: Bridge) -> None:
    async with bridge.client(key=None) as client:
        assert (await client.put("/inventory/items", json=[item("1")])).status_code == 401
    async with bridge.client(key=ADMIN_KEY) as client:
        assert (await client.put("/inventory/items", json=[item("1")])).status_code == 403
