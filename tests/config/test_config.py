"""The settings store: validation, masking, encryption at rest, audit, roles."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.bridge import API_KEY, Bridge

SECRET = "SAP Integration - Client Secret"


async def rows(url: str, sql: str) -> list[tuple]:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        result = (await connection.execute(text(sql))).all()
    await engine.dispose()
    return [tuple(r) for r in result]


async def test_get_config_lists_every_key_with_secrets_masked(bridge: Bridge) -> None:
    async with bridge.admin() as admin:
        body = (await admin.get("/config")).json()
    assert body[SECRET] == "********"
    assert body["SAP Integration - Company Code"] == "1000"
    assert body["SAP Integration - Clearing Sync Cron"] == "*/15 * * * *"
    assert body["SAP Integration - Webhook Secret"] is None
    assert {r["department"] for r in body["revenue-rules"]} == {"LAB", "OPD", "PHARM"}
    assert "sim-secret" not in str(body)


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("SAP Integration - Base URL", "not a url", "absolute http(s) URL"),
        ("SAP Integration - Enabled", "maybe", "true or false"),
        ("SAP Integration - Inventory Sync Cron", "61 * * * *", "cron"),
        ("SAP Integration - Clearing Sync Cron", "0 0 30 2 *", "never fires"),
        ("SAP Integration - Posting Auth Method", "token", "basic, certificate, oauth"),
        ("SAP Integration - AR Account", "12-000", "SAP account number"),
        ("SAP Integration - Currency", "XYZ", "ISO 4217"),
        ("SAP Integration - Max Concurrent Calls", 0, "between 1 and 64"),
        ("SAP Integration - Webhook Secret", "plain", "whsec_"),
    ],
)
async def test_bad_values_are_422_with_reason(
    bridge: Bridge, key: str, value: object, reason: str
) -> None:
    async with bridge.admin() as admin:
        response = await admin.put(f"/config/{key}", json={"value": value})
    assert response.status_code == 422
    assert reason in response.json()["detail"]
    assert key in response.json()["detail"]


async def test_unknown_key_is_404(bridge: Bridge) -> None:
    async with bridge.admin() as admin:
        response = await admin.put("/config/SAP Integration - Colour", json={"value": "x"})
    assert response.status_code == 404


async def test_secret_encrypted_at_rest_and_audited_masked(bridge: Bridge) -> None:
    async with bridge.admin() as admin:
        response = await admin.put(f"/config/{SECRET}", json={"value": "new-very-secret-value"})
    assert response.json() == {"key": SECRET, "value": "********"}
    url = bridge.settings.database_url
    [(stored,)] = await rows(url, f"SELECT value FROM config_entries WHERE key = '{SECRET}'")
    assert "new-very-secret-value" not in stored and stored.startswith("gAAAA")
    audit = await rows(
        url, f"SELECT old_value, new_value, actor FROM config_audit WHERE key = '{SECRET}'"
    )
    assert audit[-1] == ("********", "********", "admin")


async def test_https_required_unless_insecure_allowed(db_url: str, sim) -> None:
    from tests.support.bridge import make_settings, run_bridge

    settings = make_settings(db_url, BRIDGE_ALLOW_INSECURE_SAP_URLS=False)
    with run_bridge(settings) as running:
        async with running.admin() as admin:
            plain = await admin.put(
                "/config/SAP Integration - Base URL", json={"value": "http://sap.example"}
            )
            tls = await admin.put(
                "/config/SAP Integration - Base URL",
                json={"value": "https://my000000-api.s4hana.cloud.sap/"},
            )
    assert plain.status_code == 422 and "https" in plain.json()["detail"]
    assert tls.json()["value"] == "https://my000000-api.s4hana.cloud.sap"


async def test_revenue_rules_replace_and_audit(bridge: Bridge) -> None:
    rules = [{"department": "LAB", "gl_account": "41000100", "profit_center": "YB700"}]
    async with bridge.admin() as admin:
        response = await admin.put("/config/revenue-rules", json=rules)
        duplicate = await admin.put("/config/revenue-rules", json=rules * 2)
        bad = await admin.put(
            "/config/revenue-rules", json=[{"department": "X", "gl_account": "4-1"}]
        )
        body = (await admin.get("/config")).json()
    assert response.status_code == 200
    assert duplicate.status_code == 422 and bad.status_code == 422
    assert body["revenue-rules"] == [
        {
            "department": "LAB",
            "gl_account": "41000100",
            "profit_center": "YB700",
            "cost_center": None,
        }
    ]


async def test_roles(bridge: Bridge) -> None:
    async with (
        bridge.client(None) as anonymous,
        bridge.client(API_KEY) as hmis,
        bridge.client("wrong-key-wrong-key") as wrong,
    ):
        results = await asyncio.gather(
            anonymous.get("/config"), hmis.get("/config"), wrong.get("/config")
        )
    assert [r.status_code for r in results] == [401, 403, 401]
    assert all(r.json()["detail"] for r in results)
