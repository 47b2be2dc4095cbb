"""SapClient: failure classes by evidence, `__next` on the configured host, read-back, waits."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from app.config.keys import PREFIX
from app.config.service import BridgeConfig
from app.sap.client import CUBE_PATH, FoundDocument, FoundLine, SapClient
from app.sap.errors import (
    SapAmbiguousError,
    SapConfigurationError,
    SapRejectedError,
    SapRetryableError,
)
from app.sap.journal_entry import SERVICE_PATH, DebtorItem, GLItem, JournalEntry

BASE = "https://sap.example.com"
ROOT = Path(__file__).resolve().parents[2]
MESSAGE_ID = "HMIS-B-000123-1"


def spec_text(name: str) -> str:
    """A file from SAP's specs: $SAP_SPECS_DIR, sapsim/specs or the shared contract folder."""
    dirs = [os.environ.get("SAP_SPECS_DIR", ""), ROOT / "sapsim" / "specs"]
    dirs += [ROOT.parent / "shared" / "sap" / "specs", "/work/shared/sap/specs"]
    for folder in dirs:
        if folder and (Path(folder) / name).is_file():
            return (Path(folder) / name).read_text()
    pytest.fail(f"SAP spec {name} not found; set SAP_SPECS_DIR")


def config(**changes: str) -> BridgeConfig:
    values = {
        "Enabled": "true",
        "Base URL": BASE,
        "Auth Method": "basic",
        "Client ID": "c",
        "Client Secret": "s",
        "Company Code": "1000",
        "AR Account": "1",
        "Revenue Account": "2",
        "Timeout Seconds": "5",
        "Max Concurrent Calls": "2",
    } | changes
    return BridgeConfig({PREFIX + k: v for k, v in values.items()})


def entry() -> JournalEntry:
    return JournalEntry(
        company_code="1000",
        document_date=date(2026, 3, 14),
        posting_date=date(2026, 3, 15),
        currency="LKR",
        currency_decimals=2,
        document_reference_id="B-000123",
        header_text="HMIS bill B-000123",
        reference1=None,
        created_by="HMIS_COMM",
        document_type="DR",
        message_id=MESSAGE_ID,
        items=(GLItem("41000000", Decimal("-100.00")),),
        debtor_items=(DebtorItem("10000001", Decimal("100.00")),),
    )


def confirmation(reference_id: str = MESSAGE_ID) -> str:
    text = spec_text("sample-JournalEntryBulkCreateConfirmation-success.soap11.xml")
    return text.replace("SUB_MSG_2024-03-28", reference_id)


@pytest.fixture
async def client() -> AsyncIterator[SapClient]:
    sap = SapClient()
    yield sap
    await sap.aclose()


# ------------------------------------------------------------ posting: failures by evidence

HTML_503 = (
    "<html><head><title>503 Service Unavailable</title></head>"
    "<body><h1>Service Unavailable</h1></body></html>"
)
FAULT = "sample-soap-fault-web-service-processing-error.xml"

TRANSPORT = [
    (httpx.ConnectError("refused"), SapRetryableError),
    (httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]"), SapRetryableError),
    (httpx.ConnectTimeout("connect"), SapRetryableError),
    (httpx.PoolTimeout("pool"), SapRetryableError),
    (httpx.ReadTimeout("read"), SapAmbiguousError),
    (httpx.ReadError("reset"), SapAmbiguousError),
    (httpx.RemoteProtocolError("Server disconnected"), SapAmbiguousError),
    (httpx.WriteError("broken pipe"), SapAmbiguousError),
    (httpx.WriteTimeout("write"), SapAmbiguousError),
    (httpx.DecodingError("bad gzip"), SapAmbiguousError),
]


@pytest.mark.parametrize(("exc", "kind"), TRANSPORT, ids=lambda v: type(v).__name__)
@respx.mock
async def test_transport_failures_are_classed_by_whether_the_request_went_out(
    client: SapClient, exc: Exception, kind: type[Exception]
) -> None:
    respx.post(BASE + SERVICE_PATH).mock(side_effect=exc)
    with pytest.raises(SapRetryableError) as caught:
        await client.post_journal_entry(config(), entry())
    assert type(caught.value) is kind


