"""Each delivery attempt is kept: GET /bills/{bill_id} and the console's bill page list them."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from app.billing import delivery
from app.billing import repository as bills
from app.billing import service as billing
from app.billing.models import Bill
from app.billing.schemas import ATTEMPT_HISTORY_SHOWN, BillIn
from app.platform import logging as applog
from app.platform.db import utcnow
from app.shell.migrate import alembic_config, upgrade
from tests.billing.test_faults import wait_for_status
from tests.support import database
from tests.support.bridge import (
    ADMIN_KEY,
    RULES,
    Bridge,
    bill,
    make_settings,
    replica,
    seed_config,
    sim_config,
)

WRONG_AR_ACCOUNT = "12000000"  # the simulator's chart of accounts has no such account


def documents(sim: httpx.Client) -> list[dict]:
    return sim.get("/sim/ledger").json()["documents"]


async def history(client: httpx.AsyncClient, bill_id: str) -> tuple[dict, list[dict]]:
    record = (await client.get(f"/bills/{bill_id}")).json()
    return record, record["attempt_history"]


def outcomes(attempts: list[dict]) -> list[tuple[str, str]]:
    return [(a["kind"], a["outcome"]) for a in attempts]


def assert_newest_first(attempts: list[dict]) -> None:
    recorded = [a["recorded_at"] for a in attempts]
    assert recorded == sorted(recorded, reverse=True), recorded


class _Tables(HTMLParser):
    """Each table of a page by its caption: its header cells and its rows' cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, dict[str, Any]] = {}
        self._table: dict[str, Any] | None = None
        self._text: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "li") and self._text is not None:
            self._text.append(" ")
        elif tag == "table":
            self._table = {"caption": "", "headers": [], "rows": []}
        elif self._table is not None and tag in ("caption", "th", "td"):
            self._text = []
            if tag == "th":
                self._table["scopes"] = [*self._table.get("scopes", []), dict(attrs).get("scope")]
        elif self._table is not None and tag == "tr":
            self._row = []

    def handle_endtag(self, tag: str) -> None:
        if self._table is None:
            return
        text = " ".join("".join(self._text or []).split())
        if tag == "caption":
            self._table["caption"] = text
        elif tag == "th":
            self._table["headers"].append(text)
        elif tag == "td" and self._row is not None:
            self._row.append(text)
        elif tag == "tr" and self._row:
            self._table["rows"].append(self._row)
            self._row = None
        elif tag == "table":
            self.tables[self._table["caption"]] = self._table
            self._table = None
        if tag in ("caption", "th", "td"):
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


async def console_tables(bridge: Bridge, bill_id: str) -> dict[str, dict[str, Any]]:
    """The console's page of the bill, signed in with the admin key, as its tables."""
    async with httpx.AsyncClient(base_url=bridge.url, timeout=30) as client:
        form = (await client.get("/console/sign-in")).text
        token = re.search(r'name="sign_in_token" value="([^"]+)"', form)
        assert token
        signed = await client.post(
            "/console/sign-in",
            data={"admin_key": ADMIN_KEY, "sign_in_token": token.group(1), "next": "/console"},
        )
        assert signed.status_code == 303, signed.text
        page = await client.get(f"/console/bills/{bill_id}")
    assert page.status_code == 200, page.text
    parser = _Tables()
    parser.feed(page.text)
    return parser.tables


async def test_a_rejection_then_a_retry_that_posts_are_both_kept(
    bridge: Bridge, sim: httpx.Client
) -> None:
    async with bridge.admin() as admin, bridge.client() as client:
        await admin.put("/config/SAP Integration - AR Account", json={"value": WRONG_AR_ACCOUNT})
        rejected = await client.post("/bills/B-1/push", json=bill())
        assert rejected.status_code == 502, rejected.text
        _, after_rejection = await history(client, "B-1")
        await admin.put("/config/SAP Integration - AR Account", json={"value": "12100000"})
        assert (await admin.post("/bills/B-1/retry")).status_code == 201
        record, attempts = await history(client, "B-1")
    rejection = rejected.json()
    assert rejection["messages"], "the simulator names why it rejected the entry"
    assert outcomes(after_rejection) == [("posting", "rejected")]
    assert outcomes(attempts) == [("posting", "posted"), ("posting", "rejected")]
    posted, refused = attempts
    assert refused == after_rejection[0]  # a later attempt never rewrites an earlier one
    assert refused["messages"] == rejection["messages"]
    assert refused["error"] == rejection["last_error"] == rejection["detail"]
    assert "sap_document_number" not in refused
    [doc] = documents(sim)
    assert posted["sap_document_number"] == record["sap_document_number"] == doc["number"]
    assert "error" not in posted and posted["messages"] == record["messages"]
    assert posted["sent_at"] == record["last_sent_at"]
    assert refused["sent_at"] < posted["sent_at"] <= posted["recorded_at"]
    assert_newest_first(attempts)
    assert len(attempts) == record["attempts"] == 2

    table = (await console_tables(bridge, "B-1"))["Attempts"]
    assert table["headers"] == ["Sent", "Kind", "Outcome", "SAP's messages", "Error"]
    assert set(table["scopes"]) == {"col"}
    newest, oldest = table["rows"]
    assert newest[1:3] == ["posting", f"posted SAP document {doc['number']}"]
    assert oldest[1:3] == ["posting", "rejected"]
    message = rejection["messages"][0]
    assert (
        f"{message['type_id']} (severity {message['severity']}): {message['note']}" in (oldest[3])
    )
    assert oldest[4] == rejection["last_error"]


