"""Journal Entry – Post (Synchronous): request building against the WSDL, confirmation parsing."""

from __future__ import annotations

import json
import os
import uuid
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.sap.errors import SapAmbiguousError, SapRejectedError
from app.sap.journal_entry import (
    SERVICE_PATH,
    SOAP_ACTION,
    DebtorItem,
    GLItem,
    JournalEntry,
    build_request,
    build_reversal,
    check_request,
    entry_from_json,
    entry_to_json,
    parse_confirmation,
)

SFIN = "http://sap.com/xi/SAPSCORE/SFIN"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
XSD = "{http://www.w3.org/2001/XMLSchema}"
WSDL = "JOURNALENTRYCREATEREQUESTCONFI.wsdl"
ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 15, 15, 30, 5, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
SUB = "SUB_MSG_2024-03-28"  # the inner MessageHeader/ReferenceID of the success sample


def spec(name: str) -> Path:
    """A file from SAP's specs: $SAP_SPECS_DIR, sapsim/specs or the shared contract folder."""
    dirs = [os.environ.get("SAP_SPECS_DIR", ""), ROOT / "sapsim" / "specs"]
    dirs += [ROOT.parent / "shared" / "sap" / "specs", "/work/shared/sap/specs"]
    for folder in dirs:
        if folder and (Path(folder) / name).is_file():
            return Path(folder) / name
    pytest.fail(f"SAP spec {name} not found; set SAP_SPECS_DIR")


@cache
def wsdl_sequence(type_name: str) -> tuple[str, ...]:
    """Child element names of a WSDL complexType, in xsd:sequence order."""
    tree = ET.parse(spec(WSDL))
    for complex_type in tree.iter(f"{XSD}complexType"):
        if complex_type.get("name") == type_name:
            sequence = complex_type.find(f"{XSD}sequence")
            return tuple(e.get("name") for e in sequence.findall(f"{XSD}element"))
    raise AssertionError(f"{type_name} not in the WSDL")


def assert_wsdl_order(element: ET.Element, type_name: str) -> None:
    """Children appear in WSDL sequence order (repeats allowed only for unbounded elements)."""
    order = wsdl_sequence(type_name)
    tags = [child.tag for child in element]
    assert all("}" not in tag for tag in tags), f"children must be unqualified: {tags}"
    assert set(tags) <= set(order), f"not in {type_name}: {set(tags) - set(order)}"
    positions = [order.index(tag) for tag in tags]
    assert positions == sorted(positions), f"{tags} is not in WSDL order {order}"


def make_entry(**changes: object) -> JournalEntry:
    entry = JournalEntry(
        company_code="1000",
        document_date=date(2026, 3, 14),
        posting_date=date(2026, 3, 15),
        currency="LKR",
        currency_decimals=2,
        document_reference_id="B-000123",
        header_text="HMIS bill B-000123",
        reference1="HMIS-BILL-000123",
        created_by="HMIS_COMM",
        document_type="DR",
        message_id="HMIS-B-000123-1",
        items=(
            GLItem("41000000", Decimal("-5000.00"), "Consultation", profit_center="PC100"),
            GLItem("42000000", Decimal("-10000"), "Lab", cost_center="CC200"),
            GLItem("43000000", Decimal("-0.50")),
        ),
        debtor_items=(DebtorItem("10000001", Decimal("15000.50"), "Bill", "B-000123"),),
    )
    return replace(entry, **changes)


def build(entry: JournalEntry | None = None) -> ET.Element:
    return ET.fromstring(build_request(entry or make_entry(), now=NOW, message_uuid=UUID))


def journal_entry(root: ET.Element) -> ET.Element:
    return root.find(
        f"{{{SOAP11}}}Body/{{{SFIN}}}JournalEntryBulkCreateRequest/"
        "JournalEntryCreateRequest/JournalEntry"
    )


def test_constants_match_wsdl() -> None:
    text = spec(WSDL).read_text()
    assert f'soapAction="{SOAP_ACTION}"' in text
    assert f'location="https://host:port{SERVICE_PATH}"' in text


