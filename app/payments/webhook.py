"""The payment webhook: store the verified call, record its payment or accept its business
event (resolved against SAP right after, `app.payments.clearing`), and answer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from app.config.service import BridgeConfig
from app.payments import clearing, repository, service
from app.payments.models import (
    BUSINESS_EVENT,
    CONFIRMED,
    DONE,
    MISMATCH,
    PAYMENT,
    PENDING,
    SOURCE_WEBHOOK,
    UNMATCHED,
)
from app.payments.runtime import PaymentsRuntime
from app.payments.schemas import IncomingEvent, WebhookAnswer, parse_event
from app.payments.security import WebhookCaller
from app.platform.db import transaction, utcnow
from app.platform.logging import get_logger

_log = get_logger("app.payments")


@dataclass(frozen=True)
class Reply:
    """The webhook's HTTP status and body."""

    status_code: int
    answer: WebhookAnswer


async def receive(
    runtime: PaymentsRuntime, config: BridgeConfig, caller: WebhookCaller, headers: dict[str, str]
) -> Reply:
    """Store a verified webhook call and answer as the webhook's OpenAPI entry documents."""
    incoming = parse_event(caller.body, headers)
    event = _event_values(caller, incoming)
    if incoming.payment is None:
        return await _accept_business_event(runtime, event)
    fact = service.fact_from_webhook(incoming.payment, config)
    outcome = await runtime.payment_inbox.submit(service.Recording(fact, SOURCE_WEBHOOK, event))
    _log.info(
        "payment.webhook",
        status=outcome.status,
        payment_document=fact.payment_document,
        bill_id=outcome.bill_id,
    )
    code = {service.ALREADY: 200, CONFIRMED: 200, MISMATCH: 200, UNMATCHED: 202}[outcome.status]
    return Reply(
        code,
        WebhookAnswer(
            status=outcome.status,  # type: ignore[arg-type]
            event_id=outcome.event_id,
            payment_document=fact.payment_document,
            bill_id=outcome.bill_id,
            reasons=outcome.reasons or None,
        ),
    )


async def _accept_business_event(runtime: PaymentsRuntime, event: dict[str, Any]) -> Reply:
    async with transaction(runtime.sessions) as session:
        event_id = await repository.insert_event(session, event)
    if event_id is None:
        return Reply(200, WebhookAnswer(status=service.ALREADY))
    clearing.resolve_soon(runtime, event_id)
    _log.info("payment.business_event.accepted", event_id=event_id)
    return Reply(
        202,
        WebhookAnswer(
            status="accepted",
            event_id=event_id,
            detail="stored; the bridge now asks SAP what this journal entry cleared",
        ),
    )


def _event_values(caller: WebhookCaller, incoming: IncomingEvent) -> dict[str, Any]:
    values: dict[str, Any] = {
        "kind": PAYMENT if incoming.payment else BUSINESS_EVENT,
        "status": DONE if incoming.payment else PENDING,
        "webhook_id": caller.webhook_id,
        "authenticated_by": caller.method,
        "body": caller.body.decode(),
        "attempts": 0,
        "received_at": utcnow(),
    }
    if (ce := incoming.cloudevent) is not None:
        digest = hashlib.sha256(f"{ce.source}\n{ce.id}".encode()).hexdigest()
        values |= {
            "cloudevent_key": digest,
            "cloudevent_source": ce.source,
            "cloudevent_id": ce.id,
            "event_type": ce.type,
        }
    if (keys := incoming.keys) is not None:
        values |= {
            "company_code": keys.CompanyCode,
            "fiscal_year": keys.FiscalYear,
            "accounting_document": keys.AccountingDocument,
        }
    return values
