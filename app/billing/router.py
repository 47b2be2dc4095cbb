"""Bill routes: thin, each calls one service function."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from app.billing import service
from app.billing.schemas import BillIn, BillPage, BillView
from app.deps import AdminKey, ConfigDep, HmisKey, ReaderKey, RuntimeDep, SessionDep

router = APIRouter(prefix="/bills", tags=["bills"])
BillIdPath = Annotated[
    str,
    Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$", description="HMIS bill id"),
]

_ERR = {"model": None, "content": {"application/json": {"example": {"detail": "..."}}}}


def _reply(answer: service.Answer) -> JSONResponse:
    return JSONResponse(
        answer.view.model_dump(mode="json", exclude_none=True), status_code=answer.status_code
    )


@router.post(
    "/{bill_id}/push",
    status_code=201,
    response_model=BillView,
    response_model_exclude_none=True,
    responses={
        200: {"description": "`already_pushed` (same content) or `skipped` (integration disabled)"},
        202: {"description": "`queued`: SAP unreachable, slow or rate-limited; retried later"},
        401: {"description": "missing or invalid API key"},
        403: {"description": "admin key used on an HMIS route"},
        409: {"description": "same bill id, different content; `differences` names the fields"},
        422: {"description": "invalid bill; `detail` names the field"},
        502: {"description": "`rejected`: SAP's business error, with its `messages`"},
    },
    summary="Post a finalized bill to SAP as a journal entry, exactly once",
)
async def push_bill(
    bill_id: BillIdPath, bill: BillIn, runtime: RuntimeDep, config: ConfigDep, _key: HmisKey
) -> JSONResponse:
    answer = await service.push(runtime, config, bill_id, bill)
    if answer.status_code == 202:
        runtime.extras["outbox"].wake()
    return _reply(answer)


@router.get(
    "/{bill_id}",
    response_model=BillView,
    response_model_exclude_none=True,
    responses={404: {"description": "never pushed"}},
    summary="The push record of a bill",
)
async def get_bill(bill_id: BillIdPath, session: SessionDep, _key: ReaderKey) -> BillView:
    return await service.get(session, bill_id)


@router.get(
    "",
    response_model=BillPage,
    response_model_exclude_none=True,
    summary="Bills by status, for operators (cursor paging)",
)
async def list_bills(
    session: SessionDep,
    _key: ReaderKey,
    status: Annotated[
        Literal["queued", "posted", "rejected", "reversing", "reversed", "withdrawn"] | None,
        Query(),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> BillPage:
    return await service.list_bills(session, status, cursor, limit)


@router.post(
    "/{bill_id}/cancel",
    response_model=BillView,
    response_model_exclude_none=True,
    responses={202: {"description": "reversal queued"}, 404: {"description": "never pushed"}},
    summary="Reverse a cancelled or refunded bill (or withdraw one SAP never got)",
)
async def cancel_bill(
    bill_id: BillIdPath, runtime: RuntimeDep, config: ConfigDep, _key: HmisKey
) -> JSONResponse:
    answer = await service.cancel(runtime, config, bill_id)
    if answer.status_code == 202:
        runtime.extras["outbox"].wake()
    return _reply(answer)


@router.post(
    "/{bill_id}/retry",
    response_model=BillView,
    response_model_exclude_none=True,
    responses={
        404: {"description": "never pushed"},
        409: {"description": "the bill is not rejected"},
        502: {"description": "SAP rejected it again"},
    },
    summary="Re-send a rejected bill after its cause was fixed (admin)",
)
async def retry_bill(
    bill_id: BillIdPath, runtime: RuntimeDep, config: ConfigDep, _key: AdminKey
) -> JSONResponse:
    answer = await service.retry(runtime, config, bill_id)
    if answer.status_code == 202:
        runtime.extras["outbox"].wake()
    return _reply(answer)
