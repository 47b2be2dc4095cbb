"""Bad bills get a 4xx naming the problem, and nothing is written or sent."""

from __future__ import annotations

import httpx
import pytest

from tests.support.bridge import Bridge, bill


def items(*values: str) -> list[dict]:
    return [
        {"line_id": str(i), "description": "x", "net_value": v, "department": "OPD"}
        for i, v in enumerate(values)
    ]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (bill(net_total="16000.00"), "items", "adds up to 15000.00"),
        (bill(net_total="0", items=items("0")), "net_total", "greater than zero"),
        (bill(net_total="-5.00", items=items("-5.00")), "net_total", "greater than zero"),
        (bill(currency="XYZ"), "currency", "ISO 4217"),
        (bill(currency="JPY", net_total="100.5", items=items("100.5")), "net_total", "0 decimals"),
        (bill(net_total="1.001", items=items("1.001")), "net_total", "2 decimals"),
        (bill(items=[]), "items", "at least 1"),
        (bill(extra="field"), "extra", "Extra inputs"),
        (bill(net_total="abc"), "net_total", "decimal"),
        (bill(net_total="NaN"), "net_total", ""),
        (bill(bill_date="15/03/2024"), "bill_date", "date"),
        (bill(bill_date=1710460800), "bill_date", "YYYY-MM-DD"),
        (bill(items=[*items("5000.00", "10000.00"), items("0")[0]]), "items", "unique"),
        (bill("HMIS-\x01-7"), "reference", "control character"),
        (bill("HMIS\t7"), "reference", "control character"),
        (
            bill(net_total="9999999999999999999999.999999", items=items("1")),
            "net_total",
            "digits",
        ),
        (
            bill(net_total="10000000000000000", items=items("10000000000000000")),
            "net_total",
            "16 digits",
        ),
    ],
)
async def test_invalid_bill_is_422_naming_the_field(
    bridge: Bridge, sim: httpx.Client, body: dict, field: str, words: str
) -> None:
    async with bridge.client() as client:
        response = await client.post("/bills/B-1/push", json=body)
        record = await client.get("/bills/B-1")
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"] and words in response.json()["detail"]
    assert record.status_code == 404
    assert sim.get("/sim/stats").json()["soap_posts"] == 0


async def test_kwd_three_decimals_accepted(bridge: Bridge, sim: httpx.Client) -> None:
    body = bill(currency="KWD", net_total="1.125", items=items("1.000", "0.125"))
    async with bridge.client() as client:
        response = await client.post("/bills/B-KWD/push", json=body)
    assert response.status_code in (201, 502), response.text  # posted, or the sim's own rules


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"{not json", 422),
        (b"[]", 422),
        (b'"text"', 422),
    ],
)
async def test_malformed_json_is_readable_4xx(bridge: Bridge, raw: bytes, status: int) -> None:
    async with bridge.client() as client:
        response = await client.post(
            "/bills/B-1/push", content=raw, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == status
    assert response.json()["detail"]


async def test_bill_id_over_64_characters_is_422(bridge: Bridge) -> None:
    async with bridge.client() as client:
        response = await client.post(f"/bills/{'B' * 65}/push", json=bill())
    assert response.status_code == 422
    assert "bill_id" in response.json()["detail"]


async def test_body_over_one_mebibyte_is_413(bridge: Bridge) -> None:
    huge = bill(items=items(*["1.00"] * 30000))
    async with bridge.client() as client:
        response = await client.post("/bills/B-1/push", json=huge)
        record = await client.get("/bills/B-1")
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]
    assert record.status_code == 404
