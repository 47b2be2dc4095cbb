"""Which SAP document belongs to which bill, after a lost answer too.

Each posting carries an identity the bridge gives it; a read-back takes a document as the
bill's only if its lines equal the stored entry; anything in doubt waits for an operator.
"""

from __future__ import annotations

import re
from decimal import Decimal

import httpx

from tests.billing.test_faults import wait_for_status
from tests.support.bridge import Bridge, bill

IDENTITY = re.compile(r"^H[BR][0-9A-HJKMNP-TV-Z]{14}$")
LOST = {"queue": [{"kind": "commit_then_drop"}]}


def ledger(sim: httpx.Client) -> list[dict]:
    return sim.get("/sim/ledger").json()["documents"]


def stats(sim: httpx.Client) -> dict:
    return sim.get("/sim/stats").json()


def naming(number: str, year: str) -> dict:
    """A resolve body naming a SAP document of company code 1000 (a note is added)."""
    return {"company_code": "1000", "fiscal_year": year, "sap_document_number": number}


def discounted(reference: str = "HMIS-D-1") -> dict:
    """OPD 5,000 + LAB 10,000 - discount 1,000: the discount is a debit on revenue."""
    return bill(
        reference,
        net_total="14000.00",
        items=[
            {"line_id": "1", "description": "Consult", "net_value": "5000.00", "department": "OPD"},
            {"line_id": "2", "description": "FBC", "net_value": "10000.00", "department": "LAB"},
            {"line_id": "3", "description": "Staff", "net_value": "-1000.00", "department": "DISC"},
        ],
    )


async def test_each_posting_has_its_own_upper_case_identity(
    bridge: Bridge, sim: httpx.Client
) -> None:
    async with bridge.client() as client:
        first = (await client.post("/bills/B-1/push", json=bill("hmis-shared"))).json()
        second = (await client.post("/bills/B-2/push", json=bill("hmis-shared"))).json()
    assert IDENTITY.match(first["document_reference_id"])
    assert first["document_reference_id"] != second["document_reference_id"]
    assert first["reference"] == second["reference"] == "hmis-shared"
    docs = ledger(sim)
    assert [d["reference_id"] for d in docs] == [
        first["document_reference_id"],
        second["document_reference_id"],
    ]
    assert {d["reference1"] for d in docs} == {"hmis-shared"}  # finance staff still see it


async def test_two_bills_one_reference_answers_lost_each_gets_its_own_document(
    bridge: Bridge, sim: httpx.Client
) -> None:
    async with bridge.client() as client:
        await client.post("/bills/B-1/push", json=bill("REF-SHARED-LONGER-THAN-16"))
        sim.put("/sim/faults", json=LOST).raise_for_status()
        response = await client.post("/bills/B-2/push", json=bill("REF-SHARED-LONGER-THAN-16"))
        assert response.status_code == 202, response.text
        second = await wait_for_status(client, "B-2", "posted")
        first = (await client.get("/bills/B-1")).json()
    assert first["sap_document_number"] != second["sap_document_number"]
    assert len(ledger(sim)) == 2
    assert stats(sim)["soap_posts"] == 2  # the lost answer was read back, not posted again


async def test_discount_bill_with_a_lost_answer_is_recognised_not_posted_again(
    bridge: Bridge, sim: httpx.Client
) -> None:
    sim.put("/sim/faults", json=LOST).raise_for_status()
    async with bridge.client() as client:
        assert (await client.post("/bills/B-D/push", json=discounted())).status_code == 202
        posted = await wait_for_status(client, "B-D", "posted")
    [doc] = ledger(sim)
    assert posted["sap_document_number"] == doc["number"]
    debits = sum(Decimal(x["amount"]) for x in doc["lines"] if Decimal(x["amount"]) > 0)
    assert debits == Decimal("15000.00")  # the receivable and the discount
    assert stats(sim)["soap_posts"] == 1


async def test_upper_casing_tenant_is_found_on_read_back(bridge: Bridge, sim: httpx.Client) -> None:
    sim.put("/sim/faults", json={"uppercase_references": True, **LOST}).raise_for_status()
    async with bridge.client() as client:
        await client.post("/bills/B-1/push", json=bill("hmis-lower-case"))
        await wait_for_status(client, "B-1", "posted")
    [doc] = ledger(sim)
    assert doc["reference1"] == "HMIS-LOWER-CASE"
    assert stats(sim)["soap_posts"] == 1


async def test_service_unavailable_page_is_retried_at_once_without_a_read_back(
    bridge: Bridge, sim: httpx.Client
) -> None:
    sim.put("/sim/faults", json={"queue": [{"kind": "status", "status": 503}]})
    async with bridge.client() as client:
        response = await client.post("/bills/B-1/push", json=bill())
        assert response.status_code == 202
        await wait_for_status(client, "B-1", "posted")
    assert stats(sim)["soap_posts"] == 2
    assert stats(sim)["odata_requests"] == 0  # a 503 page means nothing was processed


