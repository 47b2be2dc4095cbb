"""Build and read SOAP "Journal Entry – Post (Synchronous)" (shared/sap/README.md 1.2-1.5).

Pure functions: no network, no global state. Money is ``Decimal``; signs are positive for a
debit (``S``) and negative for a credit (``H``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from app.sap.errors import SapAmbiguousError, SapMessage, SapRejectedError

SFIN_NS = "http://sap.com/xi/SAPSCORE/SFIN"
SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ACTION = (
    "http://sap.com/xi/SAPSCORE/SFIN/JournalEntryCreateRequestConfirmation_In/"
    "JournalEntryCreateRequestConfirmation_InRequest"
)
"""SOAPAction of the operation, as in the WSDL (quote it in the HTTP header for SOAP 1.1)."""
SERVICE_PATH = "/sap/bc/srt/scs_ext/sap/journalentrycreaterequestconfi"
CONTENT_TYPE = "text/xml; charset=UTF-8"
MAX_LINES = 999

_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MAX_AMOUNT = Decimal(10) ** 22  # xsd totalDigits 28, fractionDigits 6
_MAX_NOTES = 10


@dataclass(frozen=True)
class GLItem:
    """A G/L account line (``Item``); ``amount`` > 0 debit, < 0 credit."""

    gl_account: str
    amount: Decimal
    text: str | None = None
    profit_center: str | None = None
    cost_center: str | None = None


@dataclass(frozen=True)
class DebtorItem:
    """A customer (receivable) line (``DebtorItem``); ``amount`` > 0 debit, < 0 credit."""

    debtor: str
    amount: Decimal
    text: str | None = None
    assignment: str | None = None


@dataclass(frozen=True)
class JournalEntry:
    """One journal entry; ``message_id`` goes into both MessageHeader/ID elements."""

    company_code: str
    document_date: date
    posting_date: date
    currency: str
    currency_decimals: int
    document_reference_id: str
    header_text: str
    reference1: str | None
    created_by: str
    document_type: str
    message_id: str
    items: tuple[GLItem, ...]
    debtor_items: tuple[DebtorItem, ...]


@dataclass(frozen=True)
class PostingResult:
    """What SAP returned for a posted entry; store ``fiscal_year`` as given, never derive it."""

    accounting_document: str
    company_code: str
    fiscal_year: str
    messages: tuple[SapMessage, ...]


def _ident(field: str, value: str | None, limit: int, *, required: bool = True) -> str | None:
    """Validate an identifier against its WSDL max length; raise ValueError naming the field."""
    if not value:
        if required:
            raise ValueError(f"{field} is required")
        return None
    if len(value) > limit:
        raise ValueError(f"{field} {value!r} is longer than {limit} characters")
    if _XML_ILLEGAL.search(value):
        raise ValueError(f"{field} contains characters that XML cannot carry")
    return value


def _text(value: str | None, limit: int) -> str | None:
    """Free text: drop XML-illegal characters and truncate silently; blank → omitted."""
    cleaned = _XML_ILLEGAL.sub("", value or "")[:limit]
    return cleaned if cleaned.strip() else None


def _amount(value: Decimal, decimals: int, line: int) -> Decimal:
    """Check one line amount and quantize it to exactly ``decimals`` fraction digits."""
    if isinstance(value, float) or not isinstance(value, Decimal | int):
        raise TypeError(f"amount of line {line} must be a Decimal, not {type(value).__name__}")
    value = Decimal(value)
    if not value.is_finite() or abs(value) >= _MAX_AMOUNT:
        raise ValueError(f"amount of line {line} is out of range: {value}")
    exact = value.quantize(Decimal(1).scaleb(-decimals))
    if exact != value:
        raise ValueError(f"amount of line {line} has more than {decimals} decimals: {value}")
    if not exact:
        raise ValueError(f"amount of line {line} is zero")
    return exact


def _check_entry(entry: JournalEntry) -> list[Decimal]:
    """Validate header values, line count and balance; return the quantized amounts in order."""
    if not re.fullmatch(r"[A-Z]{3}", entry.currency or ""):
        raise ValueError(f"currency {entry.currency!r} is not an ISO 4217 code")
    if isinstance(entry.currency_decimals, bool) or entry.currency_decimals not in range(7):
        raise ValueError(f"currency_decimals must be 0..6, got {entry.currency_decimals!r}")
    lines: list[GLItem | DebtorItem] = [*entry.items, *entry.debtor_items]
    if not lines or len(lines) > MAX_LINES:
        raise ValueError(f"a journal entry needs 1..{MAX_LINES} lines, got {len(lines)}")
    amounts = [_amount(x.amount, entry.currency_decimals, n) for n, x in enumerate(lines, 1)]
    scale = entry.currency_decimals
    if sum(int(a.scaleb(scale)) for a in amounts):
        raise ValueError(f"lines do not balance: they sum to {sum(amounts)} {entry.currency}")
    return amounts


def _sub(parent: Element, tag: str, text: str | None) -> None:
    if text is not None:
        SubElement(parent, tag).text = text


def _utc(now: datetime) -> str:
    """``CreationDateTime``: UTC, whole seconds, ending in Z."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _header(
    parent: Element, message_id: str, created: str, message_uuid: str | None, test_run: bool
) -> None:
    """A ``MessageHeader`` in WSDL order: ID, UUID, CreationDateTime, TestDataIndicator."""
    header = SubElement(parent, "MessageHeader")
    _sub(header, "ID", _ident("MessageHeader/ID", message_id, 35))
    _sub(header, "UUID", message_uuid)
    _sub(header, "CreationDateTime", created)
    if test_run:
        _sub(header, "TestDataIndicator", "true")