STATUSES = [
    (429, "", SapRetryableError),
    (503, HTML_503, SapRetryableError),
    (503, '{"error":{"code":"X","message":{"value":"down"}}}', SapRetryableError),
    (502, "<html>Bad Gateway</html>", SapAmbiguousError),
    (504, "<html>Gateway Timeout</html>", SapAmbiguousError),
    (500, "<html>Internal Server Error</html>", SapAmbiguousError),
    (500, "", SapAmbiguousError),
    (501, "", SapAmbiguousError),
    (200, "<html>hello</html>", SapAmbiguousError),
    (401, "<html>Logon Error</html>", SapConfigurationError),
    (403, "", SapConfigurationError),
    (400, "bad request", SapRejectedError),
]


@pytest.mark.parametrize(("status", "body", "kind"), STATUSES)
@respx.mock
async def test_http_answers_are_classed_by_what_they_prove(
    client: SapClient, status: int, body: str, kind: type[Exception]
) -> None:
    respx.post(BASE + SERVICE_PATH).respond(status, text=body, headers={"Retry-After": "7"})
    with pytest.raises(Exception) as caught:
        await client.post_journal_entry(config(), entry())
    assert type(caught.value) is kind
    if kind is SapRetryableError:
        assert caught.value.retry_after == 7


@respx.mock
async def test_soap_answers_are_parsed_for_the_message_sent(client: SapClient) -> None:
    route = respx.post(BASE + SERVICE_PATH)
    route.respond(200, text=confirmation())
    result = await client.post_journal_entry(config(), entry())
    assert result.accounting_document == "0100000008"
    sent = route.calls.last.request.content.decode()
    assert sent.count(f"<ID>{MESSAGE_ID}</ID>") == 2

    route.respond(200, text=confirmation("ANOTHER-MESSAGE"))
    with pytest.raises(SapAmbiguousError, match="no confirmation for the message sent"):
        await client.post_journal_entry(config(), entry())

    route.respond(500, text=spec_text(FAULT))
    with pytest.raises(SapAmbiguousError, match="SOAP fault"):
        await client.post_journal_entry(config(), entry())


# ------------------------------------------------------------ waits for a call slot, reported


class Watch:
    def __init__(self) -> None:
        self.heard: list[str] = []

    async def waiting(self) -> None:
        self.heard.append("waiting")

    async def sending(self) -> None:
        self.heard.append("sending")


@pytest.mark.parametrize(("busy_for", "heard"), [(0.1, []), (0.9, ["waiting", "sending"])])
@respx.mock
async def test_a_wait_for_a_call_slot_is_reported_once_it_lasts(
    client: SapClient, busy_for: float, heard: list[str]
) -> None:
    """The only slot is busy: a short wait is not reported (the outbox's usual turn-taking);
    one past WAIT_NOTICE_SECONDS is, and the send is announced just before it goes out."""
    respx.post(BASE + SERVICE_PATH).respond(200, text=confirmation())
    settings = config(**{"Max Concurrent Calls": "1"})
    conn = client._connection(settings)
    await conn.limit.acquire()
    watch = Watch()
    posting = asyncio.create_task(client.post_journal_entry(settings, entry(), watch=watch))
    await asyncio.sleep(busy_for)
    assert watch.heard == heard[:1]  # nothing sent while the slot is busy
    conn.limit.release()
    await posting
    assert watch.heard == heard


# ------------------------------------------------------------ the shed wait that is expiring


async def test_a_failure_while_a_shed_wait_is_expiring_does_not_crash(client: SapClient) -> None:
    """`_record(False)` runs after the wait's timeout fired (the Timeout is *expiring*: its
    task is cancelled but has not run yet). Rescheduling it raised "Cannot change state of
    expiring Timeout"; now it is skipped and the waiter ends with its own timeout."""
    conn = client._connection(config(**{"Max Concurrent Calls": "1"}))
    await conn.limit.acquire()  # every slot busy: the waiter waits
    loop = asyncio.get_running_loop()
    waiter = asyncio.create_task(
        client._local_turn(conn, "journal_entry.post", loop.time() + 0.05, shed=True)
    )
    while not client._sheddable:
        await asyncio.sleep(0)
    [wait] = client._sheddable
    while not wait.expired():  # the timeout fires; the waiter runs only after this task
        await asyncio.sleep(0)
    assert wait in client._sheddable and not waiter.done()
    client._record(False)  # raised RuntimeError before the fix
    with pytest.raises(SapRetryableError):
        await waiter
    assert not client._sheddable


