"""The simulated general ledger: business checks, number ranges, posting, clearing, reversal.

Checks follow SAP's behaviour for ``JournalEntryCreateRequest`` (README 1.4 and 6): every cause
is collected and reported after ``609(RW)``; a document is posted only when none is found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sapsim.config import CompanyCode, SimConfig
from sapsim.messages import LogMessage, message

INVOICE_RANGE_START = 100000001  # 0100000001
PAYMENT_RANGE_START = 1400000001


@dataclass
class LineRequest:
    """One ``Item`` (kind S), ``DebtorItem`` (D) or ``CreditorItem`` (K) as sent."""

    kind: str
    account: str  # G/L account, customer or supplier
    amount: Decimal
    currency: str
    debit_credit: str | None = None
    reference_item: str = ""
    text: str = ""
    assignment: str = ""
    profit_center: str = ""
    cost_center: str = ""
    company_code: str = ""


@dataclass
class EntryRequest:
    """One ``JournalEntryCreateRequest`` after schema validation."""

    message_id: str
    company_code: str
    document_type: str
    posting_date: date
    document_date: date
    lines: list[LineRequest]
    reference_document_type: str = "BKPFF"
    business_transaction_type: str = "RFBU"
    reference_id: str = ""
    reference1: str = ""
    reference2: str = ""
    header_text: str = ""
    created_by: str = ""
    unsupported: list[str] = field(default_factory=list)


@dataclass
class Line:
    """One posted line (BSEG/ACDOCA row) with its clearing status."""

    item: int
    account_type: str  # S, D, K
    gl_account: str
    amount: Decimal
    currency: str
    debit_credit: str
    customer: str = ""
    supplier: str = ""
    profit_center: str = ""
    cost_center: str = ""
    text: str = ""
    assignment: str = ""
    reference_item: str = ""
    #: For a partial payment or residual line: (fiscal year, document, item) of the invoice.
    invoice_reference: tuple[str, str, int] | None = None
    #: A payment's line on the receivable that is cleared with the items it settles.
    clears: bool = False
    is_cleared: bool = False
    clearing_date: date | None = None
    clearing_created: date | None = None
    clearing_document: str = ""
    clearing_fiscal_year: str = ""

    def as_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["amount"] = str(self.amount)
        for key in ("clearing_date", "clearing_created"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


@dataclass
class Document:
    """A posted journal entry."""

    company_code: str
    fiscal_year: str
    number: str
    document_type: str
    posting_date: date
    document_date: date
    currency: str
    created_at: datetime
    lines: list[Line]
    reference_id: str = ""
    reference1: str = ""
    reference2: str = ""
    header_text: str = ""
    created_by: str = ""
    reference_document_type: str = "BKPFF"
    business_transaction_type: str = "RFBU"
    logical_system: str = ""
    message_id: str = ""
    is_reversal: bool = False
    is_reversed: bool = False
    reverse_document: str = ""
    reverse_fiscal_year: str = ""
    #: For a payment document: the key of the invoice it pays.
    pays: tuple[str, str, str] | None = None
    #: Bumped whenever a posted document changes (clearing, reversal), for read-side caches.
    revision: int = 0

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.company_code, self.fiscal_year, self.number)

    @property
    def object_key(self) -> str:
        """AWKEY: document number + company code + fiscal year."""
        return f"{self.number}{self.company_code}{self.fiscal_year}"

    def as_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in {"lines", "revision"}}
        for key in ("posting_date", "document_date", "created_at"):
            data[key] = data[key].isoformat()
        data["lines"] = [line.as_json() for line in self.lines]
        return data


@dataclass
class PostingResult:
    document: Document | None
    messages: list[LogMessage]


class LedgerError(Exception):
    """A control request (clear, reverse) that cannot be carried out."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Ledger:
    """Documents by key, in posting order; number ranges per company code and fiscal year."""

    def __init__(self, config: SimConfig, now: Callable[[], datetime]) -> None:
        self.config = config
        self.now = now
        self.documents: dict[tuple[str, str, str], Document] = {}
        self._next: dict[tuple[str, str, int], int] = {}
        self.version = 0  # bumped on every change of the ledger, for read-side caches

    # --- posting ------------------------------------------------------------------------
    def check(self, entry: EntryRequest) -> PostingResult:
        """A test run: the checks of a posting, and nothing kept (no document, no number)."""
        errors = check_entry(entry, self.config)
        logsys = self.config.logical_system
        if errors:
            head = message("error_in_document", entry.reference_document_type, "$", logsys)
            return PostingResult(None, [head, *errors])
        return PostingResult(None, [message("test_run", entry.company_code, entry.document_type)])

    def post(self, entry: EntryRequest, *, upper_case_references: bool = False) -> PostingResult:
        """Check one entry and post it when it passes; never raises for business errors.

        ``upper_case_references`` stores DocumentReferenceID and Reference1InDocumentHeader
        upper-cased, like a tenant whose fields are ``sap:display-format="UpperCase"`` may
        (README 7.1 leaves open whether a real one does); read-back then sees only that form.
        """
        errors = check_entry(entry, self.config)
        logsys = self.config.logical_system
        if errors:
            head = message("error_in_document", entry.reference_document_type, "$", logsys)
            return PostingResult(None, [head, *errors])
        company = self.config.companies[entry.company_code]
        reference_id, reference1 = entry.reference_id, entry.reference1
        if upper_case_references:
            reference_id, reference1 = reference_id.upper(), reference1.upper()
        document = Document(
            company_code=entry.company_code,
            fiscal_year=f"{entry.posting_date.year:04d}",
            number="",
            document_type=entry.document_type,
            posting_date=entry.posting_date,
            document_date=entry.document_date,
            currency=entry.lines[0].currency,
            created_at=self.now(),
            lines=[_posted_line(i, line, company) for i, line in enumerate(entry.lines, 1)],
            reference_id=reference_id,
            reference1=reference1,
            reference2=entry.reference2,
            header_text=entry.header_text,
            created_by=entry.created_by,
            reference_document_type=entry.reference_document_type,
            business_transaction_type=entry.business_transaction_type,
            logical_system=logsys,
            message_id=entry.message_id,
        )
        self._store(document, INVOICE_RANGE_START)
        note = message("posted", entry.reference_document_type, document.object_key, logsys)
        return PostingResult(document, [note])

    def _store(self, document: Document, range_start: int) -> None:
        key = (document.company_code, document.fiscal_year, range_start)
        number = self._next.get(key, range_start)
        self._next[key] = number + 1
        document.number = f"{number:010d}"
        self.documents[document.key] = document
        self.version += 1

    def get(self, company_code: str, fiscal_year: str, number: str) -> Document:
        document = self.documents.get((company_code, fiscal_year, number.zfill(10)))
        if document is None:
            raise LedgerError(404, f"Document {number} {company_code} {fiscal_year} not found")
        return document

    # --- clearing -----------------------------------------------------------------------
    def clear(
        self,
        company_code: str,
        fiscal_year: str,
        number: str,
        amount: Decimal | None = None,
        clearing_date: date | None = None,
        method: str = "partial",
        cash_discount: Decimal = Decimal(0),
    ) -> dict[str, Any]:
        """Record an incoming payment against the document's receivable.

        Posts a payment document (type DZ, 14000000NN series, numbered per fiscal year): debit
        bank (less any cash discount, debited to the discount account), credit the customer
        or AR account. `amount` is what it settles, the discount included.

        * `partial`: the credit references the invoice (`InvoiceReference`) and the receivable
          stays open; once the payments reach the open amount, the last payment document
          clears the receivable and every partial payment.
        * `residual`: the payment clears every open item of the invoice at once and opens a
          residual debit item referencing the invoice for what is still owed.
        """
        invoice = self.get(company_code, fiscal_year, number)
        if invoice.is_reversed or invoice.is_reversal:
            raise LedgerError(409, f"Document {invoice.number} is reversed")
        receivable = self._receivable_line(invoice)
        open_items = self._open_items(invoice, receivable)
        open_amount = sum((line.amount for _, line in open_items), Decimal(0))
        if open_amount <= 0:
            raise LedgerError(409, f"Document {invoice.number} is already cleared")
        paid = open_amount if amount is None else amount
        if paid <= 0 or paid > open_amount:
            raise LedgerError(422, f"Amount must be above 0 and at most {open_amount}")
        if cash_discount < 0 or cash_discount >= paid:
            raise LedgerError(422, "Cash discount must be at least 0 and below the amount")
        when = clearing_date or self.now().date()
        payment = self._post_payment(
            invoice,
            receivable,
            paid,
            cash_discount,
            when,
            open_amount if method == "residual" else None,
        )
        cleared = method == "residual" or paid == open_amount
        if cleared:
            own = [(payment, line) for line in payment.lines if line.clears]
            for doc, line in [*open_items, *own]:
                self._mark_cleared(doc, line, payment, when)
        self.version += 1
        return {
            "company_code": payment.company_code,
            "payment_document": payment.number,
            "fiscal_year": payment.fiscal_year,
            "amount": str(paid),
            "currency": payment.currency,
            "cleared": cleared,
            "open_amount": str(open_amount - paid),
            "clearing_date": when.isoformat(),
        }

    def reset_clearing(self, company_code: str, fiscal_year: str, number: str) -> Document:
        """Reset the clearing a payment document made and reverse it (apps "Reset Cleared
        Items" then "Manage Journal Entries"): its items are open again, it counts for nothing."""
        payment = self.get(company_code, fiscal_year, number)
        if payment.document_type != "DZ" or payment.is_reversed:
            raise LedgerError(409, f"Document {payment.number} is not an unreversed payment")
        own_key = (payment.number, payment.fiscal_year)
        for line in payment.lines:
            if line.is_cleared and (line.clearing_document, line.clearing_fiscal_year) != own_key:
                raise LedgerError(
                    409,
                    f"Item {line.item} of {payment.number} is cleared by "
                    f"{line.clearing_document}; reset that clearing first",
                )
        for doc in self.documents.values():
            for line in doc.lines:
                if (line.clearing_document, line.clearing_fiscal_year) == own_key:
                    doc.revision += 1
                    line.is_cleared, line.clearing_date, line.clearing_created = False, None, None
                    line.clearing_document = line.clearing_fiscal_year = ""
        return self.reverse(company_code, fiscal_year, number)

    def _open_items(self, invoice: Document, receivable: Line) -> list[tuple[Document, Line]]:
        """The invoice's receivable and every item referencing it on the same account that is
        still open: residual debits and partial-payment credits."""
        found = [] if receivable.is_cleared else [(invoice, receivable)]
        for doc in self.documents.values():
            if doc.is_reversed or doc.is_reversal:
                continue
            for line in doc.lines:
                refs = line.invoice_reference
                if (
                    refs is not None
                    and (invoice.fiscal_year, invoice.number) == refs[:2]
                    and line.account_type == receivable.account_type
                    and not line.is_cleared
                ):
                    found.append((doc, line))
        return found

    def _receivable_line(self, document: Document) -> Line:
        company = self.config.companies[document.company_code]
        for line in document.lines:
            if line.account_type == "D":
                return line
        for line in document.lines:
            if line.account_type == "S" and line.gl_account in company.ar_gl_accounts:
                return line
        raise LedgerError(422, f"Document {document.number} has no customer or receivable line")

    def _post_payment(
        self,
        invoice: Document,
        receivable: Line,
        amount: Decimal,
        discount: Decimal,
        when: date,
        clears: Decimal | None,
    ) -> Document:
        """The payment document; `clears` (residual method) is the open amount it clears."""
        company = self.config.companies[invoice.company_code]
        lines = [
            Line(
                1,
                "S",
                company.bank_account,
                amount - discount,
                invoice.currency,
                "S",
                text="Payment",
            )
        ]
        if discount:
            lines.append(
                Line(
                    len(lines) + 1,
                    "S",
                    company.cash_discount_account,
                    discount,
                    invoice.currency,
                    "S",
                    text="Cash discount",
                )
            )
        invoice_reference = (invoice.fiscal_year, invoice.number, receivable.item)

        def on_receivable(value: Decimal, reference: bool, text: str, **extra: Any) -> Line:
            return Line(
                len(lines) + 1,
                receivable.account_type,
                receivable.gl_account,
                value,
                invoice.currency,
                "S" if value > 0 else "H",
                customer=receivable.customer,
                assignment=receivable.assignment,
                text=text,
                invoice_reference=invoice_reference if reference else None,
                **extra,
            )

        label = invoice.reference_id or invoice.number
        if clears is None:
            lines.append(on_receivable(-amount, True, f"Payment {label}", clears=True))
        else:
            lines.append(on_receivable(-clears, False, f"Clearing {label}", clears=True))
            if clears > amount:
                lines.append(on_receivable(clears - amount, True, f"Residual {label}"))
        payment = Document(
            company_code=invoice.company_code,
            fiscal_year=f"{when.year:04d}",
            number="",
            document_type="DZ",
            posting_date=when,
            document_date=when,
            currency=invoice.currency,
            created_at=self.now(),
            lines=lines,
            header_text="Incoming payment",
            created_by="SIM_PAYMENT",
            logical_system=self.config.logical_system,
            pays=invoice.key,
        )
        self._store(payment, PAYMENT_RANGE_START)
        return payment

    def _mark_cleared(self, doc: Document, line: Line, payment: Document, when: date) -> None:
        doc.revision += 1
        line.is_cleared = True
        line.clearing_date = when
        line.clearing_created = self.now().date()
        line.clearing_document = payment.number
        line.clearing_fiscal_year = payment.fiscal_year

    # --- reversal -----------------------------------------------------------------------
    def reverse(
        self, company_code: str, fiscal_year: str, number: str, posting_date: date | None = None
    ) -> Document:
        """Post the reversal of a document (as in app "Manage Journal Entries")."""
        original = self.get(company_code, fiscal_year, number)
        if original.is_reversed or original.is_reversal:
            raise LedgerError(409, f"Document {original.number} is already reversed")
        if any(line.is_cleared for line in original.lines):
            raise LedgerError(409, f"Document {original.number} has cleared items")
        when = posting_date or original.posting_date
        lines = [
            Line(
                line.item,
                line.account_type,
                line.gl_account,
                -line.amount,
                line.currency,
                "H" if line.debit_credit == "S" else "S",
                customer=line.customer,
                supplier=line.supplier,
                profit_center=line.profit_center,
                cost_center=line.cost_center,
                text=line.text,
                assignment=line.assignment,
            )
            for line in original.lines
        ]
        reversal = Document(
            **{
                **original.__dict__,
                "fiscal_year": f"{when.year:04d}",
                "number": "",
                "posting_date": when,
                "created_at": self.now(),
                "lines": lines,
                "is_reversal": True,
                "reverse_document": original.number,
                "reverse_fiscal_year": original.fiscal_year,
                "revision": 0,
            }
        )
        self._store(reversal, INVOICE_RANGE_START)
        original.is_reversed = True
        original.revision += 1
        original.reverse_document = reversal.number
        original.reverse_fiscal_year = reversal.fiscal_year
        self.version += 1
        return reversal


