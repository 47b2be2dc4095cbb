"""Is a SAP document the one this bill sent? Only if its lines equal the stored entry.

An identity alone is not proof: a legacy reference may be shared, a document may have been
changed or reversed in SAP. So a document is recognised by what it books — account or
customer, debit or credit, amount, currency — and anything in doubt goes to an operator.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from app.sap.client import FoundDocument
from app.sap.journal_entry import JournalEntry

Line = tuple[str, str, str, Decimal, str]  # account type, account, S/H, amount, currency


class NeedsReview(Exception):
    """SAP may hold a document for the bill that the bridge cannot safely take as its own."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _account(value: str) -> str:
    """SAP may answer numeric accounts and customers zero-padded (ALPHA conversion)."""
    return value.lstrip("0") or "0" if value.isdigit() else value


def entry_lines(entry: JournalEntry) -> Counter[Line]:
    gl = (("S", i.gl_account, i.amount) for i in entry.items)
    debtors = (("D", i.debtor, i.amount) for i in entry.debtor_items)
    return Counter(
        (kind, _account(account), "S" if amount > 0 else "H", Decimal(amount), entry.currency)
        for kind, account, amount in (*gl, *debtors)
    )


def document_lines(document: FoundDocument) -> Counter[Line]:
    return Counter(
        (line.account_type, _account(line.account), line.debit_credit, line.amount, line.currency)
        for line in document.lines
    )


def differences(entry: JournalEntry, document: FoundDocument, limit: int = 4) -> str:
    """`missing …; extra …`: how a document's lines differ from the entry, for a person."""
    expected, found = entry_lines(entry), document_lines(document)
    missing, extra = list((expected - found).elements()), list((found - expected).elements())
    parts = []
    if missing:
        parts.append("lines sent but not in SAP: " + ", ".join(map(_show, missing[:limit])))
    if extra:
        parts.append("lines in SAP but not sent: " + ", ".join(map(_show, extra[:limit])))
    return "; ".join(parts) or "the same lines"


def _show(line: Line) -> str:
    kind, account, side, amount, currency = line
    who = "customer" if kind == "D" else "G/L"
    return f"{who} {account} {'debit' if side == 'S' else 'credit'} {abs(amount):f} {currency}"


def matches(entry: JournalEntry, document: FoundDocument) -> bool:
    return entry_lines(entry) == document_lines(document)


def recognise(entry: JournalEntry, documents: list[FoundDocument]) -> FoundDocument | None:
    """The bill's document among those SAP holds with its identity; None when SAP holds none.

    Raises NeedsReview when documents carry the identity but none is exactly this entry, when
    several are, or when the one that is was reversed in SAP meanwhile."""
    if not documents:
        return None
    same = [d for d in documents if matches(entry, d)]
    if len(same) > 1:
        numbers = ", ".join(f"{d.accounting_document} ({d.fiscal_year})" for d in same)
        raise NeedsReview(
            f"SAP holds {len(same)} documents with this bill's reference "
            f"{entry.document_reference_id} and its lines: {numbers}; one must be reversed"
        )
    if not same:
        document = documents[0]
        raise NeedsReview(
            f"SAP holds document {document.accounting_document} ({document.company_code}, "
            f"{document.fiscal_year}) with this bill's reference "
            f"{entry.document_reference_id} but other lines ({differences(entry, document)})"
        )
    [document] = same
    if document.is_reversed:
        raise NeedsReview(
            f"SAP holds document {document.accounting_document} ({document.fiscal_year}) for "
            "this bill, but it was reversed in SAP"
        )
    return document
