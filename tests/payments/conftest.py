"""Helpers of the payment tests: a bridge with webhook credentials, signed deliveries, counts."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine
from standardwebhooks.webhooks import Webhook

from app.payments.models import Payment, PaymentEvent
from tests.support.bridge import RULES, Bridge, bill, make_settings, run_bridge, seed, sim_config

SECRET = "whsec_" + base64.b64encode(b"payments-test-secret-0123456789ab").decode()
USER, PASSWORD = "event-mesh", "mesh-password-0123"
WEBHOOK = "/webhooks/sap/payment"


def webhook_config(sim_url: str, **overrides: str) -> dict[str, str]:
    values = {
        "Webhook Secret": SECRET,
        "Webhook Username": USER,
        "Webhook Password": PASSWORD,
        **overrides,
    }
    return sim_config(sim_url, **values)


@contextlib.contextmanager
def webhook_bridge(db_url: str, sim: httpx.Client) -> Iterator[Bridge]:
    """The bridge on loopback against the simulator, with webhook secret and Basic user."""
    settings = make_settings(db_url)
    seed(settings, webhook_config(str(sim.base_url).rstrip("/")), RULES)
    with run_bridge(settings) as running:
        yield running


@pytest.fixture
def bridge(db_url: str, sim: httpx.Client) -> Iterator[Bridge]:
    """The payment tests' bridge: it takes webhooks (`webhook_bridge`)."""
    with webhook_bridge(db_url, sim) as running:
        yield running


def signed(
    body: dict[str, Any] | bytes,
    *,
    webhook_id: str | None = None,
    when: datetime | None = None,
    secret: str = SECRET,
) -> tuple[bytes, dict[str, str]]:
    """Body bytes and Standard Webhooks headers, signed by the reference implementation."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    when = when or datetime.now(UTC)
    signature = Webhook(secret).sign(webhook_id, when, raw.decode())
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return raw, headers


def basic() -> dict[str, str]:
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}", "content-type": "application/json"}


def payment(
    reference: str,
    payment_document: str,
    amount: str = "15000.00",
    sap_document: str | None = None,
    currency: str = "LKR",
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "paymentDocument": payment_document,
        "hmsBillReference": reference,
        "amount": amount,
        "currency": currency,
        "postingDate": "2024-03-20",
        **extra,
    }
    if sap_document:
        body["sapDocumentNumber"] = sap_document
    return body


def cloud_event(data: dict[str, Any], event_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "type": "sap.s4.beh.journalentry.v1.JournalEntry.Created.v1",
        "source": "/default/sap.s4.beh/244572008",
        "id": event_id or str(uuid.uuid4()),
        "time": "2024-03-20T10:00:00Z",
        "datacontenttype": "application/json",
        "data": data,
        **extra,
    }


async def post(client: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await client.post(WEBHOOK, content=body, headers=headers)


async def push_bill(bridge: Bridge, bill_id: str, reference: str, **overrides: Any) -> dict:
    async with bridge.client() as client:
        response = await client.post(f"/bills/{bill_id}/push", json=bill(reference, **overrides))
    assert response.status_code == 201, response.text
    return response.json()


async def get_bill(bridge: Bridge, bill_id: str) -> dict[str, Any]:
    async with bridge.client() as client:
        response = await client.get(f"/bills/{bill_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def counts(db_url: str) -> tuple[int, int]:
    """(inbox rows, payment rows) straight from the database."""
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            events = await conn.scalar(select(func.count()).select_from(PaymentEvent))
            payments = await conn.scalar(select(func.count()).select_from(Payment))
    finally:
        await engine.dispose()
    return int(events or 0), int(payments or 0)


async def payment_rows(db_url: str) -> list[dict[str, Any]]:
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(Payment).order_by(Payment.id))).mappings().all()
    finally:
        await engine.dispose()
    return [dict(r) for r in rows]


def clear(sim: httpx.Client, document: dict[str, Any], amount: str | None = None) -> dict:
    """Post an incoming payment in SAP for a pushed bill (no notification)."""
    body = {
        "company_code": document["company_code"],
        "fiscal_year": document["fiscal_year"],
        "accounting_document": document["sap_document_number"],
        "clearing_date": "2024-03-20",  # the payment() webhook body's postingDate
    }
    if amount is not None:
        body["amount"] = amount
    response = sim.post("/sim/clear", json=body)
    response.raise_for_status()
    return response.json()


async def eventually(check: Any, attempts: int = 200) -> Any:
    """Poll an async check until it returns a truthy value (counts, not timings)."""
    for _ in range(attempts):
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")