def _money(parent: Element, amount: Decimal, currency: str) -> None:
    """``AmountInTransactionCurrency`` with ``currencyCode``, then the DebitCreditCode."""
    SubElement(parent, "AmountInTransactionCurrency", currencyCode=currency).text = f"{amount:f}"
    _sub(parent, "DebitCreditCode", "S" if amount > 0 else "H")


def _gl_values(item: GLItem) -> tuple[str | None, str | None, str | None]:
    return (
        _ident("GLAccount", item.gl_account, 10),
        _ident("ProfitCenter", item.profit_center, 10, required=False),
        _ident("CostCenter", item.cost_center, 10, required=False),
    )


def _debtor_values(item: DebtorItem) -> tuple[str | None, str | None]:
    return (
        _ident("Debtor", item.debtor, 10),
        _ident("AssignmentReference", item.assignment, 18, required=False),
    )


def _header_values(entry: JournalEntry) -> dict[str, str | None]:
    return {
        "AccountingDocumentType": _ident("AccountingDocumentType", entry.document_type, 5),
        "DocumentReferenceID": _ident("DocumentReferenceID", entry.document_reference_id, 16),
        "CreatedByUser": _ident("CreatedByUser", entry.created_by, 12),
        "CompanyCode": _ident("CompanyCode", entry.company_code, 4),
        "Reference1InDocumentHeader": _ident(
            "Reference1InDocumentHeader", entry.reference1, 20, required=False
        ),
    }


def check_request(entry: JournalEntry) -> None:
    """Raise what `build_request` would raise for `entry`, without rendering the XML (a third
    of its cost): the very checks the builder makes, so one cannot pass where the other fails."""
    _ident("MessageHeader/ID", entry.message_id, 35)
    _check_entry(entry)
    _header_values(entry)
    for item in entry.items:
        _gl_values(item)
    for debtor in entry.debtor_items:
        _debtor_values(debtor)


def _gl_item(parent: Element, n: int, item: GLItem, amount: Decimal, entry: JournalEntry) -> None:
    """One G/L ``Item`` in WSDL order; ProfitCenter/CostCenter nested in AccountAssignment."""
    gl_account, profit_center, cost_center = _gl_values(item)
    element = SubElement(parent, "Item")
    _sub(element, "ReferenceDocumentItem", str(n))
    _sub(element, "CompanyCode", entry.company_code)
    _sub(element, "GLAccount", gl_account)
    _money(element, amount, entry.currency)
    _sub(element, "DocumentItemText", _text(item.text, 50))
    if profit_center or cost_center:
        assignment = SubElement(element, "AccountAssignment")
        _sub(assignment, "ProfitCenter", profit_center)
        _sub(assignment, "CostCenter", cost_center)


