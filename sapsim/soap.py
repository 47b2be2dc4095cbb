"""SOAP wire format of "Journal Entry - Post (Synchronous)": envelope parsing, schema check,
confirmation and fault rendering, shaped like the real answers in ``specs/``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from xml.etree.ElementTree import ParseError
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from sapsim.ledger import EntryRequest, LineRequest, PostingResult
from sapsim.messages import LogMessage
from sapsim.specs import JOURNAL_ENTRY_WSDL
from sapsim.xsd import SchemaViolation, load_wsdl_schema

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SFIN = "http://sap.com/xi/SAPSCORE/SFIN"
REQUEST_ELEMENT = "JournalEntryBulkCreateRequest"
CONTENT_TYPES = {
    SOAP11: "text/xml; charset=utf-8",
    SOAP12: "application/soap+xml; charset=utf-8",
}
_PREFIX = {SOAP11: "soap-env", SOAP12: "env"}
_ITEM_KINDS = {"Item": "S", "DebtorItem": "D", "CreditorItem": "K"}
_UNSUPPORTED = ("ProductTaxItem", "WithholdingTaxItem")


class SoapFault(Exception):
    """A technical error, answered with a SOAP fault (HTTP 500); ``reason`` is for the log."""

    def __init__(self, reason: str, version: str = SOAP11) -> None:
        super().__init__(reason)
        self.reason = reason
        self.version = version


@dataclass
class BulkRequest:
    version: str
    message_id: str
    entries: list[EntryRequest]
    #: ``TestDataIndicator`` true on the bulk MessageHeader: check, post nothing (KBA 3291244)
    test_run: bool = False


def parse_request(body: bytes, content_type: str = "") -> BulkRequest:
    """Parse and schema-check a request; raises ``SoapFault`` for anything off the WSDL."""
    version = SOAP12 if "application/soap+xml" in content_type else SOAP11
    try:
        envelope = SafeET.fromstring(body)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise SoapFault(f"XML is not well-formed: {exc}", version) from exc
    version = _envelope_version(envelope, version)
    bulk = _body_element(envelope, version)
    schema = load_wsdl_schema(JOURNAL_ENTRY_WSDL)
    try:
        schema.validate(bulk, schema.elements[REQUEST_ELEMENT])
    except SchemaViolation as exc:
        raise SoapFault(f"Schema violation: {exc}", version) from exc
    entries = [_entry(node) for node in bulk.findall("JournalEntryCreateRequest")]
    test_run = (_text(bulk, "MessageHeader/TestDataIndicator") or "").strip() in ("true", "1")
    return BulkRequest(version, _text(bulk, "MessageHeader/ID"), entries, test_run)


def _envelope_version(envelope: Any, fallback: str) -> str:
    for namespace in (SOAP11, SOAP12):
        if envelope.tag == f"{{{namespace}}}Envelope":
            return namespace
    raise SoapFault(f"Root element {envelope.tag} is not a SOAP envelope", fallback)


def _body_element(envelope: Any, version: str) -> Any:
    body = envelope.find(f"{{{version}}}Body")
    if body is None:
        raise SoapFault("SOAP envelope has no Body", version)
    children = [c for c in body if isinstance(c.tag, str)]
    expected = f"{{{SFIN}}}{REQUEST_ELEMENT}"
    if len(children) != 1 or children[0].tag != expected:
        found = ", ".join(c.tag for c in children) or "nothing"
        raise SoapFault(f"SOAP Body must hold exactly {expected}, found {found}", version)
    return children[0]


def _text(node: Any, path: str) -> str:
    found = node.find(path)
    if found is None or found.text is None:
        return ""
    return " ".join(found.text.split())


def _entry(node: Any) -> EntryRequest:
    je = node.find("JournalEntry")
    lines = [_line(kind, child) for child in je if (kind := _ITEM_KINDS.get(child.tag)) is not None]
    return EntryRequest(
        message_id=_text(node, "MessageHeader/ID"),
        company_code=_text(je, "CompanyCode"),
        document_type=_text(je, "AccountingDocumentType"),
        posting_date=date.fromisoformat(_text(je, "PostingDate")),
        document_date=date.fromisoformat(_text(je, "DocumentDate")),
        lines=lines,
        reference_document_type=_text(je, "OriginalReferenceDocumentType"),
        business_transaction_type=_text(je, "BusinessTransactionType"),
        reference_id=_text(je, "DocumentReferenceID"),
        reference1=_text(je, "Reference1InDocumentHeader"),
        reference2=_text(je, "Reference2InDocumentHeader"),
        header_text=(je.findtext("DocumentHeaderText") or ""),
        created_by=_text(je, "CreatedByUser"),
        unsupported=[name for name in _UNSUPPORTED if je.find(name) is not None],
    )


def _line(kind: str, node: Any) -> LineRequest:
    amount = node.find("AmountInTransactionCurrency")
    account_tag = {"S": "GLAccount", "D": "Debtor", "K": "Creditor"}[kind]
    return LineRequest(
        kind=kind,
        account=_text(node, account_tag),
        amount=Decimal(" ".join((amount.text or "").split())),
        currency=amount.get("currencyCode", "").strip(),
        debit_credit=_text(node, "DebitCreditCode") or None,
        reference_item=_text(node, "ReferenceDocumentItem"),
        text=node.findtext("DocumentItemText") or "",
        assignment=_text(node, "AssignmentReference"),
        profit_center=_text(node, "AccountAssignment/ProfitCenter"),
        cost_center=_text(node, "AccountAssignment/CostCenter"),
        company_code=_text(node, "CompanyCode"),
    )


# --- rendering ----------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _header(reference_id: str, system_id: str | None = None) -> str:
    parts = [f"<UUID>{uuid.uuid4()}</UUID>"]
    if reference_id:
        parts.append(f"<ReferenceID>{escape(reference_id)}</ReferenceID>")
    parts.append(f"<CreationDateTime>{_now()}</CreationDateTime>")
    if system_id:
        parts.append(f"<SenderBusinessSystemID>{escape(system_id)}</SenderBusinessSystemID>")
    return f"<MessageHeader>{''.join(parts)}</MessageHeader>"


def _log_item(msg: LogMessage, docu_host: str) -> str:
    uri = msg.web_uri(docu_host)
    web = f"<WebURI>{escape(uri)}</WebURI>" if uri else ""
    return (
        f"<Item><TypeID>{escape(msg.type_id)}</TypeID><SeverityCode>{msg.severity}</SeverityCode>"
        f"<Note>{escape(msg.note)}</Note>{web}</Item>"
    )


@dataclass
class ConfirmationPart:
    """What one inner ``JournalEntryCreateConfirmation`` says.

    Kept apart from ``PostingResult`` so that a fault can add a confirmation for a request that
    was never sent (``extra_confirmation``) without inventing a ledger document.
    """

    reference_id: str  # echoes the inner MessageHeader/ID of the request it answers
    key: tuple[str, str, str] | None  # (company code, fiscal year, number); None: not posted
    messages: list[LogMessage]

    @classmethod
    def of(cls, entry: EntryRequest, result: PostingResult) -> ConfirmationPart:
        key = None if result.document is None else result.document.key
        return cls(entry.message_id, key, result.messages)


def _confirmation(part: ConfirmationPart, docu_host: str) -> str:
    if part.key is not None:
        company_code, fiscal_year, number = part.key
        key = (
            f"<AccountingDocument>{escape(number)}</AccountingDocument>"
            f"<CompanyCode>{escape(company_code)}</CompanyCode>"
            f"<FiscalYear>{escape(fiscal_year)}</FiscalYear>"
        )
    else:
        key = (
            "<AccountingDocument> </AccountingDocument><CompanyCode> </CompanyCode>"
            "<FiscalYear>0000</FiscalYear>"
        )
    severity = max(m.severity for m in part.messages)
    items = "".join(_log_item(m, docu_host) for m in part.messages)
    return (
        f"<JournalEntryCreateConfirmation>{_header(part.reference_id)}"
        f"<JournalEntryCreateConfirmation>{key}</JournalEntryCreateConfirmation>"
        f"<Log><MaximumLogItemSeverityCode>{severity}</MaximumLogItemSeverityCode>{items}</Log>"
        "</JournalEntryCreateConfirmation>"
    )


def render_confirmation(
    bulk: BulkRequest,
    results: list[PostingResult],
    system_id: str,
    docu_host: str,
    leading: Sequence[ConfirmationPart] = (),
) -> str:
    """``JournalEntryBulkCreateConfirmation`` in the request's SOAP version.

    One inner confirmation per entry, in request order; ``leading`` ones (injected faults) come
    before them, which the WSDL allows (``JournalEntryCreateConfirmation`` is 0..unbounded).
    """
    prefix = _PREFIX[bulk.version]
    parts = [
        *leading,
        *(
            ConfirmationPart.of(entry, result)
            for entry, result in zip(bulk.entries, results, strict=True)
        ),
    ]
    confirmations = "".join(_confirmation(part, docu_host) for part in parts)
    proxy = f"urn:sap.com:proxy:{system_id}:/1SAI/TAS3D871C7855B59197A671:795"
    return (
        f'<{prefix}:Envelope xmlns:{prefix}="{bulk.version}"><{prefix}:Header/><{prefix}:Body>'
        f'<n0:JournalEntryBulkCreateConfirmation xmlns:n0="{SFIN}" xmlns:prx="{proxy}">'
        f"{_header(bulk.message_id, system_id)}<ConfirmationInterfaceOrignName/>"
        f"{confirmations}<Log/></n0:JournalEntryBulkCreateConfirmation>"
        f"</{prefix}:Body></{prefix}:Envelope>"
    )


def render_fault(version: str, transaction_id: str) -> str:
    """SAP's generic "Web service processing error" fault (SOAP 1.1 or 1.2)."""
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    text = (
        "Web service processing error; more details in the web service error log on provider "
        f"side (UTC timestamp {stamp}; Transaction ID {transaction_id}) The error log can be "
        "accessed by service provider from SAP backend"
    )
    prefix = _PREFIX[version]
    if version == SOAP12:
        fault = (
            f"<{prefix}:Fault><{prefix}:Code><{prefix}:Value>{prefix}:Receiver</{prefix}:Value>"
            f'</{prefix}:Code><{prefix}:Reason><{prefix}:Text xml:lang="en">{text}'
            f"</{prefix}:Text></{prefix}:Reason><{prefix}:Detail/></{prefix}:Fault>"
        )
    else:
        fault = (
            f"<{prefix}:Fault><faultcode>{prefix}:Server</faultcode>"
            f'<faultstring xml:lang="en">{text}</faultstring><detail/></{prefix}:Fault>'
        )
    return (
        f'<{prefix}:Envelope xmlns:{prefix}="{version}"><{prefix}:Header/><{prefix}:Body>'
        f"{fault}</{prefix}:Body></{prefix}:Envelope>"
    )