async def test_a_failure_still_ends_the_shed_waits_that_are_not_expiring(
    client: SapClient,
) -> None:
    conn = client._connection(config(**{"Max Concurrent Calls": "1"}))
    await conn.limit.acquire()
    loop = asyncio.get_running_loop()
    started = loop.time()
    waiter = asyncio.create_task(
        client._local_turn(conn, "journal_entry.post", started + 30, shed=True)
    )
    while not client._sheddable:
        await asyncio.sleep(0)
    client._record(False)
    with pytest.raises(SapRetryableError, match="failed the last call"):
        await waiter
    assert loop.time() - started < 5


# ------------------------------------------------------------ OData paging and errors


def page(rows: list[dict[str, object]], next_url: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {"results": rows}
    if next_url:
        body["__next"] = next_url
    return {"d": body}


async def test_next_naming_another_host_is_fetched_from_the_configured_host(
    client: SapClient,
) -> None:
    path = "/sap/opu/odata/sap/API_X_SRV/A_Set"

    def answer(request: httpx.Request) -> httpx.Response:
        token = parse_qs(request.url.query.decode()).get("$skiptoken")
        if token is None:
            return httpx.Response(
                200, json=page([{"n": 1}], f"http://evil.example.net{path}?$skiptoken=2")
            )
        if token == ["2"]:
            return httpx.Response(200, json=page([{"n": 2}], "A_Set?$skiptoken=3"))
        return httpx.Response(200, json=page([{"n": 3}]))

    with respx.mock(assert_all_called=False) as router:
        elsewhere = router.route(host="evil.example.net").respond(200, json=page([]))
        plain = router.route(scheme="http").respond(200, json=page([]))
        ours = router.get(url__startswith=BASE + path).mock(side_effect=answer)
        rows = await client.get_all(config(), path, {"$filter": "x eq 'y'"}, operation="test")
    assert rows == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert ours.call_count == 3
    assert not elsewhere.called and not plain.called
    assert all(str(c.request.url).startswith(BASE + path + "?") for c in ours.calls)
    assert all(c.request.headers.get("Authorization") for c in ours.calls)


@respx.mock
async def test_odata_404_is_a_missing_communication_arrangement(client: SapClient) -> None:
    body = spec_text("sample-error-IWFND-MED-170-no-service.xml").replace(
        "API_JOURNALENTRYITEMBASIC_SRV", "API_OPLACCTGDOCITEMCUBE_SRV"
    )
    route = respx.get(url__startswith=BASE + CUBE_PATH).respond(404, text=body)
    with pytest.raises(SapConfigurationError) as caught:
        await client.find_journal_entries(config(), "1000", "B-1")
    detail = caught.value.detail
    assert "not reachable for this user" in detail
    assert "SAP_COM_0303" in detail and "API_OPLACCTGDOCITEMCUBE_SRV" in detail
    assert "No service found" in detail
    assert route.call_count == 1, "a configuration error is not retried"


@pytest.mark.parametrize("status", [401, 403])
@respx.mock
async def test_odata_refused_credentials_are_configuration(client: SapClient, status: int) -> None:
    respx.get(url__startswith=BASE + CUBE_PATH).respond(status)
    with pytest.raises(SapConfigurationError, match=f"HTTP {status}"):
        await client.get_journal_entry(config(), "1000", "2026", "0100000008")


# ------------------------------------------------------------ read-back with lines


def row(item: str, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "CompanyCode": "1000",
        "FiscalYear": "2026",
        "AccountingDocument": "0100000008",
        "AccountingDocumentItem": item,
        "DocumentReferenceID": "B-000123",
        "FinancialAccountType": "S",
        "GLAccount": "0041000000",
        "Customer": "",
        "DebitCreditCode": "H",
        "AmountInTransactionCurrency": "-100.000",
        "TransactionCurrency": "LKR",
        "IsReversal": False,
        "IsReversed": False,
        "ReverseDocument": "",
    }
    return base | fields


CUSTOMER_LINE = {
    "FinancialAccountType": "D",
    "GLAccount": "0012100000",  # the reconciliation account: not what the bill names
    "Customer": "0010000001",
    "DebitCreditCode": "S",
    "AmountInTransactionCurrency": "100.000",
}


def query_of(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query).items()}


