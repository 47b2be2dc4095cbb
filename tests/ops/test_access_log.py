"""The access log: one JSON line per request, named by route template, never a secret."""

from __future__ import annotations

import httpx
import pytest

from tests.ops.test_logs import _lines
from tests.support.bridge import API_KEY, custom_bridge

FIELDS = {"event", "level", "timestamp", "method", "route", "status", "duration_ms", "request_id"}


def test_each_request_leaves_one_line_with_route_status_duration_and_request_id(
    sqlite_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with custom_bridge(sqlite_url, None, BRIDGE_LOG_FORMAT="json") as running:
        capfd.readouterr()  # start-up lines
        with httpx.Client(base_url=running.url, timeout=30) as client:
            answers = [
                client.get("/health/live", headers={"X-Request-ID": "req-live-1"}),
                client.get(
                    "/bills/B-SECRET-9",
                    params={"api_key": "s3cret"},
                    headers={"X-Request-ID": "req-401"},
                ),
                client.post(
                    "/bills/B-SECRET-9/push?api_key=s3cret",
                    json={"reference": 1},
                    headers={"X-API-Key": API_KEY, "X-Request-ID": "not a sane id"},
                ),
                client.post("/webhooks/sap/payment?token=s3cret", content=b"{}"),
            ]
    text = capfd.readouterr().err
    access = [e for e in _lines(text) if e["event"] == "http.request"]

    assert [a.status_code for a in answers] == [200, 401, 422, 401]
    assert [(e["method"], e["route"], e["status"]) for e in access] == [
        ("GET", "/health/live", 200),
        ("GET", "/bills/{bill_id}", 401),
        ("POST", "/bills/{bill_id}/push", 422),
        ("POST", "/webhooks/sap/payment", 401),
    ]
    for event, answer in zip(access, answers, strict=True):
        assert set(event) == FIELDS, event
        assert event["level"] == "info"
        assert isinstance(event["duration_ms"], float) and 0 <= event["duration_ms"] < 30_000
        assert event["request_id"] == answer.headers["X-Request-ID"]
    assert [e["request_id"] for e in access[:2]] == ["req-live-1", "req-401"]
    generated = access[2]["request_id"]  # an id with spaces is not taken: a new one is made
    assert generated != "not a sane id" and len(generated) == 32
    assert "s3cret" not in text and "api_key" not in text and "B-SECRET-9" not in text
