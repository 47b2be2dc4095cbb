"""Bill routes: thin, each calls one service function."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from app.billing import preview, service
from app.billing.runtime import BillingRuntime, RuntimeDep
from app.billing.schemas import (
    PATH_BILL_ID,
    BillIn,
    BillPage,
    BillPreview,
    BillStatus,
    BillView,
    ResolveIn,
)
from app.config.runtime import ConfigDep
from app.platform.api_keys import AdminKey, HmisKey, ReaderKey
from app.platform.fields import IsoDate
from app.platform.json_body import JsonRoute
from app.platform.openapi import outcome
from app.platform.runtime import SessionDep

router = APIRouter(prefix="/bills", tags=["bills"], route_class=JsonRoute)
BillIdPath = Annotated[
    str,
    Path(min_length=1, max_length=64, pattern=PATH_BILL_ID, description="HMIS bill id"),
]

_POSTED = {
    "status": "posted",
    "bill_id": "B-1001",
    "reference": "HMIS-2024-001234",
    "record_status": "posted",
    "sap_document_number": "0100000042",
    "company_code": "1000",
    "fiscal_year": "2024",
    "document_reference_id": "HB7K3M9Q2XZ4D8WA",
    "net_total": "15000.00",
    "currency": "LKR",
    "attempts": 1,
    "messages": [],
    "paid_amount": "0.00",
    "outstanding_amount": "15000.00",
}
_PENDING = {
    k: v
    for k, v in _POSTED.items()
    if k not in ("sap_document_number", "company_code", "fiscal_year")
}
_QUEUED = _PENDING | {
    "status": "queued",
    "record_status": "queued",
    "last_error": "SAP is unreachable (ConnectError)",
    "outstanding_amount": "0.00",
}
_REJECTED = _PENDING | {
    "status": "rejected",
    "record_status": "rejected",
    "detail": "SAP rejected the journal entry: Posting period 003 2024 is not open",
    "last_error": "Posting period 003 2024 is not open",
    "messages": [{"severity": "3", "id": "F5", "number": "201", "text": "Posting period ..."}],
    "outstanding_amount": "0.00",
}
_SKIPPED = {"status": "skipped", "reason": "SAP integration is disabled"}
_REVERSED = _POSTED | {
    "status": "reversed",
    "record_status": "reversed",
    "reversal_document_number": "0100000043",
    "reversal_fiscal_year": "2024",
    "outstanding_amount": "0.00",
}


def _reply(answer: service.Answer, runtime: BillingRuntime) -> JSONResponse:
    if answer.status_code == 202:  # owed to SAP: let the outbox start now, not at its next poll
        runtime.extras["outbox"].wake()
    return JSONResponse(
        answer.view.model_dump(mode="json", exclude_none=True), status_code=answer.status_code
    )


@router.post(
    "/{bill_id}/push",
    status_code=201,
    response_model=BillView,
    response_model_exclude_none=True,
    responses={
        201: outcome("`posted`: SAP holds the journal entry now", _POSTED),
        200: outcome(
            "`already_pushed` (same content) or `skipped` (integration disabled)",
            _POSTED | {"status": "already_pushed"},
            BillView,
            skipped=_SKIPPED,
        ),
        202: outcome(
            "`queued`: SAP unreachable, slow or rate-limited; retried later", _QUEUED, BillView
        ),
        401: outcome("missing or invalid API key", {"detail": "invalid API key"}),
        403: outcome(
            "admin key used on an HMIS route",
            {"detail": "this route takes BRIDGE_API_KEY, not the admin key"},
        ),
        409: outcome(
            "same bill id, different content; `differences` names the fields",
            {
                "detail": "bill B-1001 was already pushed with different content: net_total",
                "status": "conflict",
                "differences": ["net_total"],
            },
        ),
        422: outcome(
            "invalid bill; `detail` names the field",
            {"detail": "net_total: items sum to 14000.00, not 15000.00", "field": "net_total"},
        ),
        502: outcome("`rejected`: SAP's business error, with its `messages`", _REJECTED, BillView),
    },
    summary="Post a finalized bill to SAP as a journal entry, exactly once",
)
async def push_bill(
    bill_id: BillIdPath, bill: BillIn, runtime: RuntimeDep, config: ConfigDep, _key: HmisKey
) -> JSONResponse:
    answer = await service.push(runtime, config, bill_id, bill)
    return _reply(answer, runtime)


def _line(
    account: str, debit_credit: str, amount: str, text: str, profit_center: str | None = None
) -> dict:
    return {
        "kind": "gl",
        "account": account,
        "debit_credit": debit_credit,
        "amount": amount,
        "profit_center": profit_center,
        "cost_center": None,
        "assignment": None,
        "text": text,
    }


_REVENUE = [
    _line("41000100", "H", "10000.00", "Revenue LAB", "PC100"),
    _line("41000200", "H", "5000.00", "Revenue OPD", "PC200"),
]
_ENTRY = {
    "company_code": "1000",
    "document_type": "SA",
    "document_date": "2024-03-15",
    "posting_date": "2024-03-15",
    "currency": "LKR",
    "document_reference_id": "HB2N8V5R0C7T3PQE",
    "reference1": "HMIS-2024-001234",
    "header_text": "HMIS HMIS-2024-001234",
    "created_by": "HMISBRIDGE",
    "lines": [_line("12100000", "S", "15000.00", "HMIS bill HMIS-2024-001234"), *_REVENUE],
}
_PREVIEW = {
    "bill_id": "B-1001",
    "integration_enabled": True,
    "entry": _ENTRY,
    "soap_body": "<?xml version='1.0' encoding='UTF-8'?>\n<soapenv:Envelope xmlns:soapenv="
    '"http://schemas.xmlsoap.org/soap/envelope/" xmlns:sfin="http://sap.com/xi/SAPSCORE/SFIN">'
    "<soapenv:Header /><soapenv:Body><sfin:JournalEntryBulkCreateRequest>…"
    "</sfin:JournalEntryBulkCreateRequest></soapenv:Body></soapenv:Envelope>",
}
_CUSTOMER_LINE = _line("INS-042", "S", "15000.00", "HMIS bill HMIS-2024-001234") | {
    "kind": "customer",
    "assignment": "HB2N8V5R0C7T3PQE",
}


@router.post(
    "/{bill_id}/preview",
    response_model=BillPreview,
    responses={
        200: outcome(
            "the entry and SOAP request a push of this body would send; its "
            "`document_reference_id` (and the SOAP message id) are illustrative, not reserved",
            _PREVIEW,
            customer=_PREVIEW
            | {
                "entry": _ENTRY | {"document_type": "DR", "lines": [*_REVENUE, _CUSTOMER_LINE]},
            },
            disabled=_PREVIEW | {"integration_enabled": False},
        ),
        409: outcome(
            "the settings an entry needs are incomplete; `missing` names them",
            {
                "detail": "SAP configuration incomplete: set SAP Integration - AR Account",
                "missing": ["SAP Integration - AR Account"],
            },
        ),
        422: outcome(
            "invalid bill, exactly as a push would answer; `detail` names the field",
            {
                "detail": "reference: contains a control character, which SAP cannot store as sent",
                "field": "reference",
            },
        ),
    },
    summary="Show the journal entry a push would post, without recording or sending anything",
    description="Takes the push body and builds the entry and its SOAP request with the push's "
    "own functions, so the same 422s apply. Nothing is recorded and SAP is not called; it works "
    "whether or not the integration is enabled. The identity (`document_reference_id`, the SOAP "
    "message id) is drawn afresh for each preview and not reserved: a push draws its own.",
)
async def preview_bill(
    bill_id: BillIdPath, bill: BillIn, config: ConfigDep, _key: HmisKey
) -> BillPreview:
    return preview.preview(config, bill_id, bill)


_DETAIL = _POSTED | {
    "messages": [{"type_id": "001(RW)", "severity": 1, "note": "Document posted successfully"}],
    "payments": [],
    "bill_date": "2024-03-15",
    "created_at": "2024-03-15T10:02:11.418262Z",
    "updated_at": "2024-03-15T10:02:11.902113Z",
    "posted_at": "2024-03-15T10:02:11.901207Z",
    "last_sent_at": "2024-03-15T10:02:11.418262Z",
    "maybe_posted": False,
    "read_backs": 0,
    "cancel_requested": False,
    "entry": _ENTRY | {"document_reference_id": "HB7K3M9Q2XZ4D8WA"},
}


@router.get(
    "/{bill_id}",
    response_model=BillView,
    response_model_exclude_none=True,
    responses={
        200: outcome(
            "the push record, its delivery state, the entry as sent and its payments",
            _DETAIL,
        ),
        404: outcome("never pushed", {"detail": "bill B-1001 has never been pushed"}),
    },
    summary="The push record of a bill",
    description="Everything an operator's page of the bill shows: status, SAP documents, "
    "attempts (the count, the latest: `last_sent_at`, SAP's `messages`, `last_error`, and "
    "each one's outcome in `attempt_history`), "
    "what happens next (`next_attempt_at`, `maybe_posted`), the journal entry as stored and "
    "sent (`entry`), and the payments recorded against it.",
)
async def get_bill(
    bill_id: BillIdPath, runtime: RuntimeDep, session: SessionDep, _key: ReaderKey
) -> JSONResponse:
    return JSONResponse((await service.get(runtime, session, bill_id)).as_json())


#: a real cursor: after B-1001, recorded at 2024-03-15T10:02:11.418262Z
_CURSOR = "MjAyNC0wMy0xNVQxMDowMjoxMS40MTgyNjIrMDA6MDB8Qi0xMDAx"
_LISTED = _QUEUED | {
    "bill_date": "2024-03-15",
    "created_at": "2024-03-15T10:02:11.418262Z",
    "updated_at": "2024-03-15T10:02:13.020511Z",
    "payments": [],
    "paid_amount": "0.00",
}


@router.get(
    "",
    response_model=BillPage,
    response_model_exclude_none=True,
    responses={
        200: outcome(
            "one page, newest recorded first; pass `next_cursor` as `cursor` for the next "
            "(absent on the last page)",
            {"items": [_LISTED], "next_cursor": _CURSOR},
        ),
        422: outcome(
            "bad status, q, from/to, limit or cursor; `detail` names it",
            {"detail": "cursor: not a cursor this service issued", "field": "cursor"},
            bad_range={"detail": "from: 2024-03-20 is after to (2024-03-15)", "field": "from"},
            bad_limit={
                "detail": "limit: Input should be less than or equal to 200",
                "errors": [
                    {
                        "loc": ["query", "limit"],
                        "msg": "Input should be less than or equal to 200",
                        "type": "less_than_equal",
                    }
                ],
            },
        ),
    },
    summary="Bills for operators: by status, search and bill date, newest first (cursor paging)",
    description="Newest recorded first (ties by bill id). The cursor is a keyset: bills "
    "recorded while an operator pages never shift or repeat the pages that follow. `q` is an "
    "exact match on the bill id, HMIS's reference, a DocumentReferenceID the bill was ever "
    "given (posting or reversal, any case) or the SAP document number of its posting or "
    "reversal (leading zeros optional). `from`/`to` filter on the bill's own date (`bill_date`, "
    "SAP's posting date), both included. A row's `last_error` is cut to 200 characters; "
    "`GET /bills/{bill_id}` has it whole.",
)
async def list_bills(
    runtime: RuntimeDep,
    session: SessionDep,
    _key: ReaderKey,
    status: Annotated[BillStatus | None, Query()] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=service.MAX_SEARCH,
            description="bill id, HMIS reference, DocumentReferenceID or SAP document number "
            "(exact)",
        ),
    ] = None,
    from_: Annotated[
        IsoDate | None, Query(alias="from", description="YYYY-MM-DD: bill date on or after")
    ] = None,
    to: Annotated[IsoDate | None, Query(description="YYYY-MM-DD: bill date on or before")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> BillPage:
    query = service.bill_query(status, q, from_, to)
    return await service.list_bills(runtime, session, query, cursor, limit)


@router.post(
    "/{bill_id}/cancel",
    response_model=BillView,
    response_model_exclude_none=True,
    responses={
        200: outcome(
            "`reversed` (SAP holds the reversal), `withdrawn` (SAP never had the bill), "
            "`already_reversed`, or `skipped` (integration disabled)",
            _REVERSED,
            withdrawn=_PENDING | {"status": "withdrawn", "record_status": "withdrawn"},
            already_reversed=_REVERSED | {"status": "already_reversed"},
            skipped=_SKIPPED,
        ),
        202: outcome(
            "`reversing`: the reversal is owed to SAP and retried in the background",
            _POSTED | {"status": "reversing", "record_status": "reversing"},
            BillView,
        ),
        404: outcome("never pushed", {"detail": "bill B-1001 has never been pushed"}),
    },
    summary="Reverse a cancelled or refunded bill (or withdraw one SAP never got)",
)
async def cancel_bill(
    bill_id: BillIdPath, runtime: RuntimeDep, config: ConfigDep, _key: HmisKey
) -> JSONResponse:
    answer = await service.cancel(runtime, config, bill_id)
    return _reply(answer, runtime)


@router.post(
    "/{bill_id}/retry",
    response_model=BillView,
    response_model_exclude_none=True,
    responses={
        200: outcome(
            "the bill was settled otherwise meanwhile (e.g. found in SAP)",
            _POSTED | {"status": "already_pushed"},
        ),
        201: outcome("`posted` after the retry", _POSTED, BillView),
        202: outcome("`queued`: SAP unreachable; retried in the background", _QUEUED, BillView),
        404: outcome("never pushed", {"detail": "bill B-1001 has never been pushed"}),
        409: outcome(
            "the bill is neither rejected nor needing review",
            {
                "detail": "bill B-1001 is posted; only rejected bills and bills that need "
                "review can be retried",
                "status": "posted",
            },
        ),
        502: outcome("SAP rejected it again", _REJECTED, BillView),
    },
    summary="Re-send a rejected bill after its cause was fixed, or a bill that needed review "
    "once SAP is known to hold no document for it (admin)",
)
async def retry_bill(
    bill_id: BillIdPath, runtime: RuntimeDep, config: ConfigDep, _key: AdminKey
) -> JSONResponse:
    answer = await service.retry(runtime, config, bill_id)
    return _reply(answer, runtime)


_NEEDS_REVIEW = _PENDING | {
    "status": "needs_review",
    "record_status": "needs_review",
    "last_error": "SAP holds document 0100000042 (1000, 2024) with this bill's reference "
    "HB7K3M9Q2XZ4D8WA but other lines (lines in SAP but not sent: G/L 41000100 credit "
    "9000.00 LKR)",
}


@router.post(
    "/{bill_id}/resolve",
    response_model=BillView,
    response_model_exclude_none=True,
    responses={
        200: outcome("the document is the bill's: recorded as `posted` (or `reversed`)", _POSTED),
        404: outcome("never pushed", {"detail": "bill B-1001 has never been pushed"}),
        409: outcome(
            "the bill does not need review, or SAP does not hold that document, or its lines "
            "differ from what the bill sent, or another bill holds it; `status` says which "
            "(not_found_in_sap, lines_differ, reversed_in_sap, held_by_another_bill)",
            {
                "detail": "document 0100000042 (company code 1000, fiscal year 2024) is not "
                "this bill's posting: lines sent but not in SAP: G/L 41000100 credit "
                "10000.00 LKR",
                "status": "lines_differ",
            },
        ),
    },
    summary="Record the SAP document of a bill that needs review, once SAP confirms it (admin)",
)
async def resolve_bill(
    bill_id: BillIdPath,
    body: ResolveIn,
    runtime: RuntimeDep,
    config: ConfigDep,
    _key: AdminKey,
) -> JSONResponse:
    answer = await service.resolve(runtime, config, bill_id, body)
    return _reply(answer, runtime)
