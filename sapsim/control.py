"""Control API under ``/sim/`` (no authentication): ledger, statistics, faults, clearing,
reversal, posting periods and master data of the running simulator.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from sapsim.config import GLAccount
from sapsim.cube import invalidate_rows
from sapsim.ledger import LedgerError
from sapsim.state import FaultUpdate, StateDep

router = APIRouter(prefix="/sim", tags=["Simulator control"])


class DocumentRef(BaseModel):
    company_code: str
    fiscal_year: str
    accounting_document: str


class ClearRequest(DocumentRef):
    amount: Decimal | None = Field(default=None, description="Default: the open amount")
    clearing_date: date | None = Field(default=None, description="Default: today (UTC)")
    method: Literal["partial", "residual"] = Field(
        default="partial",
        description="partial: a credit referencing the invoice, cleared with the last payment; "
        "residual: clear now and open a residual item for the rest",
    )
    cash_discount: Decimal = Field(default=Decimal(0), ge=0, description="Included in amount")


class ReverseRequest(DocumentRef):
    posting_date: date | None = None


class LatencyUpdate(BaseModel):
    latency_ms: int = Field(ge=0)


class ClosedPeriod(BaseModel):
    company_code: str
    period: str = Field(pattern=r"^\d{4}-\d{2}$", examples=["2026-03"])


class CustomerData(BaseModel):
    name: str = ""


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ledger")
async def ledger(state: StateDep) -> dict[str, Any]:
    """Every posted document with its lines; amounts are decimal strings."""
    documents = [doc.as_json() for doc in list(state.ledger.documents.values())]
    return {"count": len(documents), "documents": documents}


@router.get("/stats")
async def stats(state: StateDep) -> dict[str, Any]:
    return state.stats.as_json()


@router.get("/errorlog")
async def error_log(state: StateDep) -> dict[str, Any]:
    """Why SOAP faults were answered (SAP keeps this in its web service error log)."""
    return {"entries": list(state.error_log)}


@router.post("/reset")
async def reset(state: StateDep) -> dict[str, str]:
    """Clear ledger, statistics, faults (also ``uppercase_references``, ``foreign_next_host``),
    tokens and runtime master-data changes."""
    async with state.lock:
        state.reset()
    return {"status": "reset"}


@router.get("/faults")
async def get_faults(state: StateDep) -> dict[str, Any]:
    return state.faults.as_json()


@router.put("/faults")
async def put_faults(update: FaultUpdate, state: StateDep) -> dict[str, Any]:
    """Change only the fields sent; ``queue`` replaces the queue; ``revoke_tokens`` acts once.

    Fault kinds and the standing settings ``uppercase_references`` and ``foreign_next_host`` are
    described on ``FaultAction`` and ``FaultUpdate`` (``sapsim/state.py``) and in the README.
    """
    state.update_faults(update)
    return state.faults.as_json()


@router.put("/latency")
async def put_latency(update: LatencyUpdate, state: StateDep) -> dict[str, Any]:
    state.faults.latency_ms = update.latency_ms
    return state.faults.as_json()


@router.post("/clear")
async def clear(request: ClearRequest, state: StateDep) -> dict[str, Any]:
    """Record an incoming payment (14000000NN) and clear the receivable once fully paid."""
    async with state.lock:
        try:
            return state.ledger.clear(
                request.company_code,
                request.fiscal_year,
                request.accounting_document,
                request.amount,
                request.clearing_date,
                request.method,
                request.cash_discount,
            )
        except LedgerError as exc:
            raise HTTPException(exc.status, exc.detail) from exc


@router.post("/reverse")
async def reverse(request: ReverseRequest, state: StateDep) -> dict[str, Any]:
    """Reverse a document: a new document with IsReversal, the original IsReversed."""
    async with state.lock:
        try:
            document = state.ledger.reverse(
                request.company_code,
                request.fiscal_year,
                request.accounting_document,
                request.posting_date,
            )
        except LedgerError as exc:
            raise HTTPException(exc.status, exc.detail) from exc
    return document.as_json()


@router.post("/reset-clearing")
async def reset_clearing(request: DocumentRef, state: StateDep) -> dict[str, Any]:
    """Reset what a payment document cleared and reverse it: its items are open again."""
    async with state.lock:
        try:
            reversal = state.ledger.reset_clearing(
                request.company_code, request.fiscal_year, request.accounting_document
            )
        except LedgerError as exc:
            raise HTTPException(exc.status, exc.detail) from exc
    return reversal.as_json()


@router.get("/closed-periods")
async def get_closed_periods(state: StateDep) -> list[ClosedPeriod]:
    return [ClosedPeriod(company_code=c, period=p) for c, p in sorted(state.config.closed_periods)]


@router.put("/closed-periods")
async def put_closed_periods(periods: list[ClosedPeriod], state: StateDep) -> list[ClosedPeriod]:
    """Replace the set of closed posting periods (F5 201 for postings into them)."""
    state.config.closed_periods = {(p.company_code, p.period) for p in periods}
    return periods


@router.put("/companies/{company_code}/gl-accounts/{account}")
async def put_gl_account(
    company_code: str, account: str, data: GLAccount, state: StateDep
) -> dict[str, Any]:
    """Create or change a G/L account (e.g. to fix a rejected posting)."""
    company = state.config.company(company_code)
    if company is None:
        raise HTTPException(404, f"Company code {company_code} not found")
    company.gl_accounts[account] = data
    invalidate_rows(state)  # account names shown in the cube may change
    return {"company_code": company_code, "account": account, **data.model_dump()}


@router.put("/companies/{company_code}/customers/{customer}")
async def put_customer(
    company_code: str, customer: str, data: CustomerData, state: StateDep
) -> dict[str, Any]:
    """Create or rename a customer in a company code."""
    company = state.config.company(company_code)
    if company is None:
        raise HTTPException(404, f"Company code {company_code} not found")
    company.customers[customer] = data.name
    invalidate_rows(state)
    return {"company_code": company_code, "customer": customer, "name": data.name}