def test_envelope_and_message_headers() -> None:
    root = build()
    assert root.tag == f"{{{SOAP11}}}Envelope"
    bulk = root.find(f"{{{SOAP11}}}Body/{{{SFIN}}}JournalEntryBulkCreateRequest")
    assert bulk is not None
    assert all("}" not in e.tag for e in bulk.iter() if e is not bulk), "only the root is qualified"
    assert_wsdl_order(bulk, "JournalEntryCreateRequestBulkMessage")
    request = bulk.find("JournalEntryCreateRequest")
    assert_wsdl_order(request, "JournalEntryCreateRequestMessage")
    for header in (bulk.find("MessageHeader"), request.find("MessageHeader")):
        assert_wsdl_order(header, "BusinessDocumentMessageHeader")
        assert header.findtext("ID") == "HMIS-B-000123-1"
        assert header.findtext("CreationDateTime") == "2026-03-15T10:00:05Z"  # +05:30 → UTC
    assert bulk.findtext("MessageHeader/UUID") == UUID


def test_journal_entry_children_follow_wsdl() -> None:
    je = journal_entry(build())
    assert_wsdl_order(je, "JournalEntryCreateRequestJournalEntry")
    header = {c.tag: c.text for c in je if c.tag not in ("Item", "DebtorItem")}
    assert header == {
        "OriginalReferenceDocumentType": "BKPFF",
        "BusinessTransactionType": "RFBU",
        "AccountingDocumentType": "DR",
        "DocumentReferenceID": "B-000123",
        "DocumentHeaderText": "HMIS bill B-000123",
        "CreatedByUser": "HMIS_COMM",
        "CompanyCode": "1000",
        "DocumentDate": "2026-03-14",
        "PostingDate": "2026-03-15",
        "Reference1InDocumentHeader": "HMIS-BILL-000123",
    }
    tags = [c.tag for c in je]
    assert tags[-4:] == ["Item", "Item", "Item", "DebtorItem"], "DebtorItem comes after Item"


def test_items_follow_wsdl_and_are_numbered() -> None:
    je = journal_entry(build())
    for item in je.findall("Item"):
        assert_wsdl_order(item, "JournalEntryCreateRequestJournalEntryItem")
        assert item.findtext("CompanyCode") == "1000"
        if item.find("AccountAssignment") is not None:
            assignment = item.find("AccountAssignment")
            assert_wsdl_order(
                assignment, "JournalEntryCreateRequestJournalEntryItemAccountAssignment"
            )
    for item in je.findall("DebtorItem"):
        assert_wsdl_order(item, "JournalEntryCreateRequestJournalEntryDebtorItem")
    numbers = [line.findtext("ReferenceDocumentItem") for line in je if line.tag.endswith("Item")]
    assert numbers == ["1", "2", "3", "4"]


def test_account_assignment_nesting() -> None:
    items = journal_entry(build()).findall("Item")
    assert items[0].find("ProfitCenter") is None and items[0].find("CostCenter") is None
    assert items[0].findtext("AccountAssignment/ProfitCenter") == "PC100"
    assert items[0].find("AccountAssignment/CostCenter") is None
    assert items[1].findtext("AccountAssignment/CostCenter") == "CC200"
    assert items[2].find("AccountAssignment") is None


def test_signs_codes_and_currency() -> None:
    je = journal_entry(build())
    lines = [
        (x.findtext("AmountInTransactionCurrency"), x.findtext("DebitCreditCode"))
        for x in je
        if x.tag in ("Item", "DebtorItem")
    ]
    assert lines == [("-5000.00", "H"), ("-10000.00", "H"), ("-0.50", "H"), ("15000.50", "S")]
    amounts = [e for e in je.iter() if e.tag.startswith("Amount")]
    assert len(amounts) == 4
    assert all(e.get("currencyCode") == "LKR" for e in amounts)
    debtor = je.find("DebtorItem")
    assert debtor.findtext("Debtor") == "10000001"
    assert debtor.findtext("AssignmentReference") == "B-000123"


@pytest.mark.parametrize(
    ("currency", "decimals", "debit", "expected"),
    [
        ("JPY", 0, Decimal("15000"), ["15000", "-15000"]),
        ("JPY", 0, Decimal("1.5E+4"), ["15000", "-15000"]),
        ("KWD", 3, Decimal("12.5"), ["12.500", "-12.500"]),
    ],
)
def test_currency_decimals(
    currency: str, decimals: int, debit: Decimal, expected: list[str]
) -> None:
    entry = make_entry(
        currency=currency,
        currency_decimals=decimals,
        items=(GLItem("41000000", -debit),),
        debtor_items=(DebtorItem("10000001", debit),),
    )
    je = journal_entry(build(entry))
    amounts = [e for e in je.iter("AmountInTransactionCurrency")]
    assert sorted(e.text for e in amounts) == sorted(expected)
    assert {e.get("currencyCode") for e in amounts} == {currency}


