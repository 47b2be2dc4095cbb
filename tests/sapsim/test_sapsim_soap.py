import asyncio
import time
from xml.etree import ElementTree as ET

import pytest

from sapsim import SimConfig
from sapsim.specs import JOURNAL_ENTRY_WSDL
from sapsim.xsd import load_wsdl_schema

SFIN = "http://sap.com/xi/SAPSCORE/SFIN"


async def test_success_confirmation_is_shaped_like_sap(sap, state):
    response = await sap.post_xml(sap.request_xml(sap.bill(), message_id="MSG_2026-03-15"))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert "<n0:JournalEntryBulkCreateConfirmation" in response.text
    assert "<ConfirmationInterfaceOrignName/>" in response.text
    confirmation = sap.parse(response.text)
    assert confirmation.reference_id == "MSG_2026-03-15"
    assert confirmation.root.findtext("MessageHeader/UUID")
    assert confirmation.root.find("Log") is not None
    [entry] = confirmation.entries
    assert entry.reference_id == "HMIS-B-000123-1"
    assert (entry.document, entry.company_code, entry.fiscal_year) == ("0100000001", "1000", "2026")
    assert entry.max_severity == "1"
    assert entry.items == [
        ("605(RW)", "1", "Document posted successfully: BKPFF 010000000110002026 0SIMCLNT100")
    ]
    web_uri = confirmation.root.findtext("JournalEntryCreateConfirmation/Log/Item/WebURI")
    assert "OBJECT=RW605" in web_uri and "MSGV2=010000000110002026" in web_uri
    [document] = state.ledger.documents.values()
    assert document.reference_id == "B-000123"
    assert document.reference1 == "HMIS-BILL-000123"
    assert [line.account_type for line in document.lines] == ["S", "D"]


async def test_document_numbers_are_sequential_and_fiscal_year_follows_posting_date(sap):
    first = await sap.post_one(ref="B-1")
    second = await sap.post_one(ref="B-2")
    next_year = await sap.post_one(ref="B-3", posting_date="2027-01-02")

    assert (first.document, second.document) == ("0100000001", "0100000002")
    assert (next_year.document, next_year.fiscal_year) == ("0100000001", "2027")


async def test_soap_12_request_gets_a_soap_12_answer(sap):
    response = await sap.post_xml(sap.request_xml(soap12=True), soap12=True)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/soap+xml")
    assert ET.fromstring(response.text).tag == "{http://www.w3.org/2003/05/soap-envelope}Envelope"
    assert sap.parse(response.text).entries[0].document == "0100000001"


async def test_each_entry_of_a_bulk_request_gets_its_own_confirmation(sap):
    confirmation = await sap.post(sap.bill(ref="B-1"), sap.bill(ref="B-2", company="9999"))

    ok, rejected = confirmation.entries
    assert (ok.reference_id, ok.document) == ("HMIS-B-1-1", "0100000001")
    assert (rejected.reference_id, rejected.max_severity) == ("HMIS-B-2-1", "3")


REVENUE = {"gl": "41000000", "amount": "-15000.00", "dc": "H", "profit_center": "PC100"}
PATIENT = {"debtor": "10000001", "amount": "15000.00", "dc": "S"}

