"""Every route that takes JSON reads it strictly: a body the parser cannot take is a 422."""

from __future__ import annotations

import re

import pytest

from tests.support.bridge import ADMIN_KEY, API_KEY, Bridge

#: (body, words of the 422's detail)
UNREADABLE = {
    "array 1,000 deep": (b"[" * 1000 + b"]" * 1000, "nested too deeply"),
    "object 1,000 deep": (b'{"a":' * 1000 + b"1" + b"}" * 1000, "nested too deeply"),
    "array 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "object 100,000 deep": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
    "invalid UTF-8": (b'{"value": "\xff\xfe"}', "not UTF-8"),
    "UTF-8 of a lone surrogate": (b'{"value": "\xed\xa0\x80"}', "not UTF-8"),
    "UTF-16": ('{"value": "1000"}'.encode("utf-16"), "not UTF-8"),
    "NaN": (b'{"value": NaN}', "NaN is not a JSON value"),
    "Infinity": (b'[{"department": "LAB", "gl_account": Infinity}]', "Infinity is not a JSON"),
    "-Infinity in an ignored field": (
        b'[{"item_id": "1", "code": "C", "name": "x", "unit": "TAB", "x": -Infinity}]',
        "-Infinity is not a JSON value",
    ),
    "not JSON": (b"{not json", "not valid JSON"),
}


@pytest.fixture
async def json_operations(bridge: Bridge) -> list[tuple[str, str, str]]:
    """(METHOD, url, key) of every operation with a JSON request body, but the webhook's
    (tests/payments covers it: it has its own credentials)."""
    async with bridge.client(None) as client:
        schema = (await client.get("/openapi.json")).json()
    operations = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if "requestBody" not in operation or path.startswith("/webhooks/"):
                continue
            key = ADMIN_KEY if operation.get("x-bridge-key") == "admin" else API_KEY
            operations.append((method.upper(), re.sub(r"\{[^}]+\}", "B-1", path), key))
    return operations


@pytest.mark.parametrize("case", UNREADABLE)
async def test_unreadable_json_is_422_on_every_route_that_takes_json(
    bridge: Bridge, json_operations: list[tuple[str, str, str]], case: str
) -> None:
    body, words = UNREADABLE[case]
    async with bridge.client(None) as client:
        for method, url, key in json_operations:
            response = await client.request(
                method,
                url,
                content=body,
                headers={"X-API-Key": key, "Content-Type": "application/json"},
            )
            assert response.status_code == 422, (method, url, response.text)
            assert words in response.json()["detail"], (method, url, response.text)
    assert {url for _, url, _ in json_operations} >= {
        "/bills/B-1/push",
        "/bills/B-1/resolve",
        "/config/revenue-rules",
        "/config/B-1",
        "/inventory/items",
    }
