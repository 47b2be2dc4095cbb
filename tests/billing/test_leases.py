"""Short leases, renewed while an attempt runs; bounded read-backs."""

from __future__ import annotations

import httpx

from tests.billing.test_faults import wait_for_status
from tests.support.bridge import (
    RULES,
    bill,
    make_settings,
    run_bridge,
    seed,
    seed_config,
    sim_config,
)


def stats(sim: httpx.Client) -> dict:
    return sim.get("/sim/stats").json()


def test_a_slow_posting_keeps_its_lease_so_no_other_delivery_takes_the_bill(
    db_url: str, sim: httpx.Client
) -> None:
    """SAP takes 2.5 s, the lease is 1 s: renewed every third of it, the lease holds, so the
    outbox (polling every 50 ms) never claims the bill, reads it back or sends it again."""
    settings = make_settings(db_url, BRIDGE_LEASE_SECONDS=1)
    seed(settings, sim_config(str(sim.base_url).rstrip("/")), RULES)
    sim.put("/sim/faults", json={"latency_ms": 2500}).raise_for_status()
    with (
        run_bridge(settings) as running,
        httpx.Client(
            base_url=running.url, headers={"X-API-Key": "test-hmis-key-0123456789"}, timeout=30
        ) as client,
    ):
        response = client.post("/bills/B-1/push", json=bill())
    assert response.status_code == 201, response.text
    assert stats(sim)["soap_posts"] == 1
    assert stats(sim)["odata_requests"] == 0


async def test_read_backs_that_keep_finding_nothing_end_in_review(
    db_url: str, sim: httpx.Client
) -> None:
    """Each send may have posted (504), each read-back finds nothing: after
    BRIDGE_READ_BACK_LIMIT (3) of them the bill waits for an operator instead of a fifth send."""
    settings = make_settings(db_url)
    await seed_config(settings, sim_config(str(sim.base_url).rstrip("/")), RULES)
    sim.put("/sim/faults", json={"queue": [{"kind": "status", "status": 504}] * 6})
    with run_bridge(settings) as running:
        async with running.client() as client:
            await client.post("/bills/B-1/push", json=bill())
            review = await wait_for_status(client, "B-1", "needs_review")
    assert "after 3 read-backs" in review["last_error"]
    assert stats(sim)["soap_posts"] == 4
    assert sim.get("/sim/ledger").json()["documents"] == []
