import re
from datetime import UTC, datetime

import pytest

ITEM_TYPE = "API_OPLACCTGDOCITEMCUBE_SRV.A_OperationalAcctgDocItemCubeType"


async def test_read_back_by_company_code_and_document_reference(sap):
    await sap.post_one(ref="B-000001")
    await sap.post_one(ref="B-000002")

    response = await sap.cube(
        {
            "$filter": "CompanyCode eq '1000' and DocumentReferenceID eq 'B-000002' "
            "and PostingDate ge datetime'2026-03-01T00:00:00'",
            "$select": "CompanyCode,FiscalYear,AccountingDocument,AccountingDocumentItem,"
            "DocumentReferenceID,FinancialAccountType,GLAccount,Customer,ProfitCenter,"
            "AmountInTransactionCurrency,TransactionCurrency,DebitCreditCode,PostingDate,"
            "IsCleared,ClearingDate",
            "$orderby": "AccountingDocumentItem",
        }
    )

    assert response.status_code == 200
    rows = response.json()["d"]["results"]
    assert [r["AccountingDocument"] for r in rows] == ["0100000002", "0100000002"]
    revenue, receivable = rows
    assert revenue["__metadata"]["type"] == ITEM_TYPE
    assert revenue["__metadata"]["uri"].endswith(
        "A_OperationalAcctgDocItemCube(CompanyCode='1000',FiscalYear='2026',"
        "AccountingDocument='0100000002',AccountingDocumentItem='1')"
    )
    assert revenue["AccountingDocumentItem"] == "1"
    assert (revenue["FinancialAccountType"], revenue["GLAccount"]) == ("S", "41000000")
    assert revenue["AmountInTransactionCurrency"] == "-15000.00"
    assert (revenue["DebitCreditCode"], revenue["ProfitCenter"]) == ("H", "PC100")
    assert revenue["PostingDate"] == "/Date(1773532800000)/"
    assert revenue["IsCleared"] is False and revenue["ClearingDate"] is None
    assert set(revenue) == {"__metadata", *response.request.url.params["$select"].split(",")}
    assert (receivable["FinancialAccountType"], receivable["Customer"]) == ("D", "10000001")
    assert receivable["GLAccount"] == "12000000"  # the customer's reconciliation account
    assert receivable["AmountInTransactionCurrency"] == "15000.00"
    assert "__count" not in response.json()["d"] and "__next" not in response.json()["d"]


async def test_without_select_every_edmx_property_is_present(sap):
    await sap.post_one()

    row = (await sap.cube({"$top": "1"})).json()["d"]["results"][0]

    assert len(row) > 250
    assert row["IsReversal"] is False and row["ReverseDocument"] == ""
    assert row["Reference1InDocumentHeader"] == "HMIS-BILL-000123"
    assert row["AccountingDocumentHeaderText"] == "HMIS bill B-000123"
    assert re.fullmatch(r"/Date\(\d+\)/", row["DocumentDate"])
    assert row["AccountingDocumentType"] == "DR"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("FinancialAccountType eq 'D'", 2),
        ("FinancialAccountType ne 'D'", 2),
        ("AmountInTransactionCurrency gt 0", 2),
        ("AmountInTransactionCurrency le -15000.00M", 2),
        ("IsCleared eq false and (DocumentReferenceID eq 'O''BRIEN' or Customer eq 'X')", 2),
        ("not (DocumentReferenceID eq 'O''BRIEN')", 2),
        ("PostingDate lt datetime'2026-03-15T00:00:00'", 0),
        ("PostingDate le datetime'2026-03-15T00:00:00' and FiscalYear eq '2026'", 4),
        ("ClearingDate eq null", 4),
        ("startswith(DocumentReferenceID,'B-')", 2),
        ("substringof('BRI',DocumentReferenceID) eq true", 2),
    ],
)
async def test_filter_expressions(sap, expression, expected):
    await sap.post_one(ref="B-1")
    await sap.post_one(ref="O'BRIEN")

    response = await sap.cube({"$filter": expression})

    assert response.status_code == 200, response.text
    assert len(response.json()["d"]["results"]) == expected


