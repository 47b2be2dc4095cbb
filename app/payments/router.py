"""Payment routes: the webhook and its handshake, the clearing sync trigger,
and the reconciliation report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from app import metrics
from app.db import utcnow
from app.deps import AdminKey, ReaderKey, Runtime, RuntimeDep, SessionDep
from app.fields import IsoDate
from app.json_body import JsonRoute
from app.payments import clearing, reconciliation, service, webhook_docs
from app.payments.schemas import ClearingSyncResult, Reconciliation
from app.payments.security import WebhookCallerDep

router = APIRouter(tags=["payments"], route_class=JsonRoute)
#: its error answers are counted as refused webhooks by `metrics.MetricsMiddleware`
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
    runtime: Runtime = request.app.state.runtime
    config = await runtime.config.snapshot(runtime.sessions)
    headers = {k.lower(): v for k, v in request.headers.items()}
    reply = await service.receive(runtime, config, caller, headers)
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
