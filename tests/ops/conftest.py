"""Helpers of the operations tests: scraping /metrics, bridges with changed settings."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.bridge import RULES, Bridge, make_settings, run_bridge, seed, sim_config


class Scrape:
    """One /metrics answer, parsed: look samples up by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sample's value, 0 when it has not been recorded yet."""
        for s in self.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
        return 0.0


async def scrape(bridge: Bridge) -> Scrape:
    async with bridge.client(None) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


@contextlib.contextmanager
def custom_bridge(db_url: str, sim: httpx.Client | None, **settings: Any) -> Iterator[Bridge]:
    """A bridge with changed infrastructure settings (configured for the simulator if given)."""
    values = make_settings(db_url, **settings)
    if sim is not None:
        seed(values, sim_config(str(sim.base_url).rstrip("/")), RULES)
    with run_bridge(values) as running:
        yield running


@pytest.fixture
def quiet_bridge(db_url: str, sim: httpx.Client) -> Iterator[Bridge]:
    """A bridge whose outbox worker is off, so queued bills stay queued while we look."""
    with custom_bridge(db_url, sim, BRIDGE_OUTBOX_ENABLED=False) as running:
        yield running