@pytest.mark.parametrize("option", ["$filter", "$select", "$orderby"])
async def test_unknown_property_is_400_with_sap_error_envelope(sap, option):
    value = {"$filter": "ClearingJournalEntry eq '1'"}.get(option, "ClearingJournalEntry")

    response = await sap.cube({option: value})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"].startswith("/IWFND/CM_MGW/")
    assert error["message"] == {
        "lang": "en",
        "value": "Property 'ClearingJournalEntry' not found in type "
        "'A_OperationalAcctgDocItemCubeType'",
    }
    assert error["innererror"]["transactionid"]
    assert error["innererror"]["errordetails"][0]["severity"] == "error"


@pytest.mark.parametrize(
    "expression",
    ["CompanyCode eq", "CompanyCode eq 1000", "(CompanyCode eq '1000'", "CompanyCode"],
)
async def test_malformed_or_mistyped_filter_is_400(sap, expression):
    response = await sap.cube({"$filter": expression})

    assert response.status_code == 400
    assert response.json()["error"]["message"]["lang"] == "en"


async def test_errors_are_xml_when_json_was_not_asked_for(sap):
    response = await sap.cube({"$filter": "Foo eq 'x'"}, headers={"Accept": "application/xml"})

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/xml")
    assert "<code>/IWFND/CM_MGW/" in response.text
    assert "Property 'Foo' not found" in response.text


async def test_count_and_single_entity(sap):
    await sap.post_one()

    count = await sap.client.get(f"{sap.CUBE_PATH}/$count", auth=sap.AUTH)
    key = (
        "(CompanyCode='1000',FiscalYear='2026',"
        "AccountingDocument='0100000001',AccountingDocumentItem='2')"
    )
    single = await sap.client.get(
        f"{sap.CUBE_PATH}{key}", auth=sap.AUTH, params={"$format": "json"}
    )
    missing = await sap.client.get(
        f"{sap.CUBE_PATH}{key.replace('0100000001', '0100000009')}",
        auth=sap.AUTH,
        params={"$format": "json"},
    )

    assert count.text == "2"
    assert single.json()["d"]["Customer"] == "10000001"
    assert missing.status_code == 404


async def test_clearing_marks_the_receivable_line_cleared(sap, client):
    await sap.post_one()

    cleared = await client.post(
        "/sim/clear",
        json={
            "company_code": "1000",
            "fiscal_year": "2026",
            "accounting_document": "0100000001",
            "clearing_date": "2026-04-02",
        },
    )

    assert cleared.status_code == 200
    assert cleared.json()["payment_document"] == "1400000001"
    assert cleared.json()["cleared"] is True
    rows = (
        await sap.cube(
            {
                "$filter": "AccountingDocument eq '0100000001' and FinancialAccountType eq 'D'",
                "$select": "IsCleared,ClearingDate,"
                "ClearingAccountingDocument,ClearingDocFiscalYear",
            }
        )
    ).json()["d"]["results"]
    assert rows == [
        {
            "__metadata": rows[0]["__metadata"],
            "IsCleared": True,
            "ClearingDate": f"/Date({int(datetime(2026, 4, 2, tzinfo=UTC).timestamp()) * 1000})/",
            "ClearingAccountingDocument": "1400000001",
            "ClearingDocFiscalYear": "2026",
        }
    ]
    payment = (await sap.cube({"$filter": "AccountingDocumentType eq 'DZ'"})).json()["d"]["results"]
    assert {r["AccountingDocument"] for r in payment} == {"1400000001"}


async def test_partial_payments_clear_only_when_the_total_is_paid(sap, client):
    await sap.post_one()
    ref = {"company_code": "1000", "fiscal_year": "2026", "accounting_document": "0100000001"}

    first = await client.post("/sim/clear", json={**ref, "amount": "5000.00"})
    second = await client.post("/sim/clear", json={**ref, "amount": "10000.00"})
    third = await client.post("/sim/clear", json={**ref, "amount": "1.00"})

    assert (first.json()["cleared"], first.json()["open_amount"]) == (False, "10000.00")
    assert (second.json()["cleared"], second.json()["payment_document"]) == (True, "1400000002")
    assert third.status_code == 409
    open_items = await sap.cube({"$filter": "FinancialAccountType eq 'D' and IsCleared eq false"})
    assert open_items.json()["d"]["results"] == []