async def test_document_number_with_severity_3_is_read_back_not_rejected(
    bridge: Bridge, sim: httpx.Client
) -> None:
    sim.put("/sim/faults", json={"queue": [{"kind": "document_with_error"}]})
    async with bridge.client() as client:
        response = await client.post("/bills/B-1/push", json=bill())
        assert response.status_code == 202, response.text
        posted = await wait_for_status(client, "B-1", "posted")
    [doc] = ledger(sim)
    assert posted["sap_document_number"] == doc["number"]
    assert stats(sim)["soap_posts"] == 1


async def test_only_the_confirmation_of_the_message_sent_counts(
    bridge: Bridge, sim: httpx.Client
) -> None:
    sim.put("/sim/faults", json={"queue": [{"kind": "extra_confirmation"}]})
    async with bridge.client() as client:
        response = await client.post("/bills/B-1/push", json=bill())
    [doc] = ledger(sim)
    assert response.status_code == 201, response.text
    assert response.json()["sap_document_number"] == doc["number"] != "0199999999"


async def test_refused_read_back_needs_review_and_is_never_posted_again(
    bridge: Bridge, sim: httpx.Client
) -> None:
    faults = [{"kind": "commit_then_drop"}, {"kind": "status", "status": 403, "target": "odata"}]
    sim.put("/sim/faults", json={"queue": faults}).raise_for_status()
    async with bridge.client() as client:
        await client.post("/bills/B-1/push", json=bill())
        review = await wait_for_status(client, "B-1", "needs_review")
        listed = (await client.get("/bills", params={"status": "needs_review"})).json()
    assert "refused the read-back" in review["last_error"]
    assert [b["bill_id"] for b in listed["items"]] == ["B-1"]
    assert stats(sim)["soap_posts"] == 1
    [doc] = ledger(sim)
    async with bridge.admin() as admin:
        metrics = (await admin.get("/metrics")).text
        wrong = await admin.post(
            "/bills/B-1/resolve", json=naming("0100000999", "2024") | {"note": "typo"}
        )
        mine = naming(doc["number"], doc["fiscal_year"])
        resolved = await admin.post(
            "/bills/B-1/resolve", json=mine | {"note": "seen in Manage Journal Entries"}
        )
        again = await admin.post("/bills/B-1/resolve", json=mine | {"note": "twice"})
    assert "bridge_bills_needs_review 1.0" in metrics
    assert wrong.status_code == 409 and wrong.json()["status"] == "not_found_in_sap"
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "posted"
    assert resolved.json()["sap_document_number"] == doc["number"]
    assert again.status_code == 409 and "only bills that need review" in again.json()["detail"]


async def test_resolve_refuses_a_document_whose_lines_differ_or_another_bill_holds(
    bridge: Bridge, sim: httpx.Client
) -> None:
    async with bridge.client() as client:
        other = (await client.post("/bills/B-0/push", json=bill("OTHER"))).json()
        small = bill("SMALL", net_total="100.00")
        small["items"] = [small["items"][0] | {"net_value": "100.00"}]
        await client.post("/bills/B-S/push", json=small)
        faults = [
            {"kind": "commit_then_drop"},
            {"kind": "status", "status": 404, "target": "odata"},
        ]
        sim.put("/sim/faults", json={"queue": faults}).raise_for_status()
        await client.post("/bills/B-1/push", json=bill())
        await wait_for_status(client, "B-1", "needs_review")
    small_doc = next(d for d in ledger(sim) if d["reference1"] == "SMALL")

    async with bridge.admin() as admin:
        differ = await admin.post(
            "/bills/B-1/resolve", json=naming(small_doc["number"], "2024") | {"note": "x"}
        )
        held = await admin.post(
            "/bills/B-1/resolve",
            json=naming(other["sap_document_number"], other["fiscal_year"]) | {"note": "x"},
        )
        no_note = await admin.post("/bills/B-1/resolve", json=naming("1", "2024"))
    # B-0 has the same lines as B-1: only the unique document index tells them apart
    assert differ.status_code == 409 and differ.json()["status"] == "lines_differ"
    assert "10000.00" in differ.json()["detail"]
    assert held.status_code == 409 and held.json()["status"] == "held_by_another_bill"
    assert "B-0" in held.json()["detail"]
    assert no_note.status_code == 422


async def test_retry_of_a_bill_needing_review_gets_a_new_identity(
    bridge: Bridge, sim: httpx.Client
) -> None:
    faults = [
        {"kind": "status", "status": 504},
        {"kind": "status", "status": 403, "target": "odata"},
    ]
    sim.put("/sim/faults", json={"queue": faults}).raise_for_status()
    async with bridge.client() as client:
        await client.post("/bills/B-1/push", json=bill())
        review = await wait_for_status(client, "B-1", "needs_review")
    assert ledger(sim) == []  # the 504 came before SAP processed anything
    async with bridge.admin() as admin:
        retried = await admin.post("/bills/B-1/retry")
    assert retried.status_code == 201, retried.text
    assert retried.json()["document_reference_id"] != review["document_reference_id"]
    [doc] = ledger(sim)
    assert doc["reference_id"] == retried.json()["document_reference_id"]
