"""`GET /bills` for operators (newest first, keyset cursor, search, bill-date range) and what
`GET /bills/{bill_id}` shows of a bill's delivery: the entry as sent, attempts, SAP's answer."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import create_async_engine

from app.billing import repository, service
from app.billing.models import Bill, PostingReference
from app.payments.billing_link import PaymentsOfBills
from app.platform import currency
from app.platform.db import make_session_factory
from tests.billing.test_faults import wait_for_status
from tests.support.bridge import ADMIN_KEY, Bridge, bill


def ledger(sim: httpx.Client) -> list[dict]:
    return sim.get("/sim/ledger").json()["documents"]


async def sql(url: str, statement: Any) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(statement)
    await engine.dispose()


async def pages(client: httpx.AsyncClient, **params: Any) -> list[list[dict]]:
    """Every page of a listing, following `next_cursor`."""
    found, cursor = [], None
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        response = await client.get("/bills", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        found.append(body["items"])
        cursor = body.get("next_cursor")
        if cursor is None:
            return found


def ids(rows: list[dict]) -> list[str]:
    return [row["bill_id"] for row in rows]


async def test_newest_first_and_pages_never_shift_when_bills_arrive(
    bridge: Bridge, sim: httpx.Client
) -> None:
    async with bridge.client() as client:
        for n in range(5):
            assert (await client.post(f"/bills/B-{n}/push", json=bill(f"R-{n}"))).status_code == 201
        first = (await client.get("/bills", params={"limit": 2})).json()
        # bills arriving between pages land before the first page, never in the ones to come
        for n in (5, 6):
            assert (await client.post(f"/bills/B-{n}/push", json=bill(f"R-{n}"))).status_code == 201
        second = (
            await client.get("/bills", params={"limit": 2, "cursor": first["next_cursor"]})
        ).json()
        third = (
            await client.get("/bills", params={"limit": 2, "cursor": second["next_cursor"]})
        ).json()
        everything = await pages(client, limit=200)
    assert ids(first["items"]) == ["B-4", "B-3"]
    assert ids(second["items"]) == ["B-2", "B-1"]
    assert ids(third["items"]) == ["B-0"] and "next_cursor" not in third
    assert [ids(p) for p in everything] == [[f"B-{n}" for n in range(6, -1, -1)]]
    row = first["items"][0]
    [doc] = [d for d in ledger(sim) if d["reference1"] == "R-4"]
    assert row["sap_document_number"] == doc["number"]
    assert (row["company_code"], row["fiscal_year"]) == ("1000", doc["fiscal_year"])
    assert row["record_status"] == "posted" and row["attempts"] == 1
    assert (row["net_total"], row["currency"], row["bill_date"]) == (
        "15000.00",
        "LKR",
        "2024-03-15",
    )
    assert row["reference"] == "R-4"
    created = datetime.fromisoformat(row["created_at"])
    assert created <= datetime.fromisoformat(row["updated_at"]) <= datetime.now(UTC)
    assert "entry" not in row and "payload" not in row  # a list row stays small


async def test_ties_in_recorded_time_page_by_bill_id(bridge: Bridge, sim: httpx.Client) -> None:
    async with bridge.client() as client:
        for n in range(5):
            await client.post(f"/bills/T-{n}/push", json=bill(f"T-{n}"))
    same = datetime(2024, 3, 15, 10, 0, tzinfo=UTC)
    await sql(
        bridge.settings.database_url,
        update(Bill).where(Bill.bill_id.in_(["T-1", "T-2", "T-3"])).values(created_at=same),
    )
    async with bridge.client() as client:
        walked = await pages(client, limit=1)
    assert [ids(p) for p in walked] == [["T-4"], ["T-0"], ["T-3"], ["T-2"], ["T-1"]]


async def test_status_search_and_bill_date_filters(bridge: Bridge, sim: httpx.Client) -> None:
    async with bridge.client() as client, bridge.admin() as admin:
        early = await client.post("/bills/D-10/push", json=bill("R-10", bill_date="2024-03-10"))
        mid = await client.post("/bills/D-15/push", json=bill("R-15", bill_date="2024-03-15"))
        late = await client.post("/bills/D-20/push", json=bill("R-20", bill_date="2024-03-20"))
        shared = await client.post("/bills/D-21/push", json=bill("R-15", bill_date="2024-03-20"))
        assert {r.status_code for r in (early, mid, late, shared)} == {201}
        cancelled = (await client.post("/bills/D-20/cancel")).json()
        assert cancelled["status"] == "reversed"

        async def listed(**params: str) -> list[str]:
            response = await admin.get("/bills", params=params)  # the admin key reads too
            assert response.status_code == 200, response.text
            return ids(response.json()["items"])

        number = mid.json()["sap_document_number"]
        assert await listed(q="D-15") == ["D-15"]
        assert await listed(q="R-15") == ["D-21", "D-15"]
        assert await listed(q=mid.json()["document_reference_id"].lower()) == ["D-15"]
        assert await listed(q=number) == ["D-15"]
        assert await listed(q=number.lstrip("0")) == ["D-15"]
        assert await listed(q=cancelled["reversal_document_number"]) == ["D-20"]
        assert await listed(q=cancelled["reversal_reference_id"]) == ["D-20"]
        assert await listed(q="  D-15 ") == ["D-15"]
        assert await listed(q="D-1") == []  # exact, not a prefix
        assert await listed(q="") == ["D-21", "D-20", "D-15", "D-10"]
        assert await listed(status="reversed") == ["D-20"]
        assert await listed(status="posted", q="R-15") == ["D-21", "D-15"]
        assert await listed(**{"from": "2024-03-15"}) == ["D-21", "D-20", "D-15"]
        assert await listed(to="2024-03-15") == ["D-15", "D-10"]
        assert await listed(**{"from": "2024-03-11", "to": "2024-03-15"}) == ["D-15"]
        assert await listed(**{"from": "2024-03-20", "to": "2024-03-20"}) == ["D-21", "D-20"]
        assert await listed(**{"from": "2024-03-21"}) == []


async def test_an_identity_replaced_by_a_retry_still_finds_the_bill(
    bridge: Bridge, sim: httpx.Client
) -> None:
    async with bridge.client() as client:
        await client.post("/bills/I-1/push", json=bill("R-I"))
    await sql(
        bridge.settings.database_url,
        PostingReference.__table__.insert().values(
            reference_id="HBOLDIDENTITY001",
            company_code="1000",
            bill_id="I-1",
            kind="posting",
            created_at=datetime.now(UTC),
        ),
    )
    async with bridge.client() as client:
        found = (await client.get("/bills", params={"q": "hboldidentity001"})).json()
    assert ids(found["items"]) == ["I-1"]


@pytest.mark.parametrize(
    ("params", "named", "says"),
    [
        ({"status": "lost"}, "status", "Input should be"),
        ({"limit": "0"}, "limit", "greater than or equal to 1"),
        ({"limit": "201"}, "limit", "less than or equal to 200"),
        ({"from": "2024-3-1"}, "from", "YYYY-MM-DD"),
        ({"to": "15.03.2024"}, "to", "YYYY-MM-DD"),
        ({"from": "2024-03-20", "to": "2024-03-15"}, "from", "is after to"),
        ({"cursor": "%%%"}, "cursor", "not a cursor"),
        # a cursor of the list as it was (base64 of a bill id, in id order)
        ({"cursor": base64.urlsafe_b64encode(b"B-1").decode().rstrip("=")}, "cursor", "not a"),
        ({"cursor": base64.urlsafe_b64encode(b"2024-03-15T10:00:00|B-1").decode()}, "cursor", ""),
        ({"q": "B\x01"}, "q", "control character"),
        ({"q": "x" * 65}, "q", "at most 64"),
    ],
)
async def test_bad_parameters_are_422_naming_them(
    bridge: Bridge, params: dict[str, str], named: str, says: str
) -> None:
    async with bridge.client() as client:
        response = await client.get("/bills", params=params)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith(f"{named}:") and says in detail, detail


async def test_a_row_s_last_error_is_short_the_record_s_whole(
    bridge: Bridge, sim: httpx.Client
) -> None:
    sim.put("/sim/faults", json={"down": True}).raise_for_status()
    reason = "SAP holds document 0100000042 " + "with other lines " * 40
    async with bridge.client() as client:
        assert (await client.post("/bills/E-1/push", json=bill("R-E"))).status_code == 202
        await client.post("/bills/E-1/cancel")
        sim.put("/sim/faults", json={"down": False}).raise_for_status()
        await wait_for_status(client, "E-1", "withdrawn")  # nothing writes to it any more
        await sql(
            bridge.settings.database_url,
            update(Bill).where(Bill.bill_id == "E-1").values(last_error=reason),
        )
        [row] = (await client.get("/bills", params={"q": "E-1"})).json()["items"]
        record = (await client.get("/bills/E-1")).json()
    assert len(row["last_error"]) == service.SHORT_ERROR and row["last_error"].endswith("…")
    assert reason.startswith(row["last_error"][:-1])
    assert record["last_error"] == reason


async def test_the_record_shows_the_lines_sent_and_the_delivery(
    bridge: Bridge, sim: httpx.Client
) -> None:
    async with bridge.client() as client:
        pushed = (await client.post("/bills/S-1/push", json=bill("R-S"))).json()
        record = (await client.get("/bills/S-1")).json()
    [doc] = ledger(sim)
    entry = record["entry"]
    assert entry["document_reference_id"] == pushed["document_reference_id"] == doc["reference_id"]
    assert entry["company_code"] == "1000" and entry["posting_date"] == "2024-03-15"
    sent = {
        (line["account"], line["profit_center"]): (
            Decimal(line["amount"]) if line["debit_credit"] == "S" else -Decimal(line["amount"])
        )
        for line in entry["lines"]
    }
    in_sap = {
        (line["gl_account"], line["profit_center"] or None): Decimal(line["amount"])
        for line in doc["lines"]
    }
    assert sent == in_sap
    assert sum(sent.values()) == 0 and sent[("12100000", None)] == Decimal("15000.00")
    assert record["attempts"] == 1 and record["maybe_posted"] is False
    assert record["read_backs"] == 0 and record["cancel_requested"] is False
    assert "next_attempt_at" not in record
    recorded = datetime.fromisoformat(record["created_at"])
    sent_at = datetime.fromisoformat(record["last_sent_at"])
    posted_at = datetime.fromisoformat(record["posted_at"])
    assert recorded <= sent_at <= posted_at <= datetime.fromisoformat(record["updated_at"])
    assert record["payments"] == [] and record["outstanding_amount"] == "15000.00"
    assert record["sap_document_number"] == doc["number"]


async def test_a_rejected_bill_shows_what_sap_answered(bridge: Bridge, sim: httpx.Client) -> None:
    async with bridge.admin() as admin, bridge.client() as client:
        await admin.put("/config/SAP Integration - AR Account", json={"value": "12000000"})
        rejected = await client.post("/bills/X-1/push", json=bill("R-X"))
        record = (await client.get("/bills/X-1")).json()
    assert rejected.status_code == 502
    assert record["record_status"] == "rejected" and record["messages"]
    assert record["messages"] == rejected.json()["messages"]
    assert all(m["note"] for m in record["messages"])
    assert record["last_error"]
    assert "12000000" in {line["account"] for line in record["entry"]["lines"]}


async def test_a_bill_whose_entry_is_not_built_yet_has_none(
    bridge: Bridge, sim: httpx.Client
) -> None:
    async with bridge.admin() as admin, bridge.client() as client:
        await admin.put("/config/SAP Integration - Revenue Account", json={"value": None})
        queued = await client.post("/bills/Q-1/push", json=bill("R-Q"))
        record = (await client.get("/bills/Q-1")).json()
        listed = (await client.get("/bills", params={"status": "queued"})).json()
    assert queued.status_code == 202
    assert "entry" not in record and "incomplete" in record["last_error"]
    assert ids(listed["items"]) == ["Q-1"]


async def test_either_key_reads_the_list_but_none_does_not(bridge: Bridge) -> None:
    async with (
        bridge.client() as hmis,
        bridge.client(ADMIN_KEY) as admin,
        bridge.client(None) as anon,
    ):
        answers = [await c.get("/bills", params={"status": "queued"}) for c in (hmis, admin, anon)]
    assert [a.status_code for a in answers] == [200, 200, 401]


# --- the keyset and the amounts as properties, on the service itself ---------------------

_TIMES = [datetime(2024, 3, 15, 10, 0, tzinfo=UTC) + timedelta(microseconds=n) for n in range(3)]
_CURRENCIES = ["LKR", "JPY", "KWD"]


def _row(number: int, created: datetime, total: Decimal, code: str) -> Bill:
    return Bill(
        bill_id=f"P-{number:03d}",
        reference=f"R-{number}",
        bill_date=date(2024, 3, 1) + timedelta(days=number % 20),
        currency=code,
        net_total=total,
        fingerprint="f" * 64,
        payload={},
        status="posted" if number % 2 else "queued",
        company_code="1000",
        document_reference_id=f"HB{number:014d}",
        attempts=1,
        maybe_posted=False,
        cancel_requested=False,
        read_backs=0,
        created_at=created,
        updated_at=created,
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(_TIMES),
            st.integers(min_value=1, max_value=10**15),
            st.sampled_from(_CURRENCIES),
        ),
        max_size=12,
    ),
    limit=st.integers(min_value=1, max_value=5),
    status=st.sampled_from([None, "posted", "queued"]),
)
def test_pages_together_are_the_filtered_bills_newest_first(
    db_url: str, rows: list[tuple[datetime, int, str]], limit: int, status: str | None
) -> None:
    bills = []
    for number, (created, minor, code) in enumerate(rows):
        total = Decimal(minor).scaleb(-currency.minor_units(code))
        bills.append(_row(number, created, total, code))

    async def walk() -> list[Any]:
        engine = create_async_engine(db_url)
        sessions = make_session_factory(engine)
        linked = SimpleNamespace(bill_payments=PaymentsOfBills())  # all list_bills reads of it
        try:
            async with sessions() as session, session.begin():
                await session.execute(delete(Bill))
                session.add_all(bills)
            seen, cursor = [], None
            while True:
                async with sessions() as session:
                    page = await service.list_bills(
                        linked, session, repository.BillQuery(status=status), cursor, limit
                    )
                assert len(page.items) <= limit
                seen.extend(page.items)
                if page.next_cursor is None:
                    return seen
                assert len(page.items) == limit
                cursor = page.next_cursor
        finally:
            await engine.dispose()

    seen = asyncio.run(walk())
    expected = sorted(
        (b for b in bills if status is None or b.status == status),
        key=lambda b: (b.created_at, b.bill_id),
        reverse=True,
    )
    assert [v.bill_id for v in seen] == [b.bill_id for b in expected]
    for view, row in zip(seen, expected, strict=True):
        assert view.currency == row.currency
        assert Decimal(view.net_total or "") == row.net_total  # exactly, as stored
        decimals = currency.minor_units(row.currency)
        assert view.net_total == f"{row.net_total:.{decimals}f}"
        assert view.created_at == row.created_at and view.bill_date == row.bill_date