async def test_reversal_is_visible_in_the_cube(sap, client):
    await sap.post_one()

    response = await client.post(
        "/sim/reverse",
        json={"company_code": "1000", "fiscal_year": "2026", "accounting_document": "0100000001"},
    )

    assert response.status_code == 200
    rows = (
        await sap.cube({"$select": "AccountingDocument,IsReversal,IsReversed,ReverseDocument"})
    ).json()["d"]["results"]
    by_document = {r["AccountingDocument"]: r for r in rows}
    assert by_document["0100000001"]["IsReversed"] is True
    assert by_document["0100000001"]["ReverseDocument"] == "0100000002"
    assert by_document["0100000002"]["IsReversal"] is True


async def test_cube_rows_only_use_edmx_property_names(sap, client, state):
    from sapsim.cube import cube_rows, service

    await sap.post_one()
    await client.post(
        "/sim/clear",
        json={"company_code": "1000", "fiscal_year": "2026", "accounting_document": "1"},
    )

    properties = service().entity_set("A_OperationalAcctgDocItemCube").entity_type.properties
    for row in cube_rows(state):
        assert set(row) <= set(properties)


async def test_unknown_entity_set_and_unknown_service_are_gateway_404s(sap):
    headers = {"Accept": "application/json"}
    segment = await sap.client.get(
        "/sap/opu/odata/sap/API_OPLACCTGDOCITEMCUBE_SRV/A_JournalEntry",
        auth=sap.AUTH,
        headers=headers,
    )
    service = await sap.client.get(
        "/sap/opu/odata/sap/API_JOURNALENTRYITEMBASIC_SRV/JournalEntry",
        auth=sap.AUTH,
        headers=headers,
    )

    assert segment.status_code == 404
    assert segment.json()["error"]["code"] == "/IWFND/CM_MGW/051"
    assert service.status_code == 404
    assert service.json()["error"]["code"] == "/IWFND/MED/170"


async def test_csrf_token_fetch_and_metadata(sap):
    root = "/sap/opu/odata/sap/API_OPLACCTGDOCITEMCUBE_SRV/"
    head = await sap.client.head(root, auth=sap.AUTH, headers={"X-CSRF-Token": "Fetch"})
    metadata = await sap.client.get(f"{root}$metadata", auth=sap.AUTH)

    assert head.status_code == 200 and head.headers["x-csrf-token"]
    assert "A_OperationalAcctgDocItemCubeType" in metadata.text


async def test_uppercase_references_tenant_stores_and_filters_upper_case(sap, client):
    settings = await client.put("/sim/faults", json={"uppercase_references": True})
    await sap.post_one(ref="abc-1", ref1="hmis-bill-1")

    def by_reference(value):
        return {
            "$filter": f"DocumentReferenceID eq '{value}'",
            "$select": "DocumentReferenceID,Reference1InDocumentHeader",
        }

    lower = (await sap.cube(by_reference("abc-1"))).json()["d"]["results"]
    upper = (await sap.cube(by_reference("ABC-1"))).json()["d"]["results"]
    [document] = (await client.get("/sim/ledger")).json()["documents"]

    assert settings.json()["uppercase_references"] is True
    assert lower == []
    assert [(r["DocumentReferenceID"], r["Reference1InDocumentHeader"]) for r in upper] == [
        ("ABC-1", "HMIS-BILL-1"),
        ("ABC-1", "HMIS-BILL-1"),
    ]
    assert (document["reference_id"], document["reference1"]) == ("ABC-1", "HMIS-BILL-1")
    await client.post("/sim/reset")
    assert (await client.get("/sim/faults")).json()["uppercase_references"] is False
    await sap.post_one(ref="abc-1")
    assert len((await sap.cube(by_reference("abc-1"))).json()["d"]["results"]) == 2
