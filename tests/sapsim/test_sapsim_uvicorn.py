"""The simulator over real loopback HTTP: a dropped connection after the posting."""

import httpx
import pytest

from sapsim import SimServer


def test_commit_then_drop_breaks_the_connection_after_posting(sap_request_xml):
    with SimServer() as sim:
        sim.state.push_fault({"kind": "commit_then_drop"})
        with httpx.Client(
            base_url=sim.url, auth=("sim-client", "sim-secret"), timeout=10
        ) as client:
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                client.post(
                    "/sap/bc/srt/scs_ext/sap/journalentrycreaterequestconfi",
                    content=sap_request_xml,
                    headers={"Content-Type": "text/xml; charset=utf-8"},
                )

            ledger = client.get("/sim/ledger").json()
            again = client.post(
                "/sap/bc/srt/scs_ext/sap/journalentrycreaterequestconfi",
                content=sap_request_xml,
                headers={"Content-Type": "text/xml; charset=utf-8"},
            )

    assert ledger["count"] == 1
    assert ledger["documents"][0]["number"] == "0100000001"
    assert again.status_code == 200
    assert "<AccountingDocument>0100000002</AccountingDocument>" in again.text


@pytest.fixture
def sap_request_xml(journal_request) -> bytes:
    return journal_request().encode()
