"""Logs of a whole working session: JSON lines, one event each, request ids, and no secret."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.support.bridge import ADMIN_KEY, API_KEY, ENCRYPTION_KEY, bill, custom_bridge

CLIENT_SECRET = "client-secret-VALUE-1f2e3d4c"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"webhook-signing-key-32-bytes!!!!").decode()
WEBHOOK_PASSWORD = "webhook-PASSWORD-9a8b7c6d"
WRONG_SECRET = "wrong-secret-VALUE-00000000"


def _lines(text: str) -> list[dict[str, Any]]:
    events = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        assert line.startswith("{"), f"not a JSON log line: {line[:200]}"
        events.append(json.loads(line))
    return events


def _signed(secret: str, body: bytes, webhook_id: str) -> dict[str, str]:
    from standardwebhooks.webhooks import Webhook

    timestamp = datetime.now(UTC)
    signature = Webhook(secret).sign(webhook_id, timestamp, body.decode())
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
        "Content-Type": "application/json",
    }


def test_a_full_run_logs_json_events_with_request_ids_and_no_secret(
    db_url: str, sim: httpx.Client, capfd: pytest.CaptureFixture[str]
) -> None:
    tokens: list[str] = []
    request_ids: dict[str, str] = {}
    with custom_bridge(db_url, sim, BRIDGE_LOG_FORMAT="json") as running:
        admin = httpx.Client(base_url=running.url, headers={"X-API-Key": ADMIN_KEY}, timeout=60)
        hmis = httpx.Client(base_url=running.url, headers={"X-API-Key": API_KEY}, timeout=60)
        with admin, hmis:
            # config changes: the SAP client secret (the simulator accepts only its own, so
            # first a wrong one that SAP refuses), and the webhook credentials
            for key, value in (
                ("Client Secret", WRONG_SECRET),
                ("Webhook Secret", WEBHOOK_SECRET),
                ("Webhook Username", "event-mesh"),
                ("Webhook Password", WEBHOOK_PASSWORD),
            ):
                response = admin.put(f"/config/SAP Integration - {key}", json={"value": value})
                assert response.status_code == 200, response.text
            refused = hmis.post("/bills/L-0/push", json=bill("HMIS-L-0"))
            assert refused.status_code == 202, refused.text  # SAP refused the credentials
            admin.put("/config/SAP Integration - Client Secret", json={"value": "sim-secret"})
            admin.put("/config/SAP Integration - Client Secret", json={"value": CLIENT_SECRET})
            admin.put("/config/SAP Integration - Client Secret", json={"value": "sim-secret"})

            pushed = hmis.post(
                "/bills/L-1/push", json=bill("HMIS-L-1"), headers={"X-Request-ID": "req-push-1"}
            )
            assert pushed.status_code == 201, pushed.text
            assert pushed.headers["X-Request-ID"] == "req-push-1"
            request_ids["push"] = "req-push-1"
            connection = running.runtime.sap._conn
            for channel in connection.channels.values() if connection is not None else ():
                if getattr(channel.auth, "_token", None):
                    tokens.append(channel.auth._token)

            sim.post("/sim/materials/generate", json={"start": "2024-03-01"}).raise_for_status()
            audit = hmis.post(
                "/inventory/sync",
                params={"wait": "true", "from_date": "2024-03-01", "to_date": "2024-03-03"},
            )
            assert audit.status_code == 200, audit.text
            request_ids["audit"] = audit.headers["X-Request-ID"]

            document = pushed.json()["sap_document_number"]
            payment = json.dumps(
                {
                    "sapDocumentNumber": document,
                    "paymentDocument": "1400000017",
                    "hmsBillReference": "HMIS-L-1",
                    "amount": "15000.00",
                    "currency": "LKR",
                    "postingDate": "2024-03-15",
                }
            ).encode()
            webhook = httpx.post(
                f"{running.url}/webhooks/sap/payment",
                content=payment,
                headers=_signed(WEBHOOK_SECRET, payment, "msg_log_1"),
            )
            assert webhook.status_code in (200, 202, 404), webhook.text
            basic = httpx.post(
                f"{running.url}/webhooks/sap/payment",
                content=payment,
                auth=("event-mesh", WEBHOOK_PASSWORD),
                headers={"Content-Type": "application/json"},
            )
            assert basic.status_code in (200, 202, 404), basic.text
            wrong = httpx.post(
                f"{running.url}/webhooks/sap/payment",
                content=payment,
                auth=("event-mesh", WEBHOOK_PASSWORD + "x"),
                headers={"Content-Type": "application/json"},
            )
            assert wrong.status_code in (401, 404), wrong.text
            assert WEBHOOK_PASSWORD not in wrong.text
            admin.get("/config")
            hmis.get("/bills/L-1")
    captured = capfd.readouterr()
    text = captured.out + captured.err
    events = _lines(captured.err)
    assert events, "no logs captured"

    for secret in (
        CLIENT_SECRET,
        WRONG_SECRET,
        "sim-secret",
        WEBHOOK_SECRET,
        WEBHOOK_SECRET.removeprefix("whsec_"),
        WEBHOOK_PASSWORD,
        API_KEY,
        ADMIN_KEY,
        ENCRYPTION_KEY,
        *tokens,
    ):
        assert secret not in text, f"a secret ({secret[:6]}...) appears in the logs"
    assert "Bearer " not in text and "Authorization" not in text

    for event in events:
        assert isinstance(event.get("event"), str) and event["event"], event
        assert " " not in event["event"], f"event names are identifiers: {event['event']}"
        assert event.get("level") and event.get("timestamp"), event

    names = {e["event"] for e in events}
    assert {"bridge.started", "sap.call", "sap.journal_entry.posted"} <= names
    assert {"inventory.run.started", "inventory.run.succeeded"} <= names
    assert "sap.journal_entry.deferred" in names  # the refused credentials, reason logged

    # every line caused by the push carries its request id, and so do its SAP calls
    push_lines = [e for e in events if e.get("request_id") == request_ids["push"]]
    assert {"bill.recorded", "sap.call", "sap.journal_entry.posted"} <= {
        e["event"] for e in push_lines
    }
    sap_calls = [e for e in events if e["event"] == "sap.call"]
    assert all(e.get("request_id") for e in sap_calls if e.get("operation") != "token")
    assert any(e.get("request_id") == request_ids["audit"] for e in events)


def test_request_id_is_forwarded_to_sap() -> None:
    """The id reaches SAP as X-Request-ID (checked on the wire with a recording transport)."""
    import asyncio

    from app.config.keys import PREFIX
    from app.config.service import BridgeConfig
    from app.platform.logging import request_id_var
    from app.sap.client import SapClient

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t" * 20, "expires_in": 3600})
        return httpx.Response(200, json={"d": {"results": []}})

    values = {
        PREFIX + k: v
        for k, v in {
            "Enabled": "true",
            "Base URL": "https://sap.example.com",
            "Auth Method": "oauth",
            "Client ID": "c",
            "Client Secret": "s",
            "Company Code": "1000",
            "AR Account": "1",
            "Revenue Account": "2",
            "Timeout Seconds": "5",
            "Max Concurrent Calls": "2",
        }.items()
    }

    async def run() -> None:
        client = SapClient(transport=httpx.MockTransport(handler))
        token = request_id_var.set("req-forwarded-7")
        try:
            await client.find_journal_entries(BridgeConfig(values), "1000", "HMIS-1")
        finally:
            request_id_var.reset(token)
            await client.aclose()

    asyncio.run(run())
    api_calls = [r for r in seen if not r.url.path.endswith("/token")]
    assert api_calls and all(r.headers["X-Request-ID"] == "req-forwarded-7" for r in api_calls)


def test_an_exception_is_one_json_line_with_its_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from app.platform.logging import configure, get_logger

    configure("json")
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger("app.test").exception("delivery.crashed", bill_id="B-1")
    [event] = _lines(capsys.readouterr().err)
    assert event["event"] == "delivery.crashed" and event["bill_id"] == "B-1"
    assert event["level"] == "error"
    assert "ValueError: boom" in event["exception"]
