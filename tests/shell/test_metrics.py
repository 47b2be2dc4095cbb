"""GET /metrics: what operators alert on moves when the bridge does something (counts only)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from app.billing.models import Bill
from app.platform.db import utcnow
from app.sap.circuit import CircuitBreaker
from tests.support.bridge import (
    RULES,
    Bridge,
    bill,
    custom_bridge,
    make_settings,
    run_bridge,
    seed_config,
    sim_config,
)
from tests.support.metrics import scrape

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.fixture
def quiet_bridge(db_url: str, sim: httpx.Client) -> Iterator[Bridge]:
    """A bridge whose outbox worker is off, so queued bills stay queued while we look."""
    with custom_bridge(db_url, sim, BRIDGE_OUTBOX_ENABLED=False) as running:
        yield running


async def test_push_counts_outcome_sap_latency_and_token(bridge: Bridge) -> None:
    before = await scrape(bridge)
    async with bridge.client() as client:
        assert (await client.post("/bills/M-1/push", json=bill())).status_code == 201
        assert (await client.post("/bills/M-1/push", json=bill())).status_code == 200
        changed = bill(net_total="15000.01")
        assert (await client.post("/bills/M-1/push", json=changed)).status_code in (409, 422)
        assert (await client.get("/bills/M-1")).status_code == 200
    after = await scrape(bridge)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("bridge_bills_pushed_total", outcome="posted") == 1
    assert delta("bridge_bills_pushed_total", outcome="already_pushed") == 1
    assert delta("bridge_bill_deliveries_total", kind="posting", outcome="posted") == 1
    assert (
        delta(
            "bridge_sap_request_duration_seconds_count",
            operation="journal_entry.post",
            status="200",
        )
        == 1
    )
    assert delta("bridge_sap_token_fetches_total", result="ok") == 1  # a new client, one token
    assert delta("bridge_sap_request_duration_seconds_count", operation="token", status="200") == 1
    # the route template is the label, never the bill id
    assert (
        delta("bridge_http_requests_total", method="GET", route="/bills/{bill_id}", status="200")
        == 1
    )
    assert "M-1" not in after.text
    assert after.value("bridge_outbox_depth", status="queued") == 0
    assert after.value("bridge_outbox_oldest_age_seconds") == 0
    assert after.value("bridge_sap_circuit_state") == 0
    assert after.value("bridge_database_up") == 1
    assert after.value("bridge_sap_integration_enabled") == 1


async def test_queued_bill_shows_in_outbox_depth_and_age(
    quiet_bridge: Bridge, sim: httpx.Client
) -> None:
    sim.put("/sim/faults", json={"down": True}).raise_for_status()
    async with quiet_bridge.client() as client:
        for n in range(3):
            response = await client.post(f"/bills/Q-{n}/push", json=bill(f"HMIS-Q-{n}"))
            assert response.status_code == 202, response.text
    metrics = await scrape(quiet_bridge)
    assert metrics.value("bridge_outbox_depth", status="queued") == 3
    assert metrics.value("bridge_outbox_depth", status="reversing") == 0
    assert metrics.value("bridge_outbox_oldest_age_seconds") >= 0
    assert "bridge_outbox_oldest_age_seconds" in metrics.families
    assert (
        metrics.value(
            "bridge_sap_request_duration_seconds_count",
            operation="journal_entry.post",
            status="503",
        )
        + metrics.value("bridge_sap_request_duration_seconds_count", operation="token")
        >= 1
    )


async def test_rejected_bill_is_counted_and_waits_for_an_operator(
    bridge: Bridge, sim: httpx.Client
) -> None:
    sim.put("/sim/closed-periods", json=[{"company_code": "1000", "period": "2024-03"}])
    before = await scrape(bridge)
    async with bridge.client() as client:
        response = await client.post("/bills/R-1/push", json=bill())
    assert response.status_code == 502, response.text
    after = await scrape(bridge)
    assert after.value("bridge_bills_rejected") == 1
    assert (
        after.value("bridge_bills_pushed_total", outcome="rejected")
        - before.value("bridge_bills_pushed_total", outcome="rejected")
        == 1
    )
    assert (
        after.value("bridge_bill_deliveries_total", kind="posting", outcome="rejected")
        - before.value("bridge_bill_deliveries_total", kind="posting", outcome="rejected")
        == 1
    )


async def test_audit_run_is_counted_and_its_outcome_read_from_the_database(
    bridge: Bridge, sim: httpx.Client
) -> None:
    sim.post("/sim/materials/generate", json={"start": "2024-03-01"}).raise_for_status()
    before = await scrape(bridge)
    async with bridge.client() as client:
        response = await client.post(
            "/inventory/sync",
            params={"wait": "true", "from_date": "2024-03-01", "to_date": "2024-03-07"},
        )
    assert response.status_code == 200, response.text
    run = response.json()
    after = await scrape(bridge)
    ran = after.value(
        "bridge_inventory_audit_runs_total", result="succeeded", trigger="api"
    ) - before.value("bridge_inventory_audit_runs_total", result="succeeded", trigger="api")
    assert ran == 1
    assert after.value("bridge_inventory_audit_duration_seconds_count", result="succeeded") >= 1
    assert after.value("bridge_inventory_audit_last_run_failed") == 0
    assert after.value("bridge_inventory_audit_last_success_timestamp_seconds") > 0
    assert after.value("bridge_inventory_audit_last_unmatched_items") == run["unmatched_items"]
    assert (
        after.value("bridge_inventory_audit_unmatched_items_total")
        - before.value("bridge_inventory_audit_unmatched_items_total")
        == run["unmatched_items"]
    )


async def test_failed_audit_sets_the_failing_gauge(bridge: Bridge, sim: httpx.Client) -> None:
    sim.put("/sim/faults", json={"down": True}).raise_for_status()
    async with bridge.client() as client:
        response = await client.post(
            "/inventory/sync",
            params={"wait": "true", "from_date": "2024-03-01", "to_date": "2024-03-02"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "failed"
    metrics = await scrape(bridge)
    assert metrics.value("bridge_inventory_audit_last_run_failed") == 1
    assert metrics.value("bridge_inventory_audit_runs_total", result="failed", trigger="api") >= 1


async def test_metrics_answer_while_the_database_is_down(tmp_path: Path) -> None:
    missing = f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/bridge.db"
    with custom_bridge(missing, None) as running:
        metrics = await scrape(running)
    assert metrics.value("bridge_database_up") == 0
    assert "bridge_outbox_depth" not in metrics.families


def test_circuit_transitions_are_counted() -> None:
    from app.platform.metrics import REGISTRY

    def count(state: str) -> float:
        value = REGISTRY.get_sample_value("bridge_sap_circuit_transitions_total", {"state": state})
        return value or 0.0

    now = [0.0]
    breaker = CircuitBreaker(min_calls=2, failure_ratio=0.5, open_seconds=10, clock=lambda: now[0])
    opened, probing, closed = count("open"), count("half_open"), count("closed")
    for _ in range(2):
        assert breaker.allow()
        breaker.record(False)
    assert count("open") == opened + 1
    now[0] = 11.0
    assert breaker.allow()
    assert count("half_open") == probing + 1
    breaker.record(True)
    assert count("closed") == closed + 1


async def test_payments_metrics_are_exposed_for_the_alerts(bridge: Bridge) -> None:
    metrics = await scrape(bridge)
    for name in (
        "bridge_webhook_events",
        "bridge_clearing_sync_runs",
        "bridge_clearing_sync_payments",
        "bridge_clearing_sync_duration_seconds",
    ):
        assert name in metrics.families, name
    # series at 0 before the first event: the dashboard panels draw, increase() sees the first
    for name, labels in (
        ("bridge_webhook_events_total", {"outcome": "confirmed"}),
        ("bridge_webhook_events_total", {"outcome": "refused", "reason": "unauthenticated"}),
        ("bridge_clearing_sync_runs_total", {"result": "failed"}),
        ("bridge_clearing_sync_payments_total", {"outcome": "recorded"}),
    ):
        assert any(
            s.name == name and labels.items() <= s.labels.items() for s in metrics.samples
        ), (name, labels)


def _names(expression: str) -> set[str]:
    return set(re.findall(r"\bbridge_[a-z0-9_]+", expression))


def _known(metrics_text: str) -> set[str]:
    names = set()
    for line in metrics_text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            names.add(name)
            if kind == "counter":
                names.add(name + "_total")
            if kind == "histogram":
                names |= {name + "_bucket", name + "_count", name + "_sum"}
    return names


async def test_alerts_and_dashboard_use_only_metrics_the_bridge_exposes(bridge: Bridge) -> None:
    known = _known((await scrape(bridge)).text)
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    expressions = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = (DEPLOY / "grafana" / "hmis-sap-bridge.json").read_text()
    import json

    panels = json.loads(dashboard)["panels"]
    expressions += [t["expr"] for p in panels for t in p.get("targets", [])]
    used = set().union(*(_names(e) for e in expressions))
    assert used, "no bridge metric referenced"
    assert used <= known, f"not exposed by /metrics: {sorted(used - known)}"


async def test_oldest_queued_age_is_read_from_the_database(
    quiet_bridge: Bridge, sim: httpx.Client, db_url: str
) -> None:
    sim.put("/sim/faults", json={"down": True}).raise_for_status()
    async with quiet_bridge.client() as client:
        assert (await client.post("/bills/Q-1/push", json=bill("HMIS-Q-1"))).status_code == 202
        assert (await client.post("/bills/Q-2/push", json=bill("HMIS-Q-2"))).status_code == 202
    engine = create_async_engine(db_url)
    async with engine.begin() as conn:
        pushed_an_hour_ago = utcnow() - timedelta(hours=1)
        await conn.execute(
            update(Bill).where(Bill.bill_id == "Q-1").values(created_at=pushed_an_hour_ago)
        )
    await engine.dispose()
    metrics = await scrape(quiet_bridge)
    assert metrics.value("bridge_outbox_depth", status="queued") == 2
    assert 3600 <= metrics.value("bridge_outbox_oldest_age_seconds") < 3600 + 300


async def test_database_gauges_are_cached_but_counters_are_not(
    db_url: str, sim: httpx.Client
) -> None:
    settings = make_settings(db_url, BRIDGE_METRICS_CACHE_SECONDS=3600)
    await seed_config(settings, sim_config(str(sim.base_url).rstrip("/")), RULES)
    sim.put("/sim/closed-periods", json=[{"company_code": "1000", "period": "2024-03"}])
    with run_bridge(settings) as running:
        first = await scrape(running)
        async with running.client() as client:
            assert (await client.post("/bills/R-1/push", json=bill())).status_code == 502
        second = await scrape(running)
    assert first.value("bridge_bills_rejected") == second.value("bridge_bills_rejected") == 0
    pushed = "bridge_bills_pushed_total"
    assert second.value(pushed, outcome="rejected") - first.value(pushed, outcome="rejected") == 1