def test_too_many_decimals_for_currency() -> None:
    entry = make_entry(
        currency="JPY",
        currency_decimals=0,
        items=(GLItem("4100", Decimal("-10.5")),),
        debtor_items=(DebtorItem("1", Decimal("10.5")),),
    )
    with pytest.raises(ValueError, match="decimals"):
        build(entry)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"document_reference_id": "X" * 17}, "DocumentReferenceID"),
        ({"message_id": "M" * 36}, "MessageHeader/ID"),
        ({"created_by": "U" * 13}, "CreatedByUser"),
        ({"reference1": "R" * 21}, "Reference1InDocumentHeader"),
        ({"company_code": "10000"}, "CompanyCode"),
        ({"items": (GLItem("1" * 11, Decimal("-1")),)}, "GLAccount"),
        ({"items": (GLItem("4100", Decimal("-1"), profit_center="P" * 11),)}, "ProfitCenter"),
        ({"items": (GLItem("4100", Decimal("-1"), cost_center="C" * 11),)}, "CostCenter"),
        ({"debtor_items": (DebtorItem("1" * 11, Decimal("1")),)}, "Debtor"),
        ({"debtor_items": (DebtorItem("1", Decimal("1"), assignment="A" * 19),)}, "Assignment"),
    ],
)
def test_length_limits_raise(changes: dict[str, object], field: str) -> None:
    entry = make_entry(
        items=(GLItem("4100", Decimal("-1")),), debtor_items=(DebtorItem("1", Decimal("1")),)
    )
    with pytest.raises(ValueError, match=field):
        build(replace(entry, **changes))


