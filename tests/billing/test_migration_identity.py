"""Migration 0007: bills recorded before it keep working, and its damage is brought to light."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.shell.migrate import upgrade


def legacy(bill_id: str, reference: str, document: str | None, minutes: int) -> dict:
    at = datetime(2026, 11, 30, tzinfo=UTC) + timedelta(minutes=minutes)
    return {
        "bill_id": bill_id,
        "reference": reference,
        "bill_date": "2026-11-30",
        "currency": "LKR",
        "net_total": 100,
        "fingerprint": "f",
        "payload": "{}",
        "status": "posted" if document else "queued",
        "company_code": "1000",
        "document_reference_id": reference[:16],
        "sap_document_number": document,
        "fiscal_year": "2026" if document else None,
        "attempts": 1,
        "maybe_posted": False,
        "cancel_requested": False,
        "created_at": at,
        "updated_at": at,
    }


async def test_shared_references_are_registered_once_and_shared_documents_need_review(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/legacy.db"
    await upgrade(url, "0006")
    engine = create_async_engine(url)
    rows = [
        legacy("B-1", "HMIS-SHARED", "0100000001", 0),
        legacy("B-2", "HMIS-SHARED", "0100000001", 1),  # credited with B-1's document
        legacy("B-3", "HMIS-OTHER", None, 2),
    ]
    columns = ", ".join(rows[0])
    values = ", ".join(f":{c}" for c in rows[0])
    async with engine.begin() as conn:
        await conn.execute(text(f"INSERT INTO bills ({columns}) VALUES ({values})"), rows)
    await engine.dispose()
    await upgrade(url)
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        registered = (
            await conn.execute(
                text("SELECT reference_id, bill_id FROM posting_references ORDER BY 1")
            )
        ).all()
        bills = {
            r.bill_id: r
            for r in await conn.execute(
                text("SELECT bill_id, status, sap_document_number, last_error FROM bills")
            )
        }
    await engine.dispose()
    assert registered == [("HMIS-OTHER", "B-3"), ("HMIS-SHARED", "B-1")]
    assert bills["B-1"].status == "posted" and bills["B-1"].sap_document_number == "0100000001"
    assert bills["B-2"].status == "needs_review" and bills["B-2"].sap_document_number is None
    assert "held by bill B-1" in bills["B-2"].last_error
    assert bills["B-3"].status == "queued"
