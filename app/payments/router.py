"""Payment routes: the webhook and its handshake, the clearing sync trigger, the
reconciliation report, and operators' decisions on payments."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from app.payments import (
    clearing,
    decisions,
    metrics,
    reconciliation,
    webhook,
    webhook_docs,
)
from app.payments.runtime import PaymentsRuntime, RuntimeDep
from app.payments.schemas import (
    ClearingSyncResult,
    DecisionIn,
    MatchIn,
    PaymentDetail,
    PaymentPage,
    PaymentStatus,
    Reconciliation,
)
from app.payments.security import WebhookCallerDep
from app.platform.api_keys import AdminKey, ReaderKey
from app.platform.db import utcnow
from app.platform.fields import IsoDate
from app.platform.json_body import JsonRoute
from app.platform.openapi import outcome
from app.platform.runtime import SessionDep

router = APIRouter(tags=["payments"], route_class=JsonRoute)
#: its error answers are counted as refused webhooks by `app.platform.metrics.MetricsMiddleware`
WEBHOOK_PATH = "/webhooks/sap/payment"

_ERROR = {"description": '`{"detail": ...}`'}


@router.post(
    WEBHOOK_PATH,
    responses=webhook_docs.RESPONSES,
    openapi_extra=webhook_docs.OPENAPI_EXTRA,
    summary="A payment or SAP business event (Standard Webhooks signature or HTTP Basic)",
    description=webhook_docs.DESCRIPTION,
)
async def payment_webhook(request: Request, caller: WebhookCallerDep) -> JSONResponse:
    runtime: PaymentsRuntime = request.app.state.runtime
    config = await runtime.config.snapshot(runtime.sessions)
    headers = {k.lower(): v for k, v in request.headers.items()}
    reply = await webhook.receive(runtime, config, caller, headers)
    metrics.record_webhook_answer(reply.answer.status)
    return JSONResponse(
        reply.answer.model_dump(mode="json", exclude_none=True), status_code=reply.status_code
    )


@router.options(
    WEBHOOK_PATH,
    status_code=200,
    responses={401: _ERROR},
    summary="SAP Event Mesh / CloudEvents webhook handshake",
)
async def payment_webhook_handshake(
    caller: WebhookCallerDep,
    origin: Annotated[str | None, Header(alias="WebHook-Request-Origin")] = None,
    rate: Annotated[str | None, Header(alias="WebHook-Request-Rate")] = None,
) -> Response:
    """Echo `WebHook-Request-Origin` in `WebHook-Allowed-Origin` (same credentials as POST)."""
    headers = {"Allow": "POST, OPTIONS"}
    if origin:
        headers["WebHook-Allowed-Origin"] = origin
    if rate:
        headers["WebHook-Allowed-Rate"] = "*"
    return Response(status_code=200, headers=headers)


@router.post(
    "/payments/clearing-sync",
    response_model=ClearingSyncResult,
    response_model_exclude_none=True,
    responses={
        200: {"description": "the finished sync, or `skipped` (integration disabled)"},
        409: {**_ERROR, "description": "a sync is already running"},
    },
    summary="Ask SAP now which receivables of posted, unpaid bills were cleared",
)
async def clearing_sync(runtime: RuntimeDep, _key: AdminKey) -> ClearingSyncResult:
    return await clearing.clearing_sync(runtime, trigger="manual")


@router.get(
    "/reconciliation",
    response_model=Reconciliation,
    responses={
        200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with Accept: text/csv"},
        422: _ERROR,
    },
    summary="Open bills with ageing, payments without a bill, mismatches, totals",
)
async def get_reconciliation(
    session: SessionDep,
    _key: ReaderKey,
    accept: Annotated[str | None, Header()] = None,
    from_: Annotated[IsoDate | None, Query(alias="from", description="YYYY-MM-DD")] = None,
    to: Annotated[IsoDate | None, Query(description="YYYY-MM-DD, default today")] = None,
) -> Response:
    result = await reconciliation.report(session, from_, to or utcnow().date())
    if accept and "text/csv" in accept:
        return Response(
            reconciliation.to_csv(result),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="reconciliation.csv"'},
        )
    return JSONResponse(result.model_dump(mode="json"))


# --- operators' decisions -------------------------------------------------------------------

PaymentIdPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="The payment's `id`")]
_ACTOR = "api"

_UNMATCHED: dict[str, Any] = {
    "id": 7,
    "company_code": "1000",
    "payment_document": "1400000017",
    "payment_fiscal_year": "2024",
    "bill_reference": "HMIS-2024-01234",
    "bill_id": None,
    "sap_document_number": None,
    "amount": "15000.00",
    "currency": "LKR",
    "posting_date": "2024-03-15",
    "status": "unmatched",
    "reasons": ["no bill with reference HMIS-2024-01234"],
    "source": "webhook",
    "note": None,
    "allowed_actions": ["match", "dismiss"],
    "created_at": "2024-03-15T10:02:11Z",
    "updated_at": "2024-03-15T10:02:11Z",
}
_MATCHED: dict[str, Any] = _UNMATCHED | {
    "bill_id": "B-1001",
    "status": "confirmed",
    "reasons": [],
    "allowed_actions": [],
    "updated_at": "2024-03-16T08:30:00Z",
    "decisions": [
        {
            "action": "match",
            "note": "reference mistyped by the bank (HMIS-2024-01234); same amount, same payer",
            "actor": "api",
            "request_id": "6f1c2d3e4a5b",
            "from_status": "unmatched",
            "to_status": "confirmed",
            "bill_id": "B-1001",
            "at": "2024-03-16T08:30:00Z",
        }
    ],
}
_MISMATCH: dict[str, Any] = _UNMATCHED | {
    "id": 8,
    "payment_document": "1400000018",
    "bill_reference": "HMIS-2024-001235",
    "bill_id": "B-1002",
    "amount": "14850.00",
    "status": "mismatch",
    "reasons": ["SAP's receivable 15000.00 differs from the bill total"],
    "source": "clearing_sync",
    "allowed_actions": ["match", "accept", "dismiss"],
    "decisions": [],
}
_ACCEPTED: dict[str, Any] = _MISMATCH | {
    "status": "accepted",
    "allowed_actions": [],
    "updated_at": "2024-03-16T08:31:00Z",
    "decisions": [
        {
            "action": "accept",
            "note": "bank charges of 150.00 deducted; finance accepts (ticket FIN-231)",
            "actor": "console",
            "request_id": None,
            "from_status": "mismatch",
            "to_status": "accepted",
            "bill_id": "B-1002",
            "at": "2024-03-16T08:31:00Z",
        }
    ],
}
_DISMISSED: dict[str, Any] = _UNMATCHED | {
    "status": "dismissed",
    "allowed_actions": [],
    "updated_at": "2024-03-16T08:32:00Z",
    "decisions": [
        {
            "action": "dismiss",
            "note": "test transfer from the bank, reversed the same day",
            "actor": "cli",
            "request_id": None,
            "from_status": "unmatched",
            "to_status": "dismissed",
            "bill_id": None,
            "at": "2024-03-16T08:32:00Z",
        }
    ],
}
_NO_PAYMENT = outcome("no such payment", {"detail": "no payment 7"})
_STALE = {"detail": "payment 7 changed meanwhile (now confirmed); look at it again"}
_BAD_NOTE = {"detail": "note: required: say why, in 1-500 characters", "errors": []}


def _wrong_state(description: str, example: dict[str, Any]) -> dict[str, Any]:
    return outcome(
        f"{description}; or `expected_status` differs from the payment's status, or another "
        "decision on it was made meanwhile. `payment_status` is its status now",
        example,
        changed_meanwhile=_STALE | {"payment_status": "confirmed"},
    )


@router.get(
    "/payments",
    response_model=PaymentPage,
    responses={
        200: outcome(
            "one page, newest first; pass `next_cursor` as `cursor` for the next",
            {"items": [_UNMATCHED], "next_cursor": "UDc"},
        ),
        422: outcome(
            "bad status, limit or cursor",
            {"detail": "cursor: not a cursor this service issued", "field": "cursor"},
        ),
    },
    summary="Payments by status, for operators (cursor paging, search)",
)
async def list_payments(
    session: SessionDep,
    _key: AdminKey,
    status: Annotated[PaymentStatus | None, Query()] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=r"^[^\x00-\x1f\x7f]*$",
            description="Part of a bill reference, payment document or bill id (any case)",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PaymentPage:
    return await decisions.page(session, status, q, cursor, limit)


@router.get(
    "/payments/{payment_id}",
    response_model=PaymentDetail,
    responses={
        200: outcome("the payment and its audit trail, oldest decision first", _MATCHED),
        404: _NO_PAYMENT,
    },
    summary="One payment with its audit trail (operators' decisions)",
)
async def get_payment(
    payment_id: PaymentIdPath, session: SessionDep, _key: AdminKey
) -> PaymentDetail:
    return await decisions.get(session, payment_id)


@router.post(
    "/payments/{payment_id}/match",
    response_model=PaymentDetail,
    responses={
        200: outcome(
            "attached to the bill and judged against it as an incoming payment is: "
            "`confirmed` (counts as paid) or `mismatch` with its `reasons`",
            _MATCHED,
            mismatch=_MATCHED
            | {
                "status": "mismatch",
                "reasons": ["overpayment: 15000.00 exceeds the outstanding 5000.00"],
                "allowed_actions": ["match", "accept", "dismiss"],
            },
        ),
        404: outcome(
            "no such payment, or no bill with that id or reference",
            {"detail": "no bill with id or reference HMIS-2024-01234"},
        ),
        409: _wrong_state(
            "the payment is not `unmatched` or `mismatch`; or the bill is not posted, is a "
            "refund, or its reference names several posted bills",
            {
                "detail": "bill B-1001 is queued, not posted: a payment can be matched only "
                "to a posted bill",
                "payment_status": "unmatched",
            },
        ),
        422: outcome("an empty or overlong note, or no bill named", _BAD_NOTE),
    },
    summary="Match a payment to a bill (id or reference) and judge it again (admin)",
)
async def match_payment(
    payment_id: PaymentIdPath, body: MatchIn, session: SessionDep, _key: AdminKey
) -> PaymentDetail:
    return await decisions.match(
        session, payment_id, body.bill_id, body.note, _ACTOR, body.expected_status
    )


@router.post(
    "/payments/{payment_id}/accept",
    response_model=PaymentDetail,
    responses={
        200: outcome("`accepted`: the mismatch counts towards the bill's paid amount", _ACCEPTED),
        404: _NO_PAYMENT,
        409: _wrong_state(
            "the payment is not a `mismatch`, is attached to no bill, its bill is not posted "
            "(reversed: refund due), or it is in another currency than the bill",
            {
                "detail": "payment 7 is unmatched; only a mismatch can be accepted",
                "payment_status": "unmatched",
            },
        ),
        422: outcome("an empty or overlong note", _BAD_NOTE),
    },
    summary="Accept a mismatch: it counts as paid (admin)",
)
async def accept_payment(
    payment_id: PaymentIdPath, body: DecisionIn, session: SessionDep, _key: AdminKey
) -> PaymentDetail:
    return await decisions.accept(session, payment_id, body.note, _ACTOR, body.expected_status)


@router.post(
    "/payments/{payment_id}/dismiss",
    response_model=PaymentDetail,
    responses={
        200: outcome(
            "`dismissed`: does not count, and leaves the reconciliation's exception lists",
            _DISMISSED,
        ),
        404: _NO_PAYMENT,
        409: _wrong_state(
            "the payment is not `unmatched` or `mismatch`",
            {
                "detail": "payment 7 is confirmed; only an unmatched payment or a mismatch can "
                "be dismissed",
                "payment_status": "confirmed",
            },
        ),
        422: outcome("an empty or overlong note", _BAD_NOTE),
    },
    summary="Dismiss an unmatched payment or a mismatch: it does not count (admin)",
)
async def dismiss_payment(
    payment_id: PaymentIdPath, body: DecisionIn, session: SessionDep, _key: AdminKey
) -> PaymentDetail:
    return await decisions.dismiss(session, payment_id, body.note, _ACTOR, body.expected_status)
