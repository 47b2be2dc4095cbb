"""``API_OPLACCTGDOCITEMCUBE_SRV`` ("Operational Journal Entry Item - Read") over the ledger.

One ``A_OperationalAcctgDocItemCube`` row per posted line, every EDMX property present (unset
ones with Gateway's defaults), ``AccountingDocumentItem`` unpadded like SAP's NUMC output.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response

from sapsim.ledger import Document, Ledger, Line
from sapsim.odata_query import (
    CODE_RESOURCE_NOT_FOUND,
    EntitySet,
    ODataError,
    ODataService,
    Row,
    collection_response,
    entity_response,
    load_service,
    parse_key_predicate,
    parse_query,
    run_query,
)
from sapsim.specs import OPLACCTGDOCITEMCUBE_EDMX
from sapsim.state import SimState, StateDep

SERVICE_NAME = "API_OPLACCTGDOCITEMCUBE_SRV"
ENTITY_SET = "A_OperationalAcctgDocItemCube"

router = APIRouter(tags=["SAP: journal entry items (OData)"])


def service() -> ODataService:
    return load_service(SERVICE_NAME, OPLACCTGDOCITEMCUBE_EDMX)


def _entity_set() -> EntitySet:
    return service().entity_set(ENTITY_SET)


_ROOT = f"/sap/opu/odata/sap/{SERVICE_NAME}"


@router.api_route(_ROOT, methods=["GET", "HEAD"])
@router.api_route(f"{_ROOT}/", methods=["GET", "HEAD"])
async def service_root(request: Request) -> Response:
    return service().service_document(request)


@router.get(f"{_ROOT}/$metadata")
async def metadata(state: StateDep) -> Response:
    return service().metadata_response(state.faults.metadata_missing)


@router.get(f"{_ROOT}/{ENTITY_SET}")
async def read_items(request: Request, state: StateDep) -> Response:
    entity_set = _entity_set()
    options = parse_query(request.query_params, entity_set.entity_type)
    page = run_query(cube_rows(state), entity_set.entity_type, options, state.config.page_cap)
    return collection_response(request, service(), entity_set, page, options)


@router.get(f"{_ROOT}/{ENTITY_SET}/$count")
async def count_items(request: Request, state: StateDep) -> Response:
    entity_set = _entity_set()
    options = parse_query(request.query_params, entity_set.entity_type)
    page = run_query(cube_rows(state), entity_set.entity_type, options, page_cap=0)
    return PlainTextResponse(str(page.count))


@router.get(f"{_ROOT}/{ENTITY_SET}({{key}})")
async def read_item(key: str, request: Request, state: StateDep) -> Response:
    entity_set = _entity_set()
    wanted = parse_key_predicate(key, entity_set.entity_type)
    options = parse_query(request.query_params, entity_set.entity_type)
    for row in cube_rows(state):
        if all(row[k] == v for k, v in wanted.items()):
            return entity_response(request, service(), entity_set, row, options)
    raise ODataError(
        404, f"Resource not found for the segment '{ENTITY_SET}'", CODE_RESOURCE_NOT_FOUND
    )


# --- rows ---------------------------------------------------------------------------------


@dataclass
class _RowCache:
    version: int = -1
    rows: list[Row] = field(default_factory=list)
    by_document: dict[tuple[str, str, str], tuple[int, list[Row]]] = field(default_factory=dict)


_CACHES: weakref.WeakKeyDictionary[Ledger, _RowCache] = weakref.WeakKeyDictionary()


def cube_rows(state: SimState) -> list[Row]:
    """Sparse typed rows of every ledger line (missing properties read as EDMX defaults).

    Rows of a document are rebuilt only when it changed (``revision``); everything when
    master data changed (``version`` of the ledger without a document revision).
    """
    ledger = state.ledger
    cache = _CACHES.setdefault(ledger, _RowCache())
    if cache.version == ledger.version:
        return cache.rows
    version, rows = ledger.version, []
    for doc in list(ledger.documents.values()):
        cached = cache.by_document.get(doc.key)
        if cached is None or cached[0] != doc.revision:
            cached = (doc.revision, [line_values(state, doc, line) for line in doc.lines])
            cache.by_document[doc.key] = cached
        rows.extend(cached[1])
    cache.version, cache.rows = version, rows
    return rows


def invalidate_rows(state: SimState) -> None:
    """Forget every cached row (after master-data changes that rename accounts/customers)."""
    _CACHES.pop(state.ledger, None)


def _dt(value: date | None) -> datetime | None:
    return None if value is None else datetime(value.year, value.month, value.day)


_POSTING_KEYS = {("S", "S"): "40", ("S", "H"): "50", ("D", "S"): "01", ("D", "H"): "11"}
_POSTING_KEYS |= {("K", "S"): "21", ("K", "H"): "31"}


def line_values(state: SimState, doc: Document, line: Line) -> dict[str, Any]:
    """The cube's view of one ledger line (only the fields that are not defaults)."""
    company = state.config.companies[doc.company_code]
    account = company.gl_accounts.get(line.gl_account)
    created = doc.created_at
    values: dict[str, Any] = {
        "CompanyCode": doc.company_code,
        "FiscalYear": doc.fiscal_year,
        "AccountingDocument": doc.number,
        "AccountingDocumentItem": str(line.item),
        "CompanyCodeName": company.name,
        "ChartOfAccounts": company.chart_of_accounts,
        "ClearingDate": _dt(line.clearing_date),
        "ClearingCreationDate": _dt(line.clearing_created),
        "ClearingAccountingDocument": line.clearing_document,
        "ClearingDocFiscalYear": line.clearing_fiscal_year,
        "IsCleared": line.is_cleared,
        "PostingKey": _POSTING_KEYS.get((line.account_type, line.debit_credit), ""),
        "FinancialAccountType": line.account_type,
        "DebitCreditCode": line.debit_credit,
        "AssignmentReference": line.assignment,
        "DocumentItemText": line.text,
        "ControllingArea": company.controlling_area,
        "CostCenter": line.cost_center,
        "ProfitCenter": line.profit_center,
        "IsOpenItemManaged": "X" if line.account_type in {"D", "K"} else "",
        "OperationalGLAccount": line.gl_account,
        "GLAccount": line.gl_account,
        "GLAccountName": account.name if account else "",
        "Customer": line.customer,
        "CustomerName": company.customers.get(line.customer, "") if line.customer else "",
        "Supplier": line.supplier,
        "SupplierName": company.suppliers.get(line.supplier, "") if line.supplier else "",
        "IsBalanceSheetAccount": not line.gl_account.startswith("4"),
        "ReferenceDocumentType": doc.reference_document_type,
        "OriginalReferenceDocument": doc.object_key,
        "ReferenceDocumentLogicalSystem": doc.logical_system,
        "LogicalSystem": doc.logical_system,
        "AccountingDocumentItemRef": str(line.item),
        "FiscalPeriod": f"{doc.posting_date.month:03d}",
        "AccountingDocumentCategory": "",
        "PostingDate": _dt(doc.posting_date),
        "DocumentDate": _dt(doc.document_date),
        "AccountingDocumentType": doc.document_type,
        "CompanyCodeCurrency": company.currency,
        "AmountInCompanyCodeCurrency": line.amount,
        "TransactionCurrency": line.currency,
        "AmountInTransactionCurrency": line.amount,
        "AccountingDocumentCreationDate": _dt(created.date()),
        "CreationTime": time(created.hour, created.minute, created.second),
        "LastChangeDate": _dt(created.date()),
        "AccountingDocCreatedByUser": doc.created_by,
        "DocumentReferenceID": doc.reference_id,
        "ReverseDocument": doc.reverse_document,
        "ReverseDocumentFiscalYear": doc.reverse_fiscal_year,
        "AccountingDocumentHeaderText": doc.header_text,
        "BusinessTransactionType": doc.business_transaction_type,
        "Reference1InDocumentHeader": doc.reference1,
        "Reference2InDocumentHeader": doc.reference2,
        "Ledger": "0L",
        "IsReversal": doc.is_reversal,
        "IsReversed": doc.is_reversed,
        "LedgerGLLineItem": f"{line.item:06d}",
    }
    if line.account_type in {"D", "K"}:
        values["NetDueDate"] = _dt(doc.posting_date)
        values["DueCalculationBaseDate"] = _dt(doc.posting_date)
    if line.invoice_reference is not None:
        fiscal_year, number, item = line.invoice_reference
        values["InvoiceReference"] = number
        values["InvoiceReferenceFiscalYear"] = fiscal_year
        values["InvoiceItemReference"] = str(item)
    return values