async def test_a_cancel_adds_the_reversal_attempt(bridge: Bridge, sim: httpx.Client) -> None:
    async with bridge.client() as client:
        assert (await client.post("/bills/B-1/push", json=bill())).status_code == 201
        cancel = await client.post("/bills/B-1/cancel")
        assert cancel.status_code == 200 and cancel.json()["status"] == "reversed", cancel.text
        record, attempts = await history(client, "B-1")
    assert outcomes(attempts) == [("reversal", "posted"), ("posting", "posted")]
    reversal, posting = attempts
    original, mirrored = documents(sim)
    assert posting["sap_document_number"] == record["sap_document_number"] == original["number"]
    assert reversal["sap_document_number"] == record["reversal_document_number"]
    assert reversal["sap_document_number"] == mirrored["number"]
    assert reversal["sent_at"] > posting["sent_at"]
    assert_newest_first(attempts)
    rows = (await console_tables(bridge, "B-1"))["Attempts"]["rows"]
    assert [row[1] for row in rows] == ["reversal", "posting"]


async def test_a_lost_answer_and_the_read_back_that_finds_the_posting(
    bridge: Bridge, sim: httpx.Client
) -> None:
    """SAP posts but answers after the bridge gave up (1 s): the first attempt is ambiguous,
    the outbox's read-back finds the document without sending again; both are kept."""
    async with bridge.admin() as admin:
        await admin.put("/config/SAP Integration - Timeout Seconds", json={"value": 1})
    sim.put("/sim/faults", json={"queue": [{"kind": "commit_then_slow", "delay_ms": 3000}]})
    async with bridge.client() as client:
        response = await client.post("/bills/B-1/push", json=bill())
        assert response.status_code == 202, response.text
        record = await wait_for_status(client, "B-1", "posted")
    attempts = record["attempt_history"]
    assert outcomes(attempts) == [("posting", "posted"), ("posting", "ambiguous")]
    found, lost = attempts
    [doc] = documents(sim)
    assert sim.get("/sim/stats").json()["soap_posts"] == 1
    assert "within 1s" in lost["error"] and lost["error"] == response.json()["last_error"]
    assert "sap_document_number" not in lost and lost["messages"] == []
    assert found["sap_document_number"] == doc["number"] == record["sap_document_number"]
    assert found["messages"] == [] and "error" not in found  # a read-back has no SAP log
    # the read-back sent nothing: it shows the send whose answer was lost
    assert found["sent_at"] == lost["sent_at"] == record["last_sent_at"]
    assert lost["recorded_at"] < found["recorded_at"]


async def test_an_attempt_that_lost_its_lease_adds_no_history(
    db_url: str, sim: httpx.Client
) -> None:
    """A's posting is still with SAP when B takes the bill over: A records nothing, not even
    history; B's read-back finds A's document and is the one attempt listed."""
    await seed_config(make_settings(db_url), sim_config(str(sim.base_url).rstrip("/")), RULES)
    async with replica(db_url) as a, replica(db_url) as b:
        sim.put("/sim/faults", json={"latency_ms": 400}).raise_for_status()
        config = await a.config.snapshot(a.sessions)
        posting = asyncio.create_task(billing.push(a, config, "B-1", BillIn.model_validate(bill())))
        await asyncio.sleep(0.2)
        async with b.engine.begin() as conn:  # B's claim after A's lease expired
            await conn.execute(
                update(Bill)
                .where(Bill.bill_id == "B-1")
                .values(lease_id="replica-b", locked_until=utcnow() + timedelta(seconds=30))
            )
        answer = await posting
        sim.put("/sim/faults", json={"latency_ms": 0}).raise_for_status()
        assert answer.status_code == 202  # A could not record its posting
        async with b.sessions() as session:
            assert await bills.attempts(session, "B-1", 10) == []
        final = await delivery.attempt(b, "B-1", "replica-b")
        assert final is not None and final.status == "posted"
        async with b.sessions() as session:
            view = await billing.get(b, session, "B-1")
    assert view.attempt_history is not None
    [only] = view.attempt_history
    assert (only.kind, only.outcome) == ("posting", "posted")
    assert only.sap_document_number == final.sap_document_number
    assert view.attempts == 2  # both attempts are counted; only the one that held it is kept
    assert sim.get("/sim/stats").json()["soap_posts"] == 1