REJECTIONS = {
    "balance": (
        {"items": [{**REVENUE, "amount": "-14000.00"}]},
        "702(F5)",
        "Balance in transaction currency",
    ),
    "unknown G/L account": (
        {"items": [{**REVENUE, "gl": "49999999"}]},
        "507(F5)",
        "G/L account 49999999 is not defined in chart of accounts YCOA",
    ),
    "reconciliation account on a G/L item": (
        {"items": [REVENUE], "debtors": [], "extra_item": {"gl": "12000000", "dc": "S"}},
        "354(F5)",
        "Account 12000000 in company code 1000 cannot be directly posted to",
    ),
    "unknown customer": (
        {"debtors": [{**PATIENT, "debtor": "10009999"}]},
        "102(F5)",
        "Customer 10009999 is not defined in company code 1000",
    ),
    "closed period": (
        {"posting_date": "2026-02-27"},
        "201(F5)",
        "Posting period 002 2026 is not open",
    ),
    "too many decimals": (
        {
            "items": [{**REVENUE, "amount": "-15000.005"}],
            "debtors": [{**PATIENT, "amount": "15000.005"}],
        },
        "003(ZSIM)",
        "Item 1: amount -15000.005 has more than 2 decimal places allowed for currency LKR",
    ),
    "decimals in JPY": (
        {
            "currency": "JPY",
            "items": [{**REVENUE, "amount": "-100.50"}],
            "debtors": [{**PATIENT, "amount": "100.50"}],
        },
        "003(ZSIM)",
        "Item 1: amount -100.50 has more than 0 decimal places allowed for currency JPY",
    ),
    "sign contradicts DebitCreditCode": (
        {
            "items": [{**REVENUE, "amount": "15000.00"}],
            "debtors": [{**PATIENT, "amount": "-15000.00"}],
        },
        "001(ZSIM)",
        "Item 1: amount 15000.00 contradicts debit/credit code H",
    ),
    "unknown company code": ({"company": "9999"}, "219(F2)", "Company code 9999 is not defined"),
    "unknown profit centre": (
        {"items": [{**REVENUE, "profit_center": "PC999"}]},
        "701(KM)",
        "Profit center A000/PC999 does not exist",
    ),
}


@pytest.fixture
def sim_config():
    return SimConfig(closed_periods={("1000", "2026-02")})


@pytest.mark.parametrize("case", list(REJECTIONS), ids=list(REJECTIONS))
async def test_business_rejection_comes_back_in_http_200(sap, state, case):
    overrides, type_id, note = REJECTIONS[case]
    overrides = dict(overrides)
    extra = overrides.pop("extra_item", None)
    entry = sap.bill(**overrides)
    if extra:  # the receivable posted as a G/L item on the reconciliation account
        entry["items"] = [*entry["items"], {**extra, "amount": "15000.00"}]

    result = (await sap.post(entry)).entries[0]

    assert (result.document, result.company_code, result.fiscal_year) == (" ", " ", "0000")
    assert result.max_severity == "3"
    assert result.items[0] == ("609(RW)", "3", "Error in document: BKPFF $ 0SIMCLNT100")
    assert (type_id, "3", note) in result.items
    assert state.ledger.documents == {}
    assert state.stats.soap_documents_rejected == 1


async def test_unknown_account_also_reports_fh_004_like_the_real_sample(sap):
    result = await sap.post_one(items=[{**REVENUE, "gl": "49999999"}])

    assert result.type_ids == ["609(RW)", "507(F5)", "004(FH)"]


async def test_more_than_999_lines_is_f5_727(sap):
    items = [{"gl": "41000000", "amount": "-1.00", "dc": "H"}] * 999
    result = await sap.post_one(items=items, debtors=[{**PATIENT, "amount": "999.00"}])

    assert "727(F5)" in result.type_ids


async def test_ar_gl_account_that_is_not_a_reconciliation_account_posts(sap, state):
    ar = {"gl": "12100000", "amount": "15000.00", "dc": "S"}
    result = await sap.post_one(items=[REVENUE, ar], debtors=[])

    assert result.document == "0100000001"
    [document] = state.ledger.documents.values()
    assert [line.account_type for line in document.lines] == ["S", "S"]


