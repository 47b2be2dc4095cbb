import asyncio

import httpx
import pytest


async def _queue(client, *actions, **settings):
    response = await client.put("/sim/faults", json={"queue": list(actions), **settings})
    assert response.status_code == 200, response.text
    return response.json()


async def test_queued_503_and_429_carry_retry_after_and_post_nothing(sap, client, state):
    await _queue(
        client,
        {"kind": "status", "status": 503, "retry_after": 2},
        {"kind": "status", "status": 429, "retry_after": 1},
    )

    unavailable = await sap.post_xml(sap.request_xml())
    limited = await sap.post_xml(sap.request_xml())
    normal = await sap.post_xml(sap.request_xml())

    assert (unavailable.status_code, unavailable.headers["retry-after"]) == (503, "2")
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "1")
    assert sap.parse(normal.text).entries[0].document == "0100000001"
    assert len(state.ledger.documents) == 1
    assert state.stats.injected_faults == 2
    assert state.stats.soap_posts == 3


async def test_commit_then_status_posts_the_document_but_answers_504(sap, client):
    await _queue(client, {"kind": "commit_then_status", "status": 504})

    response = await sap.post_xml(sap.request_xml())

    assert response.status_code == 504
    ledger = (await client.get("/sim/ledger")).json()
    assert ledger["count"] == 1
    [document] = ledger["documents"]
    assert document["number"] == "0100000001"
    assert document["reference_id"] == "B-000123"
    assert [line["amount"] for line in document["lines"]] == ["-15000.00", "15000.00"]


async def test_commit_then_drop_in_process_raises_a_protocol_error(sap, client, state):
    state.push_fault({"kind": "commit_then_drop"})

    with pytest.raises(httpx.RemoteProtocolError):
        await sap.post_xml(sap.request_xml())

    assert len(state.ledger.documents) == 1


async def test_commit_then_slow_posts_first_and_answers_late(sap, client, state):
    await _queue(client, {"kind": "commit_then_slow", "delay_ms": 300})

    task = asyncio.create_task(sap.post_xml(sap.request_xml()))
    for _ in range(500):  # until the simulator has committed (no fixed sleep: loaded machines)
        if state.ledger.documents:
            break
        await asyncio.sleep(0.01)
    posted_before_answer = len(state.ledger.documents)
    answered_by_then = task.done()
    response = await task

    assert posted_before_answer == 1
    assert not answered_by_then
    assert response.status_code == 200


async def test_faults_can_target_odata_and_token_requests(sap, client):
    await _queue(
        client,
        {"kind": "status", "status": 503, "target": "odata"},
        {"kind": "status", "status": 429, "retry_after": 3, "target": "token"},
    )

    assert (await sap.cube()).status_code == 503
    token = await client.post(
        sap.TOKEN_PATH, data={"grant_type": "client_credentials"}, auth=sap.AUTH
    )
    assert token.status_code == 429
    assert (await sap.post_xml(sap.request_xml())).status_code == 200  # SOAP queue was empty
    assert (await sap.cube()).status_code == 200


async def test_down_answers_every_sap_route_503_until_turned_off(sap, client):
    await client.put("/sim/faults", json={"down": True, "down_retry_after": 5})

    token = await client.post(
        sap.TOKEN_PATH, data={"grant_type": "client_credentials"}, auth=sap.AUTH
    )
    soap = await sap.post_xml(sap.request_xml())
    odata = await sap.cube()
    stats = await client.get("/sim/stats")

    assert [r.status_code for r in (token, soap, odata)] == [503, 503, 503]
    assert soap.headers["retry-after"] == "5"
    assert stats.status_code == 200
    await client.put("/sim/faults", json={"down": False})
    assert (await sap.post_xml(sap.request_xml())).status_code == 200


