"""Which receivables SAP has cleared, read from `API_OPLACCTGDOCITEMCUBE_SRV` (README 2.2).

Three questions, each asked for many documents at once in `$filter` batches small enough for
SAP Gateway's URL limits, always with `$orderby` on the keys and `__next` followed:

* `receivables`: the debit (receivable) items of the bills' journal entries, with `IsCleared`,
  `ClearingAccountingDocument`, `ClearingDocFiscalYear`, `ClearingDate` and the amount.
* `invoice_payments`: payment items that reference a bill's document (`InvoiceReference`), i.e.
  partial payments, which leave the receivable open until the rest is paid.
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


@dataclass(frozen=True, order=True)
class DocumentKey:
    """A journal entry: company code, fiscal year, document number (padded to 10)."""

    company_code: str
    fiscal_year: str
    document: str


@dataclass(frozen=True)
class ReceivableItem:
    """A debit item of a bill's journal entry and whether a payment cleared it."""

    invoice: DocumentKey
    item: str
    account_type: str
    gl_account: str
    amount: Decimal
    currency: str
    is_cleared: bool
    clearing: DocumentKey | None
    clearing_date: date | None


@dataclass(frozen=True)
class PaymentItem:
    """A payment item pointing at an invoice (`InvoiceReference`); `amount` is positive."""

    payment: DocumentKey
    invoice: DocumentKey
    amount: Decimal
    currency: str
    posting_date: date | None
    is_reversed: bool


async def receivables(
    sap: SapClient, config: BridgeConfig, invoices: Iterable[DocumentKey]
) -> list[ReceivableItem]:
    """The debit items of these journal entries (the receivable of each posted bill)."""
    select = (
        f"{_KEYS},FinancialAccountType,GLAccount,DebitCreditCode,IsCleared,ClearingDate,"
        "ClearingAccountingDocument,ClearingDocFiscalYear,AmountInTransactionCurrency,"
        "TransactionCurrency"
    )
    found = []
    for company, batch in _batches(invoices):
        pairs = [_pair("FiscalYear", "AccountingDocument", key) for key in batch]
        flt = (
            f"CompanyCode eq {odata.literal(company)} and DebitCreditCode eq 'S' and ({_or(pairs)})"
        )
        rows = await _query(sap, config, flt, select, "clearing.receivables")
        found += [_receivable(row) for row in rows]
    return found


async def invoice_payments(
    sap: SapClient, config: BridgeConfig, invoices: Iterable[DocumentKey]
) -> list[PaymentItem]:
    """Payment items whose `InvoiceReference` names one of these journal entries."""
    select = (
        f"{_KEYS},InvoiceReference,InvoiceReferenceFiscalYear,PostingDate,IsReversed,"
        "AmountInTransactionCurrency,TransactionCurrency"
    )
    found = []
    for company, batch in _batches(invoices):
        pairs = [_pair("InvoiceReferenceFiscalYear", "InvoiceReference", key) for key in batch]
        flt = f"CompanyCode eq {odata.literal(company)} and ({_or(pairs)})"
        rows = await _query(sap, config, flt, select, "clearing.invoice_payments")
        found += [_payment(row) for row in rows]
    return found


async def touched_documents(
    sap: SapClient, config: BridgeConfig, document: DocumentKey
) -> set[DocumentKey]:
    """The journal entries this document pays (`InvoiceReference`) or clears."""
    company = odata.literal(document.company_code)
    own = _pair("FiscalYear", "AccountingDocument", document)
    cleared = _pair("ClearingDocFiscalYear", "ClearingAccountingDocument", document)
    flt = f"CompanyCode eq {company} and ({own} or {cleared})"
    select = f"{_KEYS},InvoiceReference,InvoiceReferenceFiscalYear,ClearingAccountingDocument"
    rows = await _query(sap, config, flt, select, "clearing.event_lookup")
    touched: set[DocumentKey] = set()
    for row in rows:
        key = _key(row)
        if key == document:
            if row.get("InvoiceReference"):
                touched.add(
                    DocumentKey(
                        key.company_code,
                        str(row.get("InvoiceReferenceFiscalYear") or ""),
                        _pad(row["InvoiceReference"]),
                    )
                )
        else:
            touched.add(key)
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


def _date(value: Any) -> date | None:
    return odata.parse_date(value) if value else None


def _receivable(row: dict[str, Any]) -> ReceivableItem:
    clearing = None
    if row.get("IsCleared") and row.get("ClearingAccountingDocument"):
        clearing = DocumentKey(
            str(row["CompanyCode"]),
            str(row.get("ClearingDocFiscalYear") or ""),
            _pad(row["ClearingAccountingDocument"]),
        )
    return ReceivableItem(
        invoice=_key(row),
        item=str(row.get("AccountingDocumentItem", "")).lstrip("0"),
        account_type=str(row.get("FinancialAccountType") or ""),
        gl_account=str(row.get("GLAccount") or ""),
        amount=odata.decimal(row.get("AmountInTransactionCurrency")),
        currency=str(row.get("TransactionCurrency") or ""),
        is_cleared=bool(row.get("IsCleared")),
        clearing=clearing,
        clearing_date=_date(row.get("ClearingDate")),
    )


def _payment(row: dict[str, Any]) -> PaymentItem:
    key = _key(row)
    invoice = DocumentKey(
        key.company_code,
        str(row.get("InvoiceReferenceFiscalYear") or ""),
        _pad(row.get("InvoiceReference")),
    )
    return PaymentItem(
        payment=key,
        invoice=invoice,
        amount=-odata.decimal(row.get("AmountInTransactionCurrency")),
        currency=str(row.get("TransactionCurrency") or ""),
        posting_date=_date(row.get("PostingDate")),
        is_reversed=bool(row.get("IsReversed")),
    )