SCHEMA_FAULTS = {
    "Item child out of order": (
        "<DebitCreditCode>H</DebitCreditCode><DocumentItemText>Consultation</DocumentItemText>",
        "<DocumentItemText>Consultation</DocumentItemText><DebitCreditCode>H</DebitCreditCode>",
        "out of sequence order",
    ),
    "CostCenter directly under Item": (
        "<AccountAssignment><ProfitCenter>PC100</ProfitCenter></AccountAssignment>",
        "<CostCenter>CC100</CostCenter>",
        "'CostCenter' is not allowed",
    ),
    "CreationDateTime without Z": (
        "2026-03-15T10:00:00Z</CreationDateTime></MessageHeader><JournalEntryCreateRequest>",
        "2026-03-15T10:00:00</CreationDateTime></MessageHeader><JournalEntryCreateRequest>",
        "does not match the pattern",
    ),
    "missing currencyCode": (
        '<AmountInTransactionCurrency currencyCode="LKR">-15000.00',
        "<AmountInTransactionCurrency>-15000.00",
        "attribute 'currencyCode' is missing",
    ),
    "DocumentReferenceID over 16": (
        "<DocumentReferenceID>B-000123</DocumentReferenceID>",
        "<DocumentReferenceID>B-0001234567890123</DocumentReferenceID>",
        "exceeds the maximum length 16",
    ),
    "DocumentHeaderText over 25": (
        "<DocumentHeaderText>HMIS bill B-000123</DocumentHeaderText>",
        "<DocumentHeaderText>HMIS bill B-000123 for a patient</DocumentHeaderText>",
        "exceeds the maximum length 25",
    ),
    "missing mandatory CompanyCode": (
        "<CompanyCode>1000</CompanyCode>",
        "",
        "'CompanyCode' is missing",
    ),
    "namespace-qualified child": (
        "<MessageHeader><ID>MSG-000123</ID>",
        "<sfin:MessageHeader><ID>MSG-000123</ID>",
        "must not be namespace-qualified",
    ),
    "malformed XML": ("</soapenv:Envelope>", "", "not well-formed"),
}


@pytest.mark.parametrize("case", list(SCHEMA_FAULTS), ids=list(SCHEMA_FAULTS))
async def test_schema_violation_is_a_soap_fault(sap, state, client, case):
    old, new, reason = SCHEMA_FAULTS[case]
    xml = sap.request_xml()
    assert old in xml
    xml = xml.replace(old, new, 1)
    if case == "namespace-qualified child":
        xml = xml.replace(
            "</MessageHeader><JournalEntryCreateRequest>",
            "</sfin:MessageHeader><JournalEntryCreateRequest>",
            1,
        )

    response = await sap.post_xml(xml)

    assert response.status_code == 500
    fault = ET.fromstring(response.text).find(
        "{http://schemas.xmlsoap.org/soap/envelope/}Body/"
        "{http://schemas.xmlsoap.org/soap/envelope/}Fault"
    )
    assert fault.findtext("faultcode") == "soap-env:Server"
    assert fault.findtext("faultstring").startswith("Web service processing error; more details")
    assert fault.find("detail") is not None
    assert reason in response.headers["x-sapsim-fault-reason"]
    assert state.ledger.documents == {}
    log = (await client.get("/sim/errorlog")).json()["entries"]
    assert reason in log[-1]["reason"]


async def test_debtor_item_before_item_breaks_the_wsdl_sequence(sap):
    entry = sap.bill()
    xml = sap.request_xml(entry)
    item = xml[xml.index("<Item>") : xml.index("</Item>") + len("</Item>")]
    debtor = xml[xml.index("<DebtorItem>") : xml.index("</DebtorItem>") + len("</DebtorItem>")]
    swapped = xml.replace(item + debtor, debtor + item)

    response = await sap.post_xml(swapped)

    assert response.status_code == 500
    assert "'Item' is out of sequence order" in response.headers["x-sapsim-fault-reason"]


async def test_wrong_root_element_is_a_fault(sap):
    xml = sap.request_xml().replace("JournalEntryBulkCreateRequest", "JournalEntryCreateRequest")

    response = await sap.post_xml(xml)

    assert response.status_code == 500


def test_element_order_comes_from_the_wsdl():
    schema = load_wsdl_schema(JOURNAL_ENTRY_WSDL)

    item = schema.complex_types["JournalEntryCreateRequestJournalEntryItem"].particle_names()
    entry = schema.complex_types["JournalEntryCreateRequestJournalEntry"].particle_names()

    assert item.index("GLAccount") < item.index("AmountInTransactionCurrency")
    assert item.index("AccountAssignment") > item.index("DocumentItemText")
    assert "CostCenter" not in item
    assert entry.index("Item") < entry.index("DebtorItem") < entry.index("CreditorItem")


async def test_latency_overlaps_concurrent_postings(sap, state):
    state.faults.latency_ms = 300

    started = time.perf_counter()
    results = await asyncio.gather(*(sap.post_one(ref=f"B-{i}") for i in range(5)))
    elapsed = time.perf_counter() - started

    assert sorted(r.document for r in results) == [f"010000000{i}" for i in range(1, 6)]
    assert 0.3 <= elapsed < 1.0