def _debtor_item(parent: Element, n: int, item: DebtorItem, amount: Decimal, currency: str) -> None:
    """One customer ``DebtorItem`` in WSDL order."""
    debtor, assignment = _debtor_values(item)
    element = SubElement(parent, "DebtorItem")
    _sub(element, "ReferenceDocumentItem", str(n))
    _sub(element, "Debtor", debtor)
    _money(element, amount, currency)
    _sub(element, "DocumentItemText", _text(item.text, 50))
    _sub(element, "AssignmentReference", assignment)


def _journal_entry(parent: Element, entry: JournalEntry) -> None:
    """The ``JournalEntry`` element: header fields, then every Item, then every DebtorItem."""
    amounts = _check_entry(entry)
    header = _header_values(entry)
    je = SubElement(parent, "JournalEntry")
    _sub(je, "OriginalReferenceDocumentType", "BKPFF")
    _sub(je, "BusinessTransactionType", "RFBU")
    _sub(je, "AccountingDocumentType", header["AccountingDocumentType"])
    _sub(je, "DocumentReferenceID", header["DocumentReferenceID"])
    _sub(je, "DocumentHeaderText", _text(entry.header_text, 25))
    _sub(je, "CreatedByUser", header["CreatedByUser"])
    _sub(je, "CompanyCode", header["CompanyCode"])
    _sub(je, "DocumentDate", entry.document_date.isoformat()[:10])
    _sub(je, "PostingDate", entry.posting_date.isoformat()[:10])
    _sub(je, "Reference1InDocumentHeader", header["Reference1InDocumentHeader"])
    lines: list[GLItem | DebtorItem] = [*entry.items, *entry.debtor_items]
    for n, (line, amount) in enumerate(zip(lines, amounts, strict=True), 1):
        if isinstance(line, GLItem):
            _gl_item(je, n, line, amount, entry)
        else:
            _debtor_item(je, n, line, amount, entry.currency)


def build_request(
    entry: JournalEntry, *, now: datetime, message_uuid: str, test_run: bool = False
) -> bytes:
    """Return the SOAP 1.1 ``JournalEntryBulkCreateRequest`` for one entry as UTF-8 bytes.

    `test_run` sets ``TestDataIndicator`` on the bulk ``MessageHeader`` (and the entry's): SAP
    checks the entry and posts nothing. Only the bulk level makes a test run; on the entry
    alone SAP takes a document number without posting, a gap (SAP KBA 3291244).

    Raises ValueError (naming the field) for values SAP's schema would refuse, unbalanced or
    zero lines, more than 999 lines, or amounts with more decimals than the currency has.
    """
    try:
        canonical_uuid = str(uuid.UUID(message_uuid))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"MessageHeader/UUID {message_uuid!r} is not a UUID") from exc
    created = _utc(now)
    envelope = Element("soapenv:Envelope", {"xmlns:soapenv": SOAP11_NS, "xmlns:sfin": SFIN_NS})
    SubElement(envelope, "soapenv:Header")
    bulk = SubElement(SubElement(envelope, "soapenv:Body"), "sfin:JournalEntryBulkCreateRequest")
    _header(bulk, entry.message_id, created, canonical_uuid, test_run)
    request = SubElement(bulk, "JournalEntryCreateRequest")
    _header(request, entry.message_id, created, None, test_run)
    _journal_entry(request, entry)
    return tostring(envelope, encoding="UTF-8", xml_declaration=True)


def entry_to_json(entry: JournalEntry) -> dict[str, Any]:
    """The entry as JSON values (dates ISO, amounts as strings), stored with the bill.

    Written out rather than `dataclasses.asdict`, which cost five times as much on every push."""
    return {
        "company_code": entry.company_code,
        "document_date": entry.document_date.isoformat(),
        "posting_date": entry.posting_date.isoformat(),
        "currency": entry.currency,
        "currency_decimals": entry.currency_decimals,
        "document_reference_id": entry.document_reference_id,
        "header_text": entry.header_text,
        "reference1": entry.reference1,
        "created_by": entry.created_by,
        "document_type": entry.document_type,
        "message_id": entry.message_id,
        "items": [
            {
                "gl_account": i.gl_account,
                "amount": str(i.amount),
                "text": i.text,
                "profit_center": i.profit_center,
                "cost_center": i.cost_center,
            }
            for i in entry.items
        ],
        "debtor_items": [
            {
                "debtor": i.debtor,
                "amount": str(i.amount),
                "text": i.text,
                "assignment": i.assignment,
            }
            for i in entry.debtor_items
        ],
    }