@respx.mock
async def test_find_journal_entries_returns_documents_with_their_lines(client: SapClient) -> None:
    rows = [
        row("2"),
        row("1", **CUSTOMER_LINE),
        row("1", AccountingDocument="0100000009", IsReversed=True, DocumentReferenceID="b-1"),
    ]
    route = respx.get(url__startswith=BASE + CUBE_PATH).respond(200, json=page(rows))
    found = await client.find_journal_entries(config(), "1000", "B-000123")
    query = query_of(route.calls.last.request)
    assert query["$filter"] == "CompanyCode eq '1000' and DocumentReferenceID eq 'B-000123'"
    needed = {
        "FinancialAccountType",
        "GLAccount",
        "Customer",
        "DebitCreditCode",
        "AmountInTransactionCurrency",
        "TransactionCurrency",
        "AccountingDocumentItem",
        "DocumentReferenceID",
        "IsReversal",
        "IsReversed",
        "ReverseDocument",
    }
    assert needed <= set(query["$select"].split(","))
    assert query["$orderby"].endswith("AccountingDocumentItem")
    first, second = found
    assert first == FoundDocument(
        company_code="1000",
        fiscal_year="2026",
        accounting_document="0100000008",
        reference_id="B-000123",
        lines=(
            FoundLine("0010000001", "D", "S", Decimal("100.000"), "LKR"),
            FoundLine("0041000000", "S", "H", Decimal("-100.000"), "LKR"),
        ),
        is_reversal=False,
        is_reversed=False,
    )
    assert first.lines[0].amount == Decimal("100.00")
    assert second.accounting_document == "0100000009" and second.is_reversed
    assert second.reference_id == "b-1"


@respx.mock
async def test_a_reference_not_in_upper_case_is_looked_up_in_both_spellings(
    client: SapClient,
) -> None:
    route = respx.get(url__startswith=BASE + CUBE_PATH).respond(200, json=page([]))
    assert await client.find_journal_entries(config(), "1000", "hmis-b'1") == []
    assert query_of(route.calls.last.request)["$filter"] == (
        "CompanyCode eq '1000' and "
        "(DocumentReferenceID eq 'hmis-b''1' or DocumentReferenceID eq 'HMIS-B''1')"
    )


@pytest.mark.parametrize(
    ("fields", "is_reversal", "is_reversed"),
    [
        ({}, False, False),
        ({"IsReversed": True}, False, True),
        ({"ReverseDocument": "0100000042"}, False, True),  # the original names its reversal
        ({"IsReversal": True, "ReverseDocument": "0100000001"}, True, False),  # the reversal
        ({"IsReversal": True, "IsReversed": True}, True, True),
    ],
)
@respx.mock
async def test_reversal_flags(
    client: SapClient, fields: dict[str, object], is_reversal: bool, is_reversed: bool
) -> None:
    rows = [row("1", **CUSTOMER_LINE), row("2", **fields)]
    respx.get(url__startswith=BASE + CUBE_PATH).respond(200, json=page(rows))
    [document] = await client.find_journal_entries(config(), "1000", "B-000123")
    assert (document.is_reversal, document.is_reversed) == (is_reversal, is_reversed)


@respx.mock
async def test_get_journal_entry_filters_on_the_keys(client: SapClient) -> None:
    route = respx.get(url__startswith=BASE + CUBE_PATH)
    route.respond(200, json=page([row("1", **CUSTOMER_LINE), row("2")]))
    document = await client.get_journal_entry(config(), "1000", "2026", "100000008")
    assert query_of(route.calls.last.request)["$filter"] == (
        "CompanyCode eq '1000' and FiscalYear eq '2026' and AccountingDocument eq '0100000008'"
    )
    assert document is not None and len(document.lines) == 2
    assert document.lines[0].account == "0010000001"

    route.respond(200, json=page([]))
    assert await client.get_journal_entry(config(), "1000", "2026", "0100000099") is None


@respx.mock
async def test_an_unreadable_line_is_an_error_not_a_crash(client: SapClient) -> None:
    respx.get(url__startswith=BASE + CUBE_PATH).respond(
        200, json=page([row("1", AmountInTransactionCurrency="lots")])
    )
    with pytest.raises(Exception, match="unreadable journal entry item"):
        await client.find_journal_entries(config(), "1000", "B-000123")
