"""The SOAP endpoint ``JournalEntryCreateRequestConfirmation_In`` (SAP_COM_0002)."""

from __future__ import annotations

import asyncio
import uuid

from fastapi import APIRouter, Request
from starlette.responses import Response

from sapsim.soap import (
    CONTENT_TYPES,
    SoapFault,
    parse_request,
    render_confirmation,
    render_fault,
)
from sapsim.specs import JOURNAL_ENTRY_WSDL
from sapsim.state import SimState, StateDep

SOAP_PATH = "/sap/bc/srt/scs_ext/sap/journalentrycreaterequestconfi"
FAULT_REASON_HEADER = "x-sapsim-fault-reason"

router = APIRouter(tags=["SAP: journal entry post (SOAP)"])


@router.post(SOAP_PATH)
async def post_journal_entries(request: Request, state: StateDep) -> Response:
    """Post each ``JournalEntryCreateRequest``; business errors come back inside HTTP 200."""
    body = await request.body()
    stats = state.stats
    stats.soap_in_flight += 1
    stats.soap_max_in_flight = max(stats.soap_max_in_flight, stats.soap_in_flight)
    try:
        return await _post(state, body, request.headers.get("content-type", ""))
    finally:
        stats.soap_in_flight -= 1


async def _post(state: SimState, body: bytes, content_type: str) -> Response:
    if state.faults.latency_ms:
        await asyncio.sleep(state.faults.latency_ms / 1000)
    try:
        bulk = parse_request(body, content_type)
    except SoapFault as fault:
        return soap_fault_response(state, fault)
    async with state.lock:
        results = [state.ledger.post(entry) for entry in bulk.entries]
    for result in results:
        if result.document is None:
            state.stats.soap_documents_rejected += 1
        else:
            state.stats.soap_documents_posted += 1
    config = state.config
    xml = render_confirmation(bulk, results, config.system_id, config.docu_host)
    return Response(xml, headers={"content-type": CONTENT_TYPES[bulk.version]})


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
