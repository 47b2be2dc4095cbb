"""`GET /config/audit`: the settings' change trail, newest first, secrets masked, keyset paging."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import create_async_engine

from app.config.models import ConfigAudit
from tests.support.bridge import API_KEY, Bridge

SECRET = "SAP Integration - Client Secret"
CODE = "SAP Integration - Company Code"


async def audit_count(url: str) -> int:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        count = (await connection.execute(select(func.count()).select_from(ConfigAudit))).scalar()
    await engine.dispose()
    return int(count or 0)


async def write_audit(url: str, **values: Any) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(insert(ConfigAudit).values(**values))
    await engine.dispose()


async def trail(admin: httpx.AsyncClient, **params: Any) -> list[dict]:
    """Every entry, page by page."""
    found: list[dict] = []
    cursor = None
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        response = await admin.get("/config/audit", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        found += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return found


async def test_changes_newest_first_with_who_when_and_values(bridge: Bridge) -> None:
    before = await audit_count(bridge.settings.database_url)
    async with bridge.admin() as admin:
        put = await admin.put(f"/config/{CODE}", json={"value": "2000"})
        secret = await admin.put(f"/config/{SECRET}", json={"value": "a-brand-new-secret-value"})
        reset = await admin.put(f"/config/{CODE}", json={"value": None})
        rules = await admin.put(
            "/config/revenue-rules", json=[{"department": "LAB", "gl_account": "41000900"}]
        )
        page = (await admin.get("/config/audit", params={"limit": 4})).json()
        shown = (await admin.get("/config")).json()
        everything = await trail(admin, limit=3)
    assert all(r.status_code == 200 for r in (put, secret, reset, rules))
    newest = page["items"]
    assert [e["key"] for e in newest] == ["revenue-rules", CODE, SECRET, CODE]
    assert [(e["old_value"], e["new_value"]) for e in newest[1:]] == [
        ("2000", None),
        (shown[SECRET], shown[SECRET]),
        ("1000", "2000"),
    ]
    assert shown[SECRET] == "********"
    assert newest[0]["new_value"] == "LAB=41000900"
    assert {e["actor"] for e in newest} == {"admin"}
    assert [e["request_id"] for e in newest] == [
        r.headers["X-Request-ID"] for r in (rules, reset, secret, put)
    ]
    ids = [e["id"] for e in newest]
    assert ids == sorted(ids, reverse=True)
    times = [datetime.fromisoformat(e["changed_at"]) for e in newest]
    assert times == sorted(times, reverse=True) and times[0] <= datetime.now(UTC)
    assert page["next_cursor"] is not None
    assert len(everything) == before + 4
    assert "a-brand-new-secret-value" not in str(everything) and "sim-secret" not in str(everything)


async def test_a_secret_is_masked_as_get_config_masks_it_whatever_wrote_the_row(
    bridge: Bridge,
) -> None:
    """A row written by something other than the service (a migration, a hand-made fix) with a
    secret in clear is still shown masked; a secret that was not set stays null."""
    url = bridge.settings.database_url
    await write_audit(
        url,
        key=SECRET,
        old_value=None,
        new_value="plain-text-secret",
        actor="migration 9999",
        request_id=None,
        changed_at=datetime.now(UTC),
    )
    async with bridge.admin() as admin:
        [entry] = (await admin.get("/config/audit", params={"limit": 1})).json()["items"]
        shown = (await admin.get("/config")).json()
    assert (entry["key"], entry["actor"]) == (SECRET, "migration 9999")
    assert (entry["old_value"], entry["new_value"]) == (None, shown[SECRET]) == (None, "********")


async def test_one_key_by_its_full_or_short_name(bridge: Bridge) -> None:
    async with bridge.admin() as admin:
        for value in ("2000", "3000"):
            await admin.put(f"/config/{CODE}", json={"value": value})
        await admin.put("/config/SAP Integration - AR Account", json={"value": "12100001"})
        full = await trail(admin, key=CODE, limit=1)
        short = await trail(admin, key="Company Code")
        rules = await trail(admin, key="revenue-rules")
        none = await trail(admin, key="SAP Integration - Colour")
    assert full == short
    assert [(e["old_value"], e["new_value"]) for e in full] == [
        ("2000", "3000"),
        ("1000", "2000"),
        (None, "1000"),  # seeded
    ]
    assert {e["key"] for e in full} == {CODE}
    assert [e["key"] for e in rules] == ["revenue-rules"] and rules[0]["actor"] == "test"
    assert none == []


async def test_pages_never_shift_when_changes_arrive(bridge: Bridge) -> None:
    async with bridge.admin() as admin:
        first = (await admin.get("/config/audit", params={"limit": 2})).json()
        await admin.put(f"/config/{CODE}", json={"value": "2000"})
        rest = []
        cursor = first["next_cursor"]
        while cursor:
            body = (await admin.get("/config/audit", params={"limit": 2, "cursor": cursor})).json()
            rest += body["items"]
            cursor = body["next_cursor"]
        now = await trail(admin, limit=200)
    walked = [e["id"] for e in first["items"] + rest]
    assert walked == [e["id"] for e in now[1:]]  # all but the change made meanwhile, once each
    assert now[0]["new_value"] == "2000"


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"limit": "0"}, "limit: Input should be greater than or equal to 1"),
        ({"limit": "201"}, "limit: Input should be less than or equal to 200"),
        ({"cursor": "%%%"}, "cursor: not a cursor this service issued"),
        ({"cursor": base64.urlsafe_b64encode(b"audit:x").decode()}, "cursor: not a cursor"),
        ({"cursor": base64.urlsafe_b64encode(b"audit:99999999999").decode()}, "cursor: not a"),
        ({"key": "SAP\x00"}, "key: contains a control character"),
    ],
)
async def test_bad_parameters_are_422_naming_them(
    bridge: Bridge, params: dict[str, str], says: str
) -> None:
    async with bridge.admin() as admin:
        response = await admin.get("/config/audit", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(says)


async def test_only_the_admin_key_reads_the_trail(bridge: Bridge) -> None:
    async with bridge.client(API_KEY) as hmis, bridge.client(None) as anonymous:
        answers = [await c.get("/config/audit") for c in (hmis, anonymous)]
    assert [a.status_code for a in answers] == [403, 401]