async def test_the_view_shows_the_newest_attempts_only(db_url: str, sim: httpx.Client) -> None:
    await seed_config(make_settings(db_url), sim_config(str(sim.base_url).rstrip("/")), RULES)
    async with replica(db_url) as runtime:
        config = await runtime.config.snapshot(runtime.sessions)
        pushed = await billing.push(runtime, config, "B-1", BillIn.model_validate(bill()))
        assert pushed.status_code == 201
        extra = ATTEMPT_HISTORY_SHOWN + 10
        async with runtime.sessions() as session, session.begin():
            for n in range(extra):
                await bills.insert_attempt(
                    session,
                    {
                        "bill_id": "B-1",
                        "kind": "posting",
                        "outcome": "deferred",
                        "sent_at": None,
                        "recorded_at": utcnow(),
                        "sap_document_number": None,
                        "error": f"#{n}",
                        "sap_messages": None,
                    },
                )
            other = {"bill_id": "B-2", "kind": "posting", "outcome": "posted"}
            await bills.insert_attempt(session, other | {"recorded_at": utcnow()})
        async with runtime.sessions() as session:
            view = await billing.get(runtime, session, "B-1")
    assert view.attempt_history is not None
    shown = [a.error for a in view.attempt_history]
    assert shown == [f"#{n}" for n in reversed(range(10, extra))]


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new database of each kind, migrated to head, dropped afterwards (tests that break
    or reshape their schema)."""
    if request.param == "sqlite":
        yield asyncio.run(database.create_sqlite(str(tmp_path)))
        return
    request.getfixturevalue("postgresql_url")  # skipped, or a CI failure, without PostgreSQL
    url = asyncio.run(database.create_postgres())
    yield url
    asyncio.run(database.drop_postgres(url))


async def test_a_history_that_cannot_be_written_never_fails_delivery(
    fresh_url: str, sim: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    """The table is gone (a real failure of the database): bills still post, each outcome is
    recorded, and the failure is a warning naming the bill."""
    applog.configure("json")
    engine = create_async_engine(fresh_url)
    async with engine.begin() as conn:
        await conn.execute(sa.text("DROP TABLE bill_attempts"))
    await engine.dispose()
    await seed_config(make_settings(fresh_url), sim_config(str(sim.base_url).rstrip("/")), RULES)
    async with replica(fresh_url) as runtime:
        config = await runtime.config.snapshot(runtime.sessions)
        answers = [
            await billing.push(runtime, config, f"B-{n}", BillIn.model_validate(bill(f"R-{n}")))
            for n in (1, 2)  # the second on a pooled connection whose last statement failed
        ]
        async with runtime.sessions() as session:
            rows = [await bills.get(session, f"B-{n}") for n in (1, 2)]
    assert [a.status_code for a in answers] == [201, 201]
    assert [r.status if r else None for r in rows] == ["posted", "posted"]
    assert sorted(r.sap_document_number or "" for r in rows) == sorted(
        d["number"] for d in documents(sim)
    )
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line[:1] == "{"]
    failed = [e for e in events if e["event"] == "bill.attempt_history.failed"]
    assert [(e["bill_id"], e["outcome"], e["level"]) for e in failed] == [
        ("B-1", "posted", "warning"),
        ("B-2", "posted", "warning"),
    ]


async def _inspect(url: str) -> tuple[set[str], dict[str, list[str]]]:
    """The tables, and the indexes of bill_attempts, of the database at `url`."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:

            def read(sync_conn: Any) -> tuple[set[str], dict[str, list[str]]]:
                inspector = sa.inspect(sync_conn)
                tables = set(inspector.get_table_names())
                if "bill_attempts" not in tables:
                    return tables, {}
                indexes = inspector.get_indexes("bill_attempts")
                return tables, {i["name"] or "": list(i["column_names"]) for i in indexes}

            return await conn.run_sync(read)
    finally:
        await engine.dispose()


async def _downgrade(url: str, revision: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:

            def run(sync_conn: Any) -> None:
                config = alembic_config(url)
                config.attributes["connection"] = sync_conn
                command.downgrade(config, revision)

            await conn.run_sync(run)
    finally:
        await engine.dispose()


async def test_migration_0012_upgrades_and_downgrades(fresh_url: str) -> None:
    tables, indexes = await _inspect(fresh_url)
    assert "bill_attempts" in tables
    assert indexes == {"ix_bill_attempts_bill": ["bill_id", "id"]}
    await _downgrade(fresh_url, "0011")
    tables, _ = await _inspect(fresh_url)
    assert "bill_attempts" not in tables and "bills" in tables
    await upgrade(fresh_url)  # and up again: the code's model writes and reads it
    async with replica(fresh_url) as runtime, runtime.sessions() as session, session.begin():
        row = {"bill_id": "B-1", "kind": "reversal", "outcome": "rejected"}
        messages = [{"type_id": "702(F5)", "severity": 3, "note": "n"}]
        await bills.insert_attempt(
            session, row | {"recorded_at": utcnow(), "sap_messages": messages}
        )
    async with replica(fresh_url) as runtime, runtime.sessions() as session:
        [stored] = await bills.attempts(session, "B-1", 5)
    assert (stored.kind, stored.outcome, stored.sap_messages) == ("reversal", "rejected", messages)
    assert stored.recorded_at.tzinfo is not None and stored.sent_at is None
