"""Who may call the webhook, and how bad input is refused: status, readable detail, no write."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.payments.conftest import (
    SECRET,
    WEBHOOK,
    basic,
    cloud_event,
    counts,
    payment,
    post,
    push_bill,
    signed,
)
from tests.support.bridge import ADMIN_KEY, API_KEY

BODY = payment("HMIS-A-1", "1400000001", "100.00")
OTHER_SECRET = "whsec_" + base64.b64encode(b"another-secret-entirely-0123456789").decode()


def _without(headers: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != name}


def _bad_requests() -> dict[str, tuple[bytes, dict[str, str]]]:
    raw, good = signed(BODY)
    now = datetime.now(UTC)
    stale = signed(BODY, when=now - timedelta(minutes=6))
    future = signed(BODY, when=now + timedelta(minutes=6))
    tampered = raw.replace(b"100.00", b"900.00")
    return {
        "no credentials": (raw, {"content-type": "application/json"}),
        "missing webhook-id": (raw, _without(good, "webhook-id")),
        "missing webhook-timestamp": (raw, _without(good, "webhook-timestamp")),
        "missing webhook-signature": (raw, _without(good, "webhook-signature")),
        "malformed timestamp": (raw, {**good, "webhook-timestamp": "yesterday"}),
        "malformed signature": (raw, {**good, "webhook-signature": "v1,not-base64!"}),
        "stale timestamp": stale,
        "future timestamp": future,
        "tampered body": (tampered, good),
        "wrong secret": signed(BODY, secret=OTHER_SECRET),
        "v2 signature only": (
            raw,
            {**good, "webhook-signature": "v2," + good["webhook-signature"][3:]},
        ),
        "wrong basic password": (
            raw,
            {"Authorization": "Basic " + base64.b64encode(b"event-mesh:nope").decode()},
        ),
        "bearer token": (raw, {"Authorization": "Bearer abc"}),
        "HMIS API key": (raw, {"X-API-Key": API_KEY}),
        "admin API key": (raw, {"X-API-Key": ADMIN_KEY}),
    }


async def test_every_bad_credential_is_401_with_a_reason_and_stores_nothing(bridge, db_url):
    async with bridge.client(None) as client:
        for name, (body, headers) in _bad_requests().items():
            response = await post(client, body, headers)
            assert response.status_code == 401, (name, response.text)
            assert response.json()["detail"], name
    assert await counts(db_url) == (0, 0)


async def test_stale_and_tampered_say_why(bridge):
    bad = _bad_requests()
    async with bridge.client(None) as client:
        stale = (await post(client, *bad["stale timestamp"])).json()["detail"]
        future = (await post(client, *bad["future timestamp"])).json()["detail"]
        tampered = (await post(client, *bad["tampered body"])).json()["detail"]
        missing = (await post(client, *bad["missing webhook-timestamp"])).json()["detail"]
    assert "old" in stale and "future" in future
    assert "altered" in tampered and "webhook-timestamp" in missing


async def test_one_valid_signature_among_several_is_enough(bridge):
    raw, headers = signed(BODY)
    _, other = signed(BODY, secret=OTHER_SECRET, webhook_id=headers["webhook-id"])
    headers["webhook-signature"] = (
        f"v1a,abc {other['webhook-signature']} {headers['webhook-signature']}"
    )
    async with bridge.client(None) as client:
        response = await post(client, raw, headers)
    assert response.status_code == 202, response.text  # no bill yet: unmatched, stored


async def test_timestamp_within_tolerance_both_ways_is_accepted(bridge):
    now = datetime.now(UTC)
    async with bridge.client(None) as client:
        early = await post(
            client, *signed(payment("R-1", "1400000001", "1.00"), when=now - timedelta(minutes=4))
        )
        late = await post(
            client, *signed(payment("R-1", "1400000002", "1.00"), when=now + timedelta(minutes=4))
        )
    assert (early.status_code, late.status_code) == (202, 202)


async def test_basic_credentials_as_event_mesh_sends_them(bridge):
    async with bridge.client(None) as client:
        response = await client.post(WEBHOOK, json=BODY, headers=basic())
    assert response.status_code == 202 and response.json()["status"] == "unmatched"


async def test_event_mesh_handshake_echoes_the_origin(bridge):
    async with bridge.client(None) as client:
        response = await client.options(
            WEBHOOK,
            headers={**basic(), "WebHook-Request-Origin": "eventmesh.eu10.hana.ondemand.com"},
        )
        refused = await client.options(WEBHOOK, headers={"WebHook-Request-Origin": "evil.example"})
    assert response.status_code == 200
    assert response.headers["WebHook-Allowed-Origin"] == "eventmesh.eu10.hana.ondemand.com"
    assert refused.status_code == 401 and "WebHook-Allowed-Origin" not in refused.headers


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b"[" * 1000 + b"]" * 1000, "nested too deeply"),
        (b'{"a":' * 1000 + b"1" + b"}" * 1000, "nested too deeply"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),  # 200 kB: under the cap
        (json.dumps(BODY).replace('"100.00"', "NaN").encode(), "NaN is not a JSON value"),
        (
            json.dumps({**BODY, "x": "-Infinity"}).replace('"-Infinity"', "-Infinity").encode(),
            "-Infinity",
        ),
        (json.dumps({**BODY, "amount": "fifteen"}).encode(), "amount"),
        (json.dumps({**BODY, "amount": True}).encode(), "amount"),
        (json.dumps({**BODY, "amount": "-5.00"}).encode(), "amount"),
        (json.dumps({**BODY, "currency": "XYZ"}).encode(), "currency"),
        (
            json.dumps({k: v for k, v in BODY.items() if k != "paymentDocument"}).encode(),
            "paymentDocument",
        ),
        (json.dumps({k: v for k, v in cloud_event(BODY).items() if k != "id"}).encode(), "id"),
        (json.dumps({**cloud_event(BODY), "id": ""}).encode(), "id"),
        (json.dumps(cloud_event({"CompanyCode": "1000"})).encode(), "data"),
        (
            json.dumps(
                cloud_event({"CompanyCode": "1000", "FiscalYear": "24", "AccountingDocument": "1"})
            ).encode(),
            "FiscalYear",
        ),
    ],
)
async def test_malformed_bodies_are_422_and_store_nothing(bridge, db_url, body, field):
    async with bridge.client(None) as client:
        response = await post(client, *signed(body))
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]
    assert await counts(db_url) == (0, 0)


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({**BODY, "note": "é"}, ensure_ascii=False).encode("latin-1"),
        json.dumps({**BODY, "note": "\ud800"}, ensure_ascii=False).encode("utf-8", "surrogatepass"),
        json.dumps(BODY).encode("utf-16"),
    ],
    ids=["latin-1", "encoded lone surrogate", "UTF-16"],
)
async def test_body_not_utf8_is_422_and_stores_nothing(bridge, db_url, body):
    """Bytes the reference signer cannot sign as text: sent with Basic credentials."""
    async with bridge.client(None) as client:
        response = await client.post(WEBHOOK, content=body, headers=basic())
    assert response.status_code == 422, response.text
    assert "not UTF-8" in response.json()["detail"]
    assert await counts(db_url) == (0, 0)


async def test_body_over_256_kib_is_413_and_stores_nothing(bridge, db_url):
    big = json.dumps({**BODY, "note": "x" * 300_000}).encode()
    async with bridge.client(None) as client:
        response = await post(client, *signed(big))

        async def chunks():
            yield big[:100_000]
            yield big[100_000:]

        chunked = await client.post(WEBHOOK, content=chunks(), headers=signed(big)[1])
    assert response.status_code == 413 and "262144" in response.json()["detail"]
    assert chunked.status_code == 413
    assert await counts(db_url) == (0, 0)


async def test_not_configured_webhook_refuses_everything(bridge, db_url):
    async with bridge.admin() as admin:
        for key in ("Webhook Secret", "Webhook Username", "Webhook Password"):
            response = await admin.put(f"/config/SAP Integration - {key}", json={"value": None})
            assert response.status_code == 200, response.text
    async with bridge.client(None) as client:
        signed_call = await post(client, *signed(BODY))
        basic_call = await client.post(WEBHOOK, json=BODY, headers=basic())
    assert signed_call.status_code == basic_call.status_code == 401
    assert "Webhook Secret" in signed_call.json()["detail"]
    assert await counts(db_url) == (0, 0)


async def test_api_keys_do_not_open_the_webhook_but_secrets_never_leak(bridge):
    await push_bill(bridge, "B-AUTH", "HMIS-A-1")
    async with bridge.client(None) as client:
        response = await post(client, *signed(BODY, secret=OTHER_SECRET))
    assert SECRET not in response.text and OTHER_SECRET not in response.text
