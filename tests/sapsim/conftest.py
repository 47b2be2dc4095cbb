"""Fixtures for the SAP simulator tests: an in-process simulator, an httpx client on it and a
tiny, test-local SOAP request builder and confirmation parser (independent of app/sap)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree as ET

import httpx
import pytest
from fastapi import FastAPI

from sapsim import SimConfig, SimState, create_sim_app, sim_state

SOAP_PATH = "/sap/bc/srt/scs_ext/sap/journalentrycreaterequestconfi"
TOKEN_PATH = "/sap/bc/sec/oauth2/token"
CUBE_PATH = "/sap/opu/odata/sap/API_OPLACCTGDOCITEMCUBE_SRV/A_OperationalAcctgDocItemCube"
AUTH = ("sim-client", "sim-secret")
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SFIN = "http://sap.com/xi/SAPSCORE/SFIN"


def _el(name: str, value: Any, attrs: str = "") -> str:
    return "" if value is None else f"<{name}{attrs}>{value}</{name}>"


def bill(**overrides: Any) -> dict[str, Any]:
    """A balanced hospital bill: revenue credit on a G/L item, receivable on a DebtorItem."""
    ref = overrides.pop("ref", "B-000123")
    entry: dict[str, Any] = {
        "id": f"HMIS-{ref}-1",
        "company": "1000",
        "doc_type": "DR",
        "ref": ref,
        "header_text": f"HMIS bill {ref}",
        "ref1": f"HMIS-BILL-{ref[-6:]}",
        "created_by": "HMIS_COMM",
        "posting_date": "2026-03-15",
        "document_date": "2026-03-15",
        "currency": "LKR",
        "items": [
            {
                "gl": "41000000",
                "amount": "-15000.00",
                "dc": "H",
                "text": "Consultation",
                "profit_center": "PC100",
            },
        ],
        "debtors": [{"debtor": "10000001", "amount": "15000.00", "dc": "S", "assignment": ref}],
    }
    entry.update(overrides)
    return entry


def _item_xml(number: int, item: dict[str, Any], currency: str) -> str:
    assignment = ""
    if item.get("profit_center") or item.get("cost_center"):
        assignment = (
            "<AccountAssignment>"
            + _el("ProfitCenter", item.get("profit_center"))
            + _el("CostCenter", item.get("cost_center"))
            + "</AccountAssignment>"
        )
    return (
        "<Item>"
        + _el("ReferenceDocumentItem", number)
        + _el("GLAccount", item["gl"])
        + _el("AmountInTransactionCurrency", item["amount"], f' currencyCode="{currency}"')
        + _el("DebitCreditCode", item.get("dc"))
        + _el("DocumentItemText", item.get("text"))
        + assignment
        + "</Item>"
    )


def _debtor_xml(number: int, debtor: dict[str, Any], currency: str) -> str:
    return (
        "<DebtorItem>"
        + _el("ReferenceDocumentItem", number)
        + _el("Debtor", debtor["debtor"])
        + _el("AmountInTransactionCurrency", debtor["amount"], f' currencyCode="{currency}"')
        + _el("DebitCreditCode", debtor.get("dc"))
        + _el("AssignmentReference", debtor.get("assignment"))
        + "</DebtorItem>"
    )


def entry_xml(entry: dict[str, Any], creation: str) -> str:
    currency = entry["currency"]
    items = "".join(_item_xml(i, it, currency) for i, it in enumerate(entry["items"], 1))
    offset = len(entry["items"])
    debtors = "".join(
        _debtor_xml(offset + i, d, currency) for i, d in enumerate(entry["debtors"], 1)
    )
    return (
        "<JournalEntryCreateRequest>"
        f"<MessageHeader><ID>{entry['id']}</ID><CreationDateTime>{creation}</CreationDateTime>"
        "</MessageHeader><JournalEntry>"
        "<OriginalReferenceDocumentType>BKPFF</OriginalReferenceDocumentType>"
        "<BusinessTransactionType>RFBU</BusinessTransactionType>"
        + _el("AccountingDocumentType", entry["doc_type"])
        + _el("DocumentReferenceID", entry.get("ref"))
        + _el("DocumentHeaderText", entry.get("header_text"))
        + _el("CreatedByUser", entry["created_by"])
        + _el("CompanyCode", entry["company"])
        + _el("DocumentDate", entry["document_date"])
        + _el("PostingDate", entry["posting_date"])
        + _el("Reference1InDocumentHeader", entry.get("ref1"))
        + items
        + debtors
        + "</JournalEntry></JournalEntryCreateRequest>"
    )


def request_xml(
    *entries: dict[str, Any],
    message_id: str = "MSG-000123",
    soap12: bool = False,
    creation: str = "2026-03-15T10:00:00Z",
) -> str:
    """A ``JournalEntryBulkCreateRequest`` envelope in WSDL element order."""
    ns = SOAP12 if soap12 else SOAP11
    body = "".join(entry_xml(e, creation) for e in (entries or (bill(),)))
    return (
        f'<soapenv:Envelope xmlns:soapenv="{ns}" xmlns:sfin="{SFIN}"><soapenv:Header/>'
        "<soapenv:Body><sfin:JournalEntryBulkCreateRequest>"
        f"<MessageHeader><ID>{message_id}</ID><CreationDateTime>{creation}</CreationDateTime>"
        f"</MessageHeader>{body}</sfin:JournalEntryBulkCreateRequest></soapenv:Body>"
        "</soapenv:Envelope>"
    )


@dataclass
class EntryResult:
    reference_id: str | None
    document: str
    company_code: str
    fiscal_year: str
    max_severity: str
    items: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def type_ids(self) -> list[str]:
        return [item[0] for item in self.items]

    @property
    def notes(self) -> list[str]:
        return [item[2] for item in self.items]


@dataclass
class Confirmation:
    reference_id: str | None
    entries: list[EntryResult]
    root: ET.Element


def parse_confirmation(text: str) -> Confirmation:
    envelope = ET.fromstring(text)
    body = next(child for child in envelope if child.tag.endswith("Body"))
    root = body.find(f"{{{SFIN}}}JournalEntryBulkCreateConfirmation")
    assert root is not None, text
    entries = []
    for node in root.findall("JournalEntryCreateConfirmation"):
        key = node.find("JournalEntryCreateConfirmation")
        assert key is not None
        entries.append(
            EntryResult(
                reference_id=node.findtext("MessageHeader/ReferenceID"),
                document=key.findtext("AccountingDocument") or "",
                company_code=key.findtext("CompanyCode") or "",
                fiscal_year=key.findtext("FiscalYear") or "",
                max_severity=node.findtext("Log/MaximumLogItemSeverityCode") or "",
                items=[
                    (
                        i.findtext("TypeID") or "",
                        i.findtext("SeverityCode") or "",
                        i.findtext("Note") or "",
                    )
                    for i in node.findall("Log/Item")
                ],
            )
        )
    return Confirmation(root.findtext("MessageHeader/ReferenceID"), entries, root)


class Sap:
    """Talks to the simulator like the bridge would (Basic auth by default)."""

    SOAP_PATH = SOAP_PATH
    TOKEN_PATH = TOKEN_PATH
    CUBE_PATH = CUBE_PATH
    AUTH = AUTH
    bill = staticmethod(bill)
    request_xml = staticmethod(request_xml)
    parse = staticmethod(parse_confirmation)

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post_xml(self, xml: str, auth: Any = AUTH, soap12: bool = False) -> httpx.Response:
        content_type = "application/soap+xml" if soap12 else "text/xml"
        return await self.client.post(
            SOAP_PATH,
            content=xml.encode(),
            headers={"Content-Type": f"{content_type}; charset=utf-8"},
            auth=auth,
        )

    async def post(self, *entries: dict[str, Any], **kwargs: Any) -> Confirmation:
        response = await self.post_xml(request_xml(*entries, **kwargs))
        assert response.status_code == 200, response.text
        return parse_confirmation(response.text)

    async def post_one(self, **overrides: Any) -> EntryResult:
        return (await self.post(bill(**overrides))).entries[0]

    async def cube(self, params: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"Accept": "application/json", **kwargs.pop("headers", {})}
        return await self.client.get(
            CUBE_PATH, params=params, auth=kwargs.pop("auth", AUTH), headers=headers, **kwargs
        )

    async def token(self) -> str:
        response = await self.client.post(
            TOKEN_PATH, data={"grant_type": "client_credentials"}, auth=AUTH
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig()


@pytest.fixture
def sim_app(sim_config: SimConfig) -> FastAPI:
    return create_sim_app(sim_config)


@pytest.fixture
def state(sim_app: FastAPI) -> SimState:
    return sim_state(sim_app)


@pytest.fixture
async def client(sim_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sim_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sap.test") as c:
        yield c


@pytest.fixture
def sap(client: httpx.AsyncClient) -> Sap:
    return Sap(client)


@pytest.fixture
def journal_request():
    """The test-local request builder, for tests without the in-process client."""
    return request_xml