async def test_reset_clears_ledger_stats_faults_and_tokens(sap, client, state):
    token = await sap.token()
    await sap.post_one()
    await _queue(client, {"kind": "status", "status": 503}, latency_ms=50)

    response = await client.post("/sim/reset")

    assert response.status_code == 200
    assert (await client.get("/sim/ledger")).json() == {"count": 0, "documents": []}
    faults = (await client.get("/sim/faults")).json()
    assert (faults["queue"], faults["latency_ms"]) == ([], 0)
    assert (await client.get("/sim/stats")).json()["soap_posts"] == 0
    refused = await sap.cube(auth=None, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    assert (await sap.post_one()).document == "0100000001"


async def test_stats_count_requests_by_route(sap, client):
    await sap.token()
    await sap.post_one()
    await sap.cube()
    await sap.cube(auth=None)

    stats = (await client.get("/sim/stats")).json()

    assert stats["token_requests"] == 1
    assert (stats["soap_posts"], stats["soap_documents_posted"]) == (1, 1)
    assert (stats["odata_requests"], stats["auth_failures"]) == (2, 1)
    cube_route = "GET /sap/opu/odata/sap/API_OPLACCTGDOCITEMCUBE_SRV/A_OperationalAcctgDocItemCube"
    assert stats["by_route"][cube_route] == 2


async def test_runtime_master_data_and_periods_fix_a_rejection(sap, client):
    rejected = await sap.post_one(debtors=[{"debtor": "INS-0099", "amount": "15000.00", "dc": "S"}])
    await client.put("/sim/companies/1000/customers/INS-0099", json={"name": "New insurer"})
    await client.put("/sim/closed-periods", json=[{"company_code": "1000", "period": "2026-03"}])
    closed = await sap.post_one(debtors=[{"debtor": "INS-0099", "amount": "15000.00", "dc": "S"}])
    await client.put("/sim/closed-periods", json=[])
    posted = await sap.post_one(debtors=[{"debtor": "INS-0099", "amount": "15000.00", "dc": "S"}])

    assert "102(F5)" in rejected.type_ids
    assert "201(F5)" in closed.type_ids
    assert posted.document == "0100000001"


async def test_document_with_error_posts_but_the_log_says_severity_3(sap, client):
    await _queue(client, {"kind": "document_with_error"})

    response = await sap.post_xml(sap.request_xml())
    after = await sap.post_one(ref="B-000124")

    assert response.status_code == 200
    [entry] = sap.parse(response.text).entries
    assert (entry.document, entry.company_code, entry.fiscal_year) == ("0100000001", "1000", "2026")
    assert entry.max_severity == "3"
    assert [(type_id, severity) for type_id, severity, _ in entry.items] == [
        ("605(RW)", "1"),
        ("009(ZSIM)", "3"),
    ]
    ledger = (await client.get("/sim/ledger")).json()
    assert [d["number"] for d in ledger["documents"]] == ["0100000001", "0100000002"]
    assert (after.document, after.max_severity) == ("0100000002", "1")  # consumed once


async def test_extra_confirmation_comes_first_for_a_request_never_sent(sap, client):
    await _queue(client, {"kind": "extra_confirmation"})

    confirmation = await sap.post(sap.bill(), message_id="MSG-000123")

    assert confirmation.reference_id == "MSG-000123"
    foreign, real = confirmation.entries
    assert (foreign.reference_id, foreign.document) == ("OTHER-REF", "0199999999")
    assert (foreign.max_severity, foreign.type_ids) == ("1", ["605(RW)"])
    assert (real.reference_id, real.document) == ("HMIS-B-000123-1", "0100000001")
    assert real.max_severity == "1"
    ledger = (await client.get("/sim/ledger")).json()
    assert [d["number"] for d in ledger["documents"]] == ["0100000001"]
    rows = (await sap.cube({"$filter": "AccountingDocument eq '0199999999'"})).json()
    assert rows["d"]["results"] == []


async def test_confirmation_faults_only_target_soap(client):
    response = await client.put(
        "/sim/faults", json={"queue": [{"kind": "extra_confirmation", "target": "odata"}]}
    )

    assert response.status_code == 422
    assert (await client.get("/sim/faults")).json()["queue"] == []
