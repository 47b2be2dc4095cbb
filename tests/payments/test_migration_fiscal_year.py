"""Migration 0008: payments recorded before the fiscal year joined the key keep their identity."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.payments.models import payment_key
from app.shell.migrate import upgrade

AT = datetime(2026, 11, 30, tzinfo=UTC)


def legacy_payment(document: str, year: str | None, posting: str | None, source: str) -> dict:
    return {
        "company_code": "1000",
        "payment_document": document,
        "payment_fiscal_year": year,
        "bill_reference": "HMIS-1",
        "bill_id": "B-1",
        "amount": 5000,
        "currency": "LKR",
        "posting_date": posting,
        "status": "confirmed",
        "reasons": "[]",
        "source": source,
        "created_at": AT,
        "updated_at": AT,
    }


def legacy_event(key: str, kind: str, body: str, year: str | None = None) -> dict:
    return {
        "kind": kind,
        "status": "done",
        "payment_key": key,
        "fiscal_year": year,
        "authenticated_by": "signature",
        "body": body,
        "attempts": 0,
        "received_at": AT,
    }


async def insert(conn, table: str, rows: list[dict]) -> None:
    columns = ", ".join(rows[0])
    values = ", ".join(f":{c}" for c in rows[0])
    await conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({values})"), rows)


async def test_old_payments_get_their_year_and_their_inbox_keys_the_new_form(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path}/legacy.db"
    await upgrade(url, "0007")
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await insert(
            conn,
            "payments",
            [
                legacy_payment("1400000001", None, "2024-03-20", "webhook"),
                legacy_payment("1400000002", "2025", "2025-01-04", "clearing_sync"),
            ],
        )
        await insert(
            conn,
            "payment_events",
            [
                legacy_event("1000/1400000001/HMIS-1", "payment", '{"postingDate": "2024-03-20"}'),
                legacy_event("1000/1400000002/HMIS-1", "clearing", "{}", "2025"),
                legacy_event(
                    "1000/1400000003/HMIS-1", "payment", '{"data": {"postingDate": "2023-05-01"}}'
                ),
            ],
        )
    await engine.dispose()
    await upgrade(url)
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        years = (
            await conn.execute(
                text("SELECT payment_document, payment_fiscal_year FROM payments ORDER BY 1")
            )
        ).all()
        keys = (await conn.execute(text("SELECT payment_key FROM payment_events ORDER BY 1"))).all()
    await engine.dispose()
    assert years == [("1400000001", "2024"), ("1400000002", "2025")]
    assert [k for (k,) in keys] == [
        payment_key("1000", "1400000001", "2024", "HMIS-1"),
        payment_key("1000", "1400000002", "2025", "HMIS-1"),
        payment_key("1000", "1400000003", "2023", "HMIS-1"),
    ]