def _posted_line(item: int, line: LineRequest, company: CompanyCode) -> Line:
    dc = line.debit_credit or ("H" if line.amount < 0 else "S")
    gl_account = line.account
    if line.kind == "D":
        gl_account = company.customer_recon_account
    elif line.kind == "K":
        gl_account = company.supplier_recon_account
    return Line(
        item=item,
        account_type=line.kind,
        gl_account=gl_account,
        amount=line.amount,
        currency=line.currency,
        debit_credit=dc,
        customer=line.account if line.kind == "D" else "",
        supplier=line.account if line.kind == "K" else "",
        profit_center=line.profit_center,
        cost_center=line.cost_center,
        text=line.text,
        assignment=line.assignment,
        reference_item=line.reference_item,
    )


# --- business checks ----------------------------------------------------------------------


def check_entry(entry: EntryRequest, config: SimConfig) -> list[LogMessage]:
    """Every business error of one entry, in SAP's order (document, items, period, balance)."""
    company = config.company(entry.company_code)
    if company is None:
        return [message("company_unknown", entry.company_code)]
    errors = [message("unsupported_item", name) for name in entry.unsupported]
    if not entry.lines:
        errors.append(message("no_items"))
    if len(entry.lines) > config.max_document_items:
        errors.append(message("too_many_items"))
    currency_ok = _check_currencies(entry, config, errors)
    trailing: list[LogMessage] = []
    for number, line in enumerate(entry.lines, 1):
        errors += _check_line(number, line, entry, company, config, trailing)
    period = entry.posting_date.strftime("%Y-%m")
    if (entry.company_code, period) in config.closed_periods:
        errors.append(
            message("period_not_open", f"{entry.posting_date.month:03d}", entry.posting_date.year)
        )
    if currency_ok and entry.lines and sum(line.amount for line in entry.lines) != 0:
        errors.append(message("balance"))
    return errors + trailing


