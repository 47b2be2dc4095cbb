"""Pushing payments out of the simulator, as SAP Event Mesh and an Integration Suite iFlow do.

* ``business_event`` subscriptions get ``sap.s4.beh.journalentry.v1.JournalEntry.Created.v1``
  CloudEvents carrying only ``CompanyCode``/``FiscalYear``/``AccountingDocument`` (README 5),
  with the subscription's HTTP Basic credentials, redelivered until a 2xx (QoS 1).
* ``payment_webhook`` subscriptions get the webhook payment object, signed the
  Standard Webhooks way (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).

``POST /sim/events/clear`` posts an incoming payment (as ``/sim/clear``) and then pushes it to
every subscription; ``POST /sim/events/publish`` pushes ``JournalEntry.Created.v1`` for any
existing document. ``times`` repeats each delivery (at-least-once senders duplicate).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

import httpx
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from sapsim.ledger import Document, LedgerError
from sapsim.state import SimState, StateDep

router = APIRouter(prefix="/sim/events", tags=["Simulator control: events"])
JOURNAL_ENTRY_CREATED = "sap.s4.beh.journalentry.v1.JournalEntry.Created.v1"


class Subscription(BaseModel):
    """A push target: Event Mesh webhook (``business_event``) or a signing iFlow."""

    url: str
    kind: Literal["business_event", "payment_webhook"] = "business_event"
    username: str | None = None
    password: str | None = None
    secret: str | None = Field(None, description="whsec_… for payment_webhook")
    envelope: bool = Field(False, description="payment_webhook: wrap in a CloudEvent")
    max_attempts: int = Field(3, ge=1, le=10)
    retry_delay_ms: int = Field(200, ge=0, le=60_000)


class ClearAndPush(BaseModel):
    company_code: str
    fiscal_year: str
    accounting_document: str
    amount: Decimal | None = None
    clearing_date: date | None = None
    hms_bill_reference: str | None = Field(None, description="Default: the invoice's reference")
    times: int = Field(1, ge=1, le=10)


class Publish(BaseModel):
    company_code: str
    fiscal_year: str
    accounting_document: str
    times: int = Field(1, ge=1, le=10)


@dataclass
class EventsState:
    """Subscriptions and every delivery attempt (``state.extra["events"]``)."""

    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        self.subscriptions.clear()
        self.deliveries.clear()


def events_state(state: SimState) -> EventsState:
    found: EventsState = state.extra.setdefault("events", EventsState())
    return found


@router.put("/subscriptions/{name}")
async def put_subscription(name: str, subscription: Subscription, state: StateDep) -> Subscription:
    events_state(state).subscriptions[name] = subscription
    return subscription


@router.delete("/subscriptions/{name}")
async def delete_subscription(name: str, state: StateDep) -> dict[str, str]:
    events_state(state).subscriptions.pop(name, None)
    return {"status": "deleted"}


@router.get("/subscriptions")
async def get_subscriptions(state: StateDep) -> dict[str, Any]:
    events = events_state(state)
    return {
        "subscriptions": {
            k: v.model_dump(exclude={"password", "secret"}) for k, v in events.subscriptions.items()
        },
        "deliveries": events.deliveries[-500:],
    }


@router.post("/clear")
async def clear_and_push(request: ClearAndPush, state: StateDep) -> dict[str, Any]:
    """Post an incoming payment for the invoice, then push it to every subscription."""
    async with state.lock:
        try:
            result = state.ledger.clear(
                request.company_code,
                request.fiscal_year,
                request.accounting_document,
                request.amount,
                request.clearing_date,
            )
            invoice = state.ledger.get(
                request.company_code, request.fiscal_year, request.accounting_document
            )
        except LedgerError as exc:
            raise HTTPException(exc.status, exc.detail) from exc
    reference = request.hms_bill_reference or invoice.reference1 or invoice.reference_id
    payment = _payment_object(invoice, result, reference)
    keys = (result["company_code"], result["fiscal_year"], result["payment_document"])
    deliveries = await _push_all(state, keys, payment, request.times)
    return {**result, "hms_bill_reference": reference, "deliveries": deliveries}


@router.post("/publish")
async def publish(request: Publish, state: StateDep) -> dict[str, Any]:
    """Push ``JournalEntry.Created.v1`` for an existing document to business-event targets."""
    try:
        document = state.ledger.get(
            request.company_code, request.fiscal_year, request.accounting_document
        )
    except LedgerError as exc:
        raise HTTPException(exc.status, exc.detail) from exc
    keys = (document.company_code, document.fiscal_year, document.number)
    return {"deliveries": await _push_all(state, keys, None, request.times)}


def _payment_object(invoice: Document, result: dict[str, Any], reference: str) -> dict[str, Any]:
    return {
        "sapDocumentNumber": invoice.number,
        "paymentDocument": result["payment_document"],
        "hmsBillReference": reference,
        "amount": result["amount"],
        "currency": result["currency"],
        "postingDate": result["clearing_date"],
        "note": "simulated incoming payment",
    }


def cloud_event(system_id: str, keys: tuple[str, str, str]) -> dict[str, Any]:
    """A ``JournalEntry.Created.v1`` business event as S/4HANA Cloud emits it."""
    company, year, document = keys
    return {
        "type": JOURNAL_ENTRY_CREATED,
        "specversion": "1.0",
        "source": f"/default/sap.s4.beh/{system_id}",
        "id": str(uuid.uuid4()),
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "datacontenttype": "application/json",
        "data": {"CompanyCode": company, "FiscalYear": year, "AccountingDocument": document},
    }


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks ``v1`` signature: HMAC-SHA256 over ``id.timestamp.body``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(digest.digest()).decode()


def _request(
    subscription: Subscription,
    system_id: str,
    keys: tuple[str, str, str],
    payment: dict[str, Any] | None,
) -> tuple[bytes, dict[str, str]] | None:
    headers = {"Content-Type": "application/json"}
    if subscription.username and subscription.password:
        token = f"{subscription.username}:{subscription.password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
    if subscription.kind == "business_event":
        return json.dumps(cloud_event(system_id, keys)).encode(), headers
    if payment is None:
        return None
    document: dict[str, Any] = payment
    if subscription.envelope:
        event = cloud_event(system_id, keys)
        document = {**event, "type": "com.example.hmis.payment.v1", "data": payment}
    body = json.dumps(document).encode()
    if subscription.secret:
        webhook_id, stamp = f"msg_{uuid.uuid4().hex}", int(time.time())
        headers |= {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(subscription.secret, webhook_id, stamp, body),
        }
    return body, headers


async def _push_all(
    state: SimState, keys: tuple[str, str, str], payment: dict[str, Any] | None, times: int
) -> list[dict[str, Any]]:
    events = events_state(state)
    results = []
    async with httpx.AsyncClient(timeout=30) as client:
        for name, subscription in list(events.subscriptions.items()):
            built = _request(subscription, state.config.system_id, keys, payment)
            if built is None:
                continue
            for _ in range(times):  # the same message again: same ids, same signature
                result = await _deliver(client, subscription, *built)
                result |= {"subscription": name, "document": "/".join(keys)}
                events.deliveries.append(result)
                results.append(result)
    return results


async def _deliver(
    client: httpx.AsyncClient, subscription: Subscription, body: bytes, headers: dict[str, str]
) -> dict[str, Any]:
    """QoS 1: send until a 2xx or ``max_attempts``."""
    status, answer, attempts = 0, "", 0
    while attempts < subscription.max_attempts:
        attempts += 1
        try:
            response = await client.post(subscription.url, content=body, headers=headers)
            status, answer = response.status_code, response.text[:500]
        except httpx.HTTPError as exc:
            status, answer = 0, f"{type(exc).__name__}: {exc}"
        if 200 <= status < 300:
            break
        await asyncio.sleep(subscription.retry_delay_ms / 1000)
    return {"status_code": status, "attempts": attempts, "answer": answer}
