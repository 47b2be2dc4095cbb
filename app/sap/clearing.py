"""Which receivables SAP has cleared, read from `API_OPLACCTGDOCITEMCUBE_SRV`.

Three questions, each asked for many documents at once in `$filter` batches small enough for
SAP Gateway's URL limits, always with `$orderby` on the keys and `__next` followed:

* `document_items`: the debit items of the bills' own journal entries (the receivable is one
  of them), with `IsCleared`, `ClearingAccountingDocument`, `ClearingDocFiscalYear`,
  `ClearingDate` and the amount.
* `invoice_items`: items of other documents that reference a bill's document
  (`InvoiceReference`, `InvoiceReferenceFiscalYear`): partial payments (credits) and residual
  items (debits), which `app.payments.settlement` tells apart.
* `touched_documents`: for a business event's document, the invoices it pays or clears.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from app.config.service import BridgeConfig
from app.sap import odata
from app.sap.client import CUBE_PATH, SapClient

BATCH = 20  # documents per request: about 1,500 characters of $filter
_KEYS = "CompanyCode,FiscalYear,AccountingDocument,AccountingDocumentItem"
_ORDER = "CompanyCode,FiscalYear,AccountingDocument,AccountingDocumentItem"
ITEM_FIELDS = (
    f"{_KEYS},FinancialAccountType,GLAccount,Customer,DebitCreditCode,"
    "AmountInTransactionCurrency,TransactionCurrency,PostingDate,IsReversal,IsReversed,"
    "IsCleared,ClearingDate,ClearingAccountingDocument,ClearingDocFiscalYear,ClearingIsReversed"
)
REFERENCE_FIELDS = ("InvoiceReference", "InvoiceReferenceFiscalYear")


@dataclass(frozen=True, order=True)
class DocumentKey:
    """A journal entry: company code, fiscal year, document number (padded to 10)."""

    company_code: str
    fiscal_year: str
    document: str


@dataclass(frozen=True)
class LedgerItem:
    """One journal-entry item as the clearing rules need it.

    `amount` is signed as SAP signs it: debits positive, credits negative. `invoice` is the
    document the item references (`InvoiceReference`), if any; `clearing` the document that
    cleared it, unless that clearing was reset."""

    document: DocumentKey
    item: str
    account_type: str
    gl_account: str
    customer: str
    debit_credit: str
    amount: Decimal
    currency: str
    posting_date: date | None
    is_reversed: bool
    invoice: DocumentKey | None
    clearing: DocumentKey | None
    clearing_date: date | None


async def document_items(
    sap: SapClient, config: BridgeConfig, documents: Iterable[DocumentKey]
) -> list[LedgerItem]:
    """The debit items of these journal entries (the receivable of each posted bill)."""
    found = []
    for company, batch in _batches(documents):
        pairs = [_pair("FiscalYear", "AccountingDocument", key) for key in batch]
        flt = (
            f"CompanyCode eq {odata.literal(company)} and DebitCreditCode eq 'S' and ({_or(pairs)})"
        )
        rows = await _query(sap, config, flt, ITEM_FIELDS, "clearing.receivables")
        found += [_item(row) for row in rows]
    return found


async def invoice_items(
    sap: SapClient, config: BridgeConfig, invoices: Iterable[DocumentKey]
) -> list[LedgerItem]:
    """Items whose `InvoiceReference` names one of these journal entries."""
    select = ",".join((ITEM_FIELDS, *REFERENCE_FIELDS))
    found = []
    for company, batch in _batches(invoices):
        pairs = [_pair("InvoiceReferenceFiscalYear", "InvoiceReference", key) for key in batch]
        flt = f"CompanyCode eq {odata.literal(company)} and ({_or(pairs)})"
        rows = await _query(sap, config, flt, select, "clearing.invoice_payments")
        found += [_item(row) for row in rows]
    return found


async def touched_documents(
    sap: SapClient, config: BridgeConfig, document: DocumentKey
) -> set[DocumentKey]:
    """The journal entries this document pays or clears: those its items reference
    (`InvoiceReference`), those whose items it cleared, and the invoices those reference (a
    residual item it cleared belongs to the invoice the residual was opened for)."""
    company = odata.literal(document.company_code)
    own = _pair("FiscalYear", "AccountingDocument", document)
    cleared = _pair("ClearingDocFiscalYear", "ClearingAccountingDocument", document)
    flt = f"CompanyCode eq {company} and ({own} or {cleared})"
    select = f"{_KEYS},InvoiceReference,InvoiceReferenceFiscalYear,ClearingAccountingDocument"
    rows = await _query(sap, config, flt, select, "clearing.event_lookup")
    touched: set[DocumentKey] = set()
    for row in rows:
        key = _key(row)
        if key != document:
            touched.add(key)
        if (invoice := _invoice(row)) is not None:
            touched.add(invoice)
    touched.discard(document)
    return touched


async def _query(
    sap: SapClient, config: BridgeConfig, flt: str, select: str, operation: str
) -> list[dict[str, Any]]:
    params = {"$filter": flt, "$select": select, "$orderby": _ORDER}
    return await sap.get_all(config, CUBE_PATH, params, operation=operation)


def _batches(keys: Iterable[DocumentKey]) -> Iterator[tuple[str, list[DocumentKey]]]:
    by_company: dict[str, list[DocumentKey]] = {}
    for key in sorted(set(keys)):
        by_company.setdefault(key.company_code, []).append(key)
    for company, items in by_company.items():
        for start in range(0, len(items), BATCH):
            yield company, items[start : start + BATCH]


def _pair(year_field: str, document_field: str, key: DocumentKey) -> str:
    return (
        f"({year_field} eq {odata.literal(key.fiscal_year)} and "
        f"{document_field} eq {odata.literal(key.document)})"
    )


def _or(parts: list[str]) -> str:
    return " or ".join(parts)


def _pad(value: Any) -> str:
    text = str(value or "").strip()
    return text.zfill(10) if text.isdigit() else text


def _key(row: dict[str, Any]) -> DocumentKey:
    return DocumentKey(
        str(row["CompanyCode"]), str(row["FiscalYear"]), _pad(row["AccountingDocument"])
    )


def _invoice(row: dict[str, Any]) -> DocumentKey | None:
    if not row.get("InvoiceReference"):
        return None
    year = str(row.get("InvoiceReferenceFiscalYear") or "")
    return DocumentKey(str(row["CompanyCode"]), year, _pad(row["InvoiceReference"]))


def _date(value: Any) -> date | None:
    return odata.parse_date(value) if value else None


def _item(row: dict[str, Any]) -> LedgerItem:
    clearing = None
    cleared = row.get("IsCleared") and not row.get("ClearingIsReversed")
    if cleared and row.get("ClearingAccountingDocument"):
        clearing = DocumentKey(
            str(row["CompanyCode"]),
            str(row.get("ClearingDocFiscalYear") or ""),
            _pad(row["ClearingAccountingDocument"]),
        )
    return LedgerItem(
        document=_key(row),
        item=str(row.get("AccountingDocumentItem", "")).lstrip("0"),
        account_type=str(row.get("FinancialAccountType") or ""),
        gl_account=str(row.get("GLAccount") or ""),
        customer=str(row.get("Customer") or ""),
        debit_credit=str(row.get("DebitCreditCode") or ""),
        amount=odata.decimal(row.get("AmountInTransactionCurrency")),
        currency=str(row.get("TransactionCurrency") or ""),
        posting_date=_date(row.get("PostingDate")),
        is_reversed=bool(row.get("IsReversed") or row.get("IsReversal")),
        invoice=_invoice(row),
        clearing=clearing,
        clearing_date=_date(row.get("ClearingDate")),
    )
