"""The SOAP endpoint ``JournalEntryCreateRequestConfirmation_In`` (SAP_COM_0002)."""

from __future__ import annotations

import asyncio
import uuid

from fastapi import APIRouter, Request
from starlette.responses import Response

from sapsim.config import SimConfig
from sapsim.ledger import PostingResult
from sapsim.messages import message
from sapsim.soap import (
    CONTENT_TYPES,
    BulkRequest,
    ConfirmationPart,
    SoapFault,
    parse_request,
    render_confirmation,
    render_fault,
)
from sapsim.specs import JOURNAL_ENTRY_WSDL
from sapsim.state import CONFIRMATION_FAULT_KEY, SimState, StateDep

SOAP_PATH = "/sap/bc/srt/scs_ext/sap/journalentrycreaterequestconfi"
FAULT_REASON_HEADER = "x-sapsim-fault-reason"
#: The confirmation added first by the fault ``extra_confirmation``: a ReferenceID the client
#: never sent and a document number outside the ranges the ledger hands out.
EXTRA_REFERENCE_ID = "OTHER-REF"
EXTRA_DOCUMENT = "0199999999"

router = APIRouter(tags=["SAP: journal entry post (SOAP)"])


@router.post(SOAP_PATH)
async def post_journal_entries(request: Request, state: StateDep) -> Response:
    """Post each ``JournalEntryCreateRequest``; business errors come back inside HTTP 200."""
    body = await request.body()
    stats = state.stats
    stats.soap_in_flight += 1
    stats.soap_max_in_flight = max(stats.soap_max_in_flight, stats.soap_in_flight)
    try:
        fault = request.scope.get(CONFIRMATION_FAULT_KEY)  # put there by the gate
        return await _post(state, body, request.headers.get("content-type", ""), fault)
    finally:
        stats.soap_in_flight -= 1


async def _post(
    state: SimState, body: bytes, content_type: str, fault: str | None = None
) -> Response:
    if state.faults.latency_ms:
        await asyncio.sleep(state.faults.latency_ms / 1000)
    try:
        bulk = parse_request(body, content_type)
    except SoapFault as soap_fault:
        return soap_fault_response(state, soap_fault)
    async with state.lock:
        upper = state.faults.uppercase_references
        if bulk.test_run and not state.faults.test_run_posts:
            results = [state.ledger.check(e) for e in bulk.entries]
        else:
            results = [state.ledger.post(e, upper_case_references=upper) for e in bulk.entries]
    for result in results:
        if result.document is None:
            state.stats.soap_documents_rejected += 1
        else:
            state.stats.soap_documents_posted += 1
    config = state.config
    leading = _confirmation_fault(fault, bulk, results, config)
    xml = render_confirmation(bulk, results, config.system_id, config.docu_host, leading)
    return Response(xml, headers={"content-type": CONTENT_TYPES[bulk.version]})


def _confirmation_fault(
    kind: str | None, bulk: BulkRequest, results: list[PostingResult], config: SimConfig
) -> list[ConfirmationPart]:
    """Apply a content fault after the real posting; returns confirmations to put first.

    ``document_with_error`` adds a severity-3 item to every posted entry's log (its document
    stays in the ledger); ``extra_confirmation`` returns one foreign confirmation.
    """
    if kind == "document_with_error":
        for result in results:
            doc = result.document
            if doc is not None:
                error = message("injected_error", doc.number, doc.company_code, doc.fiscal_year)
                result.messages.append(error)
    elif kind == "extra_confirmation":
        return [_foreign_confirmation(bulk, config)]
    return []


def _foreign_confirmation(bulk: BulkRequest, config: SimConfig) -> ConfirmationPart:
    """A success confirmation for a request nobody sent, looking like a real one.

    Same company code and fiscal year as the first entry and a 605(RW) note, so only its
    ReferenceID (``OTHER-REF``, not the request's MessageHeader/ID) tells it apart.
    """
    first = bulk.entries[0]  # the WSDL requires at least one JournalEntryCreateRequest
    fiscal_year = f"{first.posting_date.year:04d}"
    object_key = f"{EXTRA_DOCUMENT}{first.company_code}{fiscal_year}"
    note = message("posted", first.reference_document_type, object_key, config.logical_system)
    key = (first.company_code, fiscal_year, EXTRA_DOCUMENT)
    return ConfirmationPart(EXTRA_REFERENCE_ID, key, [note])


@router.get(SOAP_PATH)
async def wsdl(request: Request) -> Response:
    """``?wsdl`` returns the service description, as SOAP runtimes do."""
    if "wsdl" not in {k.lower() for k in request.query_params}:
        return Response(status_code=405, headers={"Allow": "POST"})
    return Response(JOURNAL_ENTRY_WSDL.read_bytes(), media_type="text/xml")


def soap_fault_response(state: SimState, fault: SoapFault) -> Response:
    """HTTP 500 with SAP's generic fault; the reason goes to ``/sim/errorlog`` and a header."""
    transaction_id = uuid.uuid4().hex.upper()
    state.stats.soap_faults += 1
    state.error_log.append(
        {
            "time": state.now().isoformat(),
            "transaction_id": transaction_id,
            "reason": fault.reason,
        }
    )
    reason = " ".join(fault.reason.split()).encode("ascii", "replace").decode()[:500]
    return Response(
        render_fault(fault.version, transaction_id),
        status_code=500,
        headers={"content-type": CONTENT_TYPES[fault.version], FAULT_REASON_HEADER: reason},
    )