def entry_from_json(data: dict[str, Any]) -> JournalEntry:
    """The inverse of `entry_to_json`."""
    return JournalEntry(
        **{
            **data,
            "document_date": date.fromisoformat(data["document_date"]),
            "posting_date": date.fromisoformat(data["posting_date"]),
            "items": tuple(
                GLItem(**{**item, "amount": Decimal(item["amount"])}) for item in data["items"]
            ),
            "debtor_items": tuple(
                DebtorItem(**{**item, "amount": Decimal(item["amount"])})
                for item in data["debtor_items"]
            ),
        }
    )


def build_reversal(
    entry: JournalEntry, *, document_reference_id: str, message_id: str, header_text: str
) -> JournalEntry:
    """The counter-entry of ``entry``: same lines with signs negated (S and H swap)."""
    return replace(
        entry,
        document_reference_id=document_reference_id,
        message_id=message_id,
        header_text=header_text,
        items=tuple(replace(item, amount=-item.amount) for item in entry.items),
        debtor_items=tuple(replace(item, amount=-item.amount) for item in entry.debtor_items),
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # namespace and prefix do not matter


def _child(parent: Element | None, name: str) -> Element | None:
    """First direct child with local name ``name`` (unknown siblings are skipped)."""
    return next((c for c in parent if _local(c.tag) == name), None) if parent is not None else None


def _value(parent: Element | None, name: str) -> str:
    element = _child(parent, name)
    return (element.text or "").strip() if element is not None else ""


def _severity(text: str) -> int:
    return int(text) if text.isdigit() else 0


def _log_messages(log: Element | None) -> Iterator[SapMessage]:
    """The ``Log/Item`` entries as SapMessage (TypeID, SeverityCode, Note; never WebURI)."""
    for item in log if log is not None else ():
        if _local(item.tag) == "Item":
            yield SapMessage(
                _value(item, "TypeID"),
                _severity(_value(item, "SeverityCode")),
                _value(item, "Note"),
            )


def _max_severity(logs: list[Element | None], messages: tuple[SapMessage, ...]) -> int:
    declared = [_severity(_value(log, "MaximumLogItemSeverityCode")) for log in logs]
    return max([0, *declared, *(m.severity for m in messages)])


def _error_notes(messages: tuple[SapMessage, ...]) -> str:
    """SAP's error notes (the generic RW 609 note only as last resort), deduplicated."""
    errors = [m for m in messages if m.severity >= 3 and m.note]
    causes = [m for m in errors if not m.type_id.startswith("609(")] or errors
    notes = list(dict.fromkeys(m.note for m in causes or messages if m.note))
    more = f" (and {len(notes) - _MAX_NOTES} more)" if len(notes) > _MAX_NOTES else ""
    return "; ".join(notes[:_MAX_NOTES]) + more if notes else ""


def _rejection_detail(messages: tuple[SapMessage, ...]) -> str:
    """``SAP rejected the journal entry: <error notes>``."""
    notes = _error_notes(messages) or "no document number and no log message"
    return f"SAP rejected the journal entry: {notes}"


def _fault_text(fault: Element) -> str:
    """faultstring (SOAP 1.1) or Reason/Text (SOAP 1.2), else the fault code."""
    text = _value(fault, "faultstring") or _value(_child(fault, "Reason"), "Text")
    text = text or _value(fault, "faultcode") or _value(_child(fault, "Code"), "Value")
    return " ".join(text.split())[:500] or "no fault text"


def _parse_xml(body: bytes) -> Element:
    """Parse safely (no DTDs or entities); an unparseable answer is ambiguous."""
    try:
        return fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise SapAmbiguousError(f"unreadable answer from SAP: not well-formed XML ({exc})") from exc


def _payload(root: Element) -> Element | None:
    """First element in the SOAP Body (or the root itself when there is no envelope)."""
    if _local(root.tag) != "Envelope":
        return root
    return next(iter(_child(root, "Body") or ()), None)


def _confirmation_for(payload: Element, message_id: str) -> Element | None:
    """The ``JournalEntryCreateConfirmation`` answering ``message_id``; None when there is none.

    Each one echoes its request's inner MessageHeader/ID in MessageHeader/ReferenceID (WSDL
    ``JournalEntryCreateConfirmationMessage``): the one whose ReferenceID is ``message_id``,
    or a lone confirmation without a ReferenceID. Raises SapAmbiguousError when confirmations
    are there but none (or more than one) answers the message sent.
    """
    confirmations = [c for c in payload if _local(c.tag) == "JournalEntryCreateConfirmation"]
    if not confirmations:
        return None
    references = [_value(_child(c, "MessageHeader"), "ReferenceID") for c in confirmations]
    if references == [""]:
        return confirmations[0]
    matches = [c for c, ref in zip(confirmations, references, strict=True) if ref == message_id]
    if len(matches) == 1:
        return matches[0]
    seen = ", ".join(repr(ref) if ref else "none" for ref in references)
    if matches:
        raise SapAmbiguousError(
            f"unreadable answer from SAP: {len(matches)} confirmations for the message sent "
            f"({message_id!r})"
        )
    raise SapAmbiguousError(
        f"no confirmation for the message sent ({message_id!r}) in SAP's answer: "
        f"its confirmations answer ReferenceID {seen}"
    )


def parse_confirmation(body: bytes, *, message_id: str) -> PostingResult:
    """Read a ``JournalEntryBulkCreateConfirmation`` (SOAP 1.1 or 1.2) for the entry sent as
    ``message_id`` (its MessageHeader/ID).

    Only the confirmation answering ``message_id`` counts (see `_confirmation_for`), with the
    bulk-level log. Raises SapRejectedError (with SAP's log) on severity >= 3 without a document
    number, or a missing, blank or all-zero AccountingDocument; SapAmbiguousError on a document
    number with severity >= 3 (SAP may hold it: read back), no confirmation for the message
    sent, a SOAP fault or an unreadable answer, since the posting may or may not have happened.
    """
    payload = _payload(_parse_xml(body))
    name = _local(payload.tag) if payload is not None else ""
    if payload is not None and name == "Fault":
        raise SapAmbiguousError(f"SAP answered with a SOAP fault: {_fault_text(payload)}")
    if payload is None or name != "JournalEntryBulkCreateConfirmation":
        raise SapAmbiguousError(
            f"unreadable answer from SAP: expected JournalEntryBulkCreateConfirmation, "
            f"got {name or 'an empty SOAP body'}"
        )
    confirmation = _confirmation_for(payload, message_id)
    logs = [_child(confirmation, "Log"), _child(payload, "Log")]
    messages = tuple(m for log in logs for m in _log_messages(log))
    severity = _max_severity(logs, messages)
    document = _child(confirmation, "JournalEntryCreateConfirmation")
    number = _value(document, "AccountingDocument")
    company_code, fiscal_year = _value(document, "CompanyCode"), _value(document, "FiscalYear")
    if confirmation is None and severity < 3:
        raise SapAmbiguousError("unreadable answer from SAP: no JournalEntryCreateConfirmation")
    if severity >= 3 and number.strip("0"):
        raise SapAmbiguousError(
            f"SAP returned document {number} ({company_code} {fiscal_year}) but logged errors "
            f"({_error_notes(messages) or 'severity 3'}): it may hold the document, read it back"
        )
    if severity >= 3 or not number.strip("0"):
        raise SapRejectedError(_rejection_detail(messages), list(messages))
    if not company_code or not fiscal_year.isdigit() or not fiscal_year.strip("0"):
        raise SapAmbiguousError(
            f"unreadable answer from SAP: document {number} without company code or fiscal year"
        )
    return PostingResult(number, company_code, fiscal_year, messages)