def test_limits_at_maximum_pass_and_texts_are_truncated() -> None:
    entry = make_entry(
        document_reference_id="X" * 16,
        message_id="M" * 35,
        created_by="U" * 12,
        header_text="H" * 40,
        items=(GLItem("1" * 10, Decimal("-1"), "T" * 80),),
        debtor_items=(DebtorItem("1" * 10, Decimal("1"), "<b>&'\"", "A" * 18),),
    )
    je = journal_entry(build(entry))
    assert je.findtext("DocumentHeaderText") == "H" * 25
    assert je.findtext("Item/DocumentItemText") == "T" * 50
    assert je.findtext("DebtorItem/DocumentItemText") == "<b>&'\"", "escaped and read back"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"debtor_items": (DebtorItem("1", Decimal("15000.49")),)}, "balance"),
        ({"items": (), "debtor_items": ()}, "lines"),
        ({"items": (GLItem("4100", Decimal("0")),), "debtor_items": ()}, "zero"),
        (
            {
                "items": (GLItem("4100", Decimal("-1")),) * 999,
                "debtor_items": (DebtorItem("1", Decimal("999")),),
            },
            "lines",
        ),
        ({"currency": "lkr"}, "currency"),
    ],
)
def test_invalid_entries_raise(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(make_entry(**changes))


def test_999_lines_are_allowed() -> None:
    entry = make_entry(
        items=(GLItem("4100", Decimal("-1")),) * 998,
        debtor_items=(DebtorItem("1", Decimal("998")),),
    )
    assert journal_entry(build(entry)).find("DebtorItem/ReferenceDocumentItem").text == "999"


def test_float_amount_and_naive_now_refused() -> None:
    with pytest.raises(TypeError):
        build(make_entry(items=(GLItem("4100", -15000.5),)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone"):
        build_request(make_entry(), now=datetime(2026, 3, 15), message_uuid=UUID)
    with pytest.raises(ValueError, match="UUID"):
        build_request(make_entry(), now=NOW, message_uuid="not-a-uuid")


def test_an_entry_survives_json_storage_exactly() -> None:
    original = make_entry()
    stored = json.loads(json.dumps(entry_to_json(original)))
    assert entry_from_json(stored) == original
    assert stored["items"][0]["amount"] == str(original.items[0].amount)


def test_reversal_swaps_signs() -> None:
    original = make_entry()
    reversal = build_reversal(
        original,
        document_reference_id="B-000123-R",
        message_id="HMIS-B-000123-R",
        header_text="Reversal B-000123",
    )
    je = journal_entry(
        ET.fromstring(build_request(reversal, now=NOW, message_uuid=str(uuid.uuid4())))
    )
    codes = [
        (x.findtext("AmountInTransactionCurrency"), x.findtext("DebitCreditCode"))
        for x in je
        if x.tag in ("Item", "DebtorItem")
    ]
    assert codes == [("5000.00", "S"), ("10000.00", "S"), ("0.50", "S"), ("-15000.50", "H")]
    assert je.findtext("DocumentReferenceID") == "B-000123-R"
    assert reversal.items[0].profit_center == "PC100"
    assert original.items[0].amount == Decimal("-5000.00"), "original untouched"


# ---------------------------------------------------------------- confirmation parsing


def test_success_sample() -> None:
    body = spec("sample-JournalEntryBulkCreateConfirmation-success.soap11.xml").read_bytes()
    result = parse_confirmation(body, message_id=SUB)
    assert (result.accounting_document, result.company_code, result.fiscal_year) == (
        "0100000008",
        "1410",
        "2024",
    )
    assert [(m.type_id, m.severity) for m in result.messages] == [("605(RW)", 1)]
    assert result.messages[0].note.startswith("Document posted successfully: BKPFF 0100000008")


def test_error_sample_is_rejected_with_f5_notes() -> None:
    body = spec("sample-JournalEntryBulkCreateConfirmation-error.soap12.xml").read_bytes()
    with pytest.raises(SapRejectedError) as caught:
        parse_confirmation(body, message_id=SUB)
    error = caught.value
    assert error.detail.startswith("SAP rejected the journal entry: Customer 2 is not defined")
    assert "G/L account 1002010100 is not defined in chart of accounts YCOA" in error.detail
    assert error.detail.count("Customer 2 is not defined") == 1, "duplicates collapsed"
    assert [m.type_id for m in error.messages] == [
        "609(RW)",
        "102(F5)",
        "102(F5)",
        "104(F5)",
        "104(F5)",
        "507(F5)",
        "004(FH)",
    ]
    assert all(m.severity == 3 for m in error.messages)
    assert not any("http" in m.note for m in error.messages)


def test_soap_fault_is_ambiguous() -> None:
    body = spec("sample-soap-fault-web-service-processing-error.xml").read_bytes()
    with pytest.raises(SapAmbiguousError, match="Web service processing error") as caught:
        parse_confirmation(body, message_id=SUB)
    assert not isinstance(caught.value, SapRejectedError)


def test_soap12_fault_with_other_prefixes_is_ambiguous() -> None:
    body = (
        b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><s:Fault>'
        b"<s:Code><s:Value>s:Receiver</s:Value></s:Code>"
        b'<s:Reason><s:Text xml:lang="en">Schema check failed</s:Text></s:Reason>'
        b"</s:Fault></s:Body></s:Envelope>"
    )
    with pytest.raises(SapAmbiguousError, match="Schema check failed"):
        parse_confirmation(body, message_id=SUB)


def _success_text() -> str:
    return spec("sample-JournalEntryBulkCreateConfirmation-success.soap11.xml").read_text()


def test_unknown_elements_and_prefixes_are_tolerated() -> None:
    text = _success_text().replace("<Log>", "<Log><Extra><Nested>1</Nested></Extra>")
    text = text.replace(
        "<AccountingDocument>", "<NewField2030>x</NewField2030><AccountingDocument>"
    )
    text = text.replace("soap-env:", "S:").replace("xmlns:soap-env", "xmlns:S")
    text = text.replace("n0:", "sfin:").replace("xmlns:n0", "xmlns:sfin")
    result = parse_confirmation(text.encode(), message_id=SUB)
    assert result.accounting_document == "0100000008"


@pytest.mark.parametrize("number", ["0000000000", " ", ""])
def test_zero_or_blank_document_is_rejected(number: str) -> None:
    text = _success_text().replace(
        "<AccountingDocument>0100000008<", f"<AccountingDocument>{number}<"
    )
    with pytest.raises(SapRejectedError, match="SAP rejected the journal entry"):
        parse_confirmation(text.encode(), message_id=SUB)


def test_missing_document_is_rejected() -> None:
    text = _success_text().replace("<AccountingDocument>0100000008</AccountingDocument>", "")
    with pytest.raises(SapRejectedError):
        parse_confirmation(text.encode(), message_id=SUB)


def test_error_severity_with_a_document_is_ambiguous() -> None:
    """A document number with severity 3: SAP may hold the document, so read back."""
    text = _success_text().replace("<SeverityCode>1<", "<SeverityCode>3<")
    text = text.replace("Document posted successfully", "Balance in transaction currency")
    with pytest.raises(SapAmbiguousError, match=r"0100000008.*Balance in transaction") as caught:
        parse_confirmation(text.encode(), message_id=SUB)
    assert not isinstance(caught.value, SapRejectedError)
    text = _success_text().replace(
        "<MaximumLogItemSeverityCode>1<", "<MaximumLogItemSeverityCode>3<"
    )
    with pytest.raises(SapAmbiguousError, match="may hold the document"):
        parse_confirmation(text.encode(), message_id=SUB)
    bulk_error = (
        "<Log><MaximumLogItemSeverityCode>3</MaximumLogItemSeverityCode><Item>"
        "<TypeID>999(XX)</TypeID><SeverityCode>3</SeverityCode><Note>Bulk failed</Note></Item>"
        "</Log>"
    )
    text = _success_text().replace("<Log/>", bulk_error)
    with pytest.raises(SapAmbiguousError, match="Bulk failed"):
        parse_confirmation(text.encode(), message_id=SUB)


@pytest.mark.parametrize("number", ["0000000000", " ", ""])
def test_error_severity_without_a_document_is_rejected(number: str) -> None:
    text = _success_text().replace("<SeverityCode>1<", "<SeverityCode>3<")
    text = text.replace("<AccountingDocument>0100000008<", f"<AccountingDocument>{number}<")
    with pytest.raises(SapRejectedError, match="Document posted"):
        parse_confirmation(text.encode(), message_id=SUB)


def test_warning_does_not_reject() -> None:
    text = _success_text().replace("<SeverityCode>1<", "<SeverityCode>2<")
    assert parse_confirmation(text.encode(), message_id=SUB).messages[0].severity == 2


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml at all",
        b"<html><body>502 Bad Gateway</body></html>",
        b'<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/">'
        b"<soap-env:Body/></soap-env:Envelope>",
        b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>',
    ],
)
def test_unreadable_answers_are_ambiguous(body: bytes) -> None:
    with pytest.raises(SapAmbiguousError, match="unreadable answer"):
        parse_confirmation(body, message_id=SUB)


def test_bulk_confirmation_without_entry_is_ambiguous() -> None:
    text = _success_text()
    start = text.index("<JournalEntryCreateConfirmation>")
    end = text.rindex("</JournalEntryCreateConfirmation>") + len(
        "</JournalEntryCreateConfirmation>"
    )
    with pytest.raises(SapAmbiguousError, match="unreadable answer"):
        parse_confirmation((text[:start] + text[end:]).encode(), message_id=SUB)


def test_bulk_log_error_without_entry_is_rejected() -> None:
    text = _success_text()
    start = text.index("<JournalEntryCreateConfirmation>")
    end = text.rindex("</JournalEntryCreateConfirmation>") + len(
        "</JournalEntryCreateConfirmation>"
    )
    log = (
        "<Log><MaximumLogItemSeverityCode>3</MaximumLogItemSeverityCode><Item>"
        "<TypeID>727(F5)</TypeID><SeverityCode>3</SeverityCode>"
        "<Note>Maximum number of items in FI reached</Note></Item></Log>"
    )
    text = (text[:start] + text[end:]).replace("<Log/>", log)
    with pytest.raises(SapRejectedError, match="Maximum number of items") as caught:
        parse_confirmation(text.encode(), message_id=SUB)
    assert caught.value.messages[0].type_id == "727(F5)"


def test_document_without_fiscal_year_is_ambiguous() -> None:
    text = _success_text().replace("<FiscalYear>2024<", "<FiscalYear>0000<")
    with pytest.raises(SapAmbiguousError, match="fiscal year") as caught:
        parse_confirmation(text.encode(), message_id=SUB)
    assert not isinstance(caught.value, SapRejectedError)


# ---------------------------------------------------------- which confirmation answers us


def _inner(text: str) -> str:
    """The success sample's inner JournalEntryCreateConfirmation element."""
    tag = "JournalEntryCreateConfirmation>"
    start = text.index("<" + tag)
    end = text.rindex("</" + tag) + len("</" + tag)
    return text[start:end]


def _with_confirmations(*inner: str) -> bytes:
    text = _success_text()
    own = _inner(text)
    return text.replace(own, "".join(inner)).encode()


def _rejected(reference_id: str) -> str:
    return (
        _inner(_success_text())
        .replace(SUB, reference_id)
        .replace("<AccountingDocument>0100000008<", "<AccountingDocument> <")
        .replace("<SeverityCode>1<", "<SeverityCode>3<")
        .replace("<MaximumLogItemSeverityCode>1<", "<MaximumLogItemSeverityCode>3<")
        .replace("Document posted successfully: BKPFF 010000000814102024", "Error in document")
    )


def _posted(reference_id: str, number: str = "0100000008") -> str:
    return (
        _inner(_success_text())
        .replace(SUB, reference_id)
        .replace("<AccountingDocument>0100000008<", f"<AccountingDocument>{number}<")
    )


def test_the_confirmation_for_the_message_sent_is_read_not_the_first() -> None:
    body = _with_confirmations(_posted("OTHER-REF", "0199999999"), _rejected(SUB))
    with pytest.raises(SapRejectedError, match="Error in document"):
        parse_confirmation(body, message_id=SUB)
    body = _with_confirmations(_rejected("OTHER-REF"), _posted(SUB))
    result = parse_confirmation(body, message_id=SUB)
    assert result.accounting_document == "0100000008"
    assert [m.severity for m in result.messages] == [1], "the other entry's log is not ours"


def test_no_confirmation_for_the_message_sent_is_ambiguous() -> None:
    body = _with_confirmations(_posted("OTHER-REF", "0199999999"))
    with pytest.raises(SapAmbiguousError, match="no confirmation for the message sent") as caught:
        parse_confirmation(body, message_id=SUB)
    assert "OTHER-REF" in caught.value.detail
    body = _with_confirmations(_posted("OTHER-REF"), _posted("THIRD"))
    with pytest.raises(SapAmbiguousError, match="no confirmation for the message sent"):
        parse_confirmation(body, message_id=SUB)
    blank = _posted(SUB).replace(f"<ReferenceID>{SUB}</ReferenceID>", "")
    body = _with_confirmations(blank, _posted("OTHER-REF"))
    with pytest.raises(SapAmbiguousError, match="no confirmation for the message sent"):
        parse_confirmation(body, message_id=SUB)


def test_a_lone_confirmation_without_reference_id_is_accepted() -> None:
    text = _success_text().replace(f"<ReferenceID>{SUB}</ReferenceID>", "")
    assert parse_confirmation(text.encode(), message_id="ANY").accounting_document == "0100000008"


def test_two_confirmations_for_the_message_sent_are_ambiguous() -> None:
    body = _with_confirmations(_posted(SUB), _posted(SUB, "0100000009"))
    with pytest.raises(SapAmbiguousError, match="2 confirmations"):
        parse_confirmation(body, message_id=SUB)


def test_the_reference_id_sits_in_the_confirmation_message_header() -> None:
    """WSDL: JournalEntryCreateConfirmationMessage/MessageHeader is a
    BusinessDocumentMessageHeader, whose ReferenceID is the one compared."""
    assert wsdl_sequence("JournalEntryCreateConfirmationMessage")[0] == "MessageHeader"
    assert "ReferenceID" in wsdl_sequence("BusinessDocumentMessageHeader")


_FIELDS = st.sampled_from(
    ["document_reference_id", "reference1", "created_by", "company_code", "message_id"]
)


@settings(max_examples=200, deadline=None)
@given(
    field=_FIELDS,
    value=st.text(max_size=40),
    account=st.text(max_size=12),
    amount=st.decimals(min_value=-(10**23), max_value=10**23, places=3, allow_nan=False),
)
def test_check_request_refuses_exactly_what_build_request_refuses(
    field: str, value: str, account: str, amount: Decimal
) -> None:
    """The push checks an entry without rendering it; the two must never disagree."""
    entry = make_entry(
        **{field: value},
        items=(GLItem(account, -amount), GLItem("43000000", Decimal("-0.50"))),
        debtor_items=(DebtorItem("10000001", amount + Decimal("0.50")),),
    )
    outcomes = []
    for run in (lambda: check_request(entry), lambda: build(entry)):
        try:
            run()
            outcomes.append(None)
        except ValueError as error:
            outcomes.append(str(error))
    assert outcomes[0] == outcomes[1]