def _check_currencies(entry: EntryRequest, config: SimConfig, errors: list[LogMessage]) -> bool:
    currencies = sorted({line.currency for line in entry.lines})
    unknown = [c for c in currencies if config.decimals(c) is None]
    errors += [message("currency_unknown", c) for c in unknown]
    if len(currencies) > 1:
        errors.append(message("currency_mixed", "/".join(currencies)))
    return not unknown and len(currencies) <= 1


def _check_line(
    number: int,
    line: LineRequest,
    entry: EntryRequest,
    company: CompanyCode,
    config: SimConfig,
    trailing: list[LogMessage],
) -> list[LogMessage]:
    errors = _check_amount(number, line, config)
    if line.company_code and line.company_code != entry.company_code:
        errors.append(message("cross_company", number, line.company_code))
    if line.kind == "S":
        errors += _check_gl_line(line, entry, company, trailing)
    elif line.kind == "D" and line.account not in company.customers:
        errors.append(message("customer_not_in_company", line.account, entry.company_code))
    elif line.kind == "K" and line.account not in company.suppliers:
        errors.append(message("vendor_not_in_company", line.account, entry.company_code))
    return errors


def _check_amount(number: int, line: LineRequest, config: SimConfig) -> list[LogMessage]:
    errors = []
    dc = line.debit_credit
    if dc is not None and dc not in {"S", "H"}:
        errors.append(message("debit_credit_invalid", number, dc))
    elif (dc == "S" and line.amount < 0) or (dc == "H" and line.amount > 0):
        errors.append(message("sign_mismatch", number, line.amount, dc))
    decimals = config.decimals(line.currency)
    if decimals is not None and line.amount != round(line.amount, decimals):
        errors.append(message("too_many_decimals", number, line.amount, decimals, line.currency))
    return errors


def _check_gl_line(
    line: LineRequest, entry: EntryRequest, company: CompanyCode, trailing: list[LogMessage]
) -> list[LogMessage]:
    errors = []
    account = company.gl_accounts.get(line.account)
    if account is None:
        errors.append(message("gl_not_in_chart", line.account, company.chart_of_accounts))
        trailing.append(message("account_not_in_chart", line.account, company.chart_of_accounts))
    elif account.reconciliation:
        errors.append(message("reconciliation_account", line.account, entry.company_code))
    if line.profit_center and line.profit_center not in company.profit_centers:
        errors.append(
            message("profit_center_unknown", company.controlling_area, line.profit_center)
        )
    if line.cost_center and line.cost_center not in company.cost_centers:
        on = entry.posting_date.strftime("%d.%m.%Y")
        errors.append(
            message("cost_center_unknown", company.controlling_area, line.cost_center, on)
        )
    return errors
