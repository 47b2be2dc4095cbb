"""Scraping a bridge's /metrics in tests: look samples up by name and labels."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support.bridge import Bridge


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
