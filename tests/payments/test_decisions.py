"""Operators' decisions on payments: match, accept, dismiss, the audit trail, the list, races.

Each decision goes through the HTTP API of a bridge on loopback against a real database, and
its effect is read back where finance reads it: `GET /bills/{id}`, `GET /reconciliation`,
`GET /metrics`.
"""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from app.payments.models import PaymentDecision
from tests.payments.conftest import get_bill, payment, post, push_bill, signed
from tests.support.bridge import Bridge
from tests.support.metrics import scrape

NOTE = "checked against the bank statement of 20.03."
UNRESOLVED = "bridge_payments_unresolved"


async def report(bridge: Bridge, webhook: dict[str, Any]) -> dict[str, Any]:
    """Send a payment through the signed webhook; the stored payment as `GET /payments` lists
    it."""
    async with bridge.client(None) as client:
        answer = await post(client, *signed(webhook))
    assert answer.status_code in (200, 202), answer.text
    found = await listing(bridge, q=webhook["paymentDocument"])
    (stored,) = [p for p in found["items"] if p["bill_reference"] == webhook["hmsBillReference"]]
    return stored


async def listing(bridge: Bridge, **params: Any) -> dict[str, Any]:
    async with bridge.admin() as client:
        response = await client.get("/payments", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def decide(bridge: Bridge, payment_id: int, action: str, **body: Any) -> httpx.Response:
    async with bridge.admin() as client:
        return await client.post(f"/payments/{payment_id}/{action}", json={"note": NOTE} | body)


async def detail(bridge: Bridge, payment_id: int) -> dict[str, Any]:
    async with bridge.admin() as client:
        response = await client.get(f"/payments/{payment_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def reconciliation(bridge: Bridge) -> dict[str, Any]:
    async with bridge.client() as client:
        response = await client.get("/reconciliation", params={"to": "2024-12-31"})
    assert response.status_code == 200, response.text
    return response.json()


async def decision_rows(db_url: str) -> int:
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(PaymentDecision)) or 0)
    finally:
        await engine.dispose()


# --- match ----------------------------------------------------------------------------------


async def test_an_unmatched_payment_matched_to_a_bill_is_judged_and_counts(bridge):
    await push_bill(bridge, "B-1", "HMIS-1")
    stored = await report(bridge, payment("HMIS-TYPO", "1400000001", "5000.00"))
    assert (stored["status"], stored["bill_id"]) == ("unmatched", None)
    assert stored["allowed_actions"] == ["match", "dismiss"]
    assert (stored["amount"], stored["currency"], stored["payment_fiscal_year"]) == (
        "5000.00",
        "LKR",
        "2024",
    )

    response = await decide(
        bridge, stored["id"], "match", bill_id="B-1", note="  the bank dropped a digit  "
    )

    assert response.status_code == 200, response.text
    matched = response.json()
    assert (matched["status"], matched["bill_id"], matched["reasons"]) == ("confirmed", "B-1", [])
    assert matched["bill_reference"] == "HMIS-TYPO"  # as reported: the payment's identity
    assert matched["allowed_actions"] == []
    (decision,) = matched["decisions"]
    assert {k: decision[k] for k in ("action", "note", "actor", "from_status", "to_status")} == {
        "action": "match",
        "note": "the bank dropped a digit",
        "actor": "api",
        "from_status": "unmatched",
        "to_status": "confirmed",
    }
    assert decision["bill_id"] == "B-1" and decision["request_id"]
    assert await detail(bridge, stored["id"]) == matched
    bill = await get_bill(bridge, "B-1")
    assert (bill["paid_amount"], bill["outstanding_amount"]) == ("5000.00", "10000.00")
    assert [p["status"] for p in bill["payments"]] == ["confirmed"]
    assert (await reconciliation(bridge))["unmatched_payments"] == []


async def test_a_match_by_reference_takes_the_bill_and_judges_it_like_a_webhook(bridge):
    await push_bill(bridge, "B-1", "HMIS-1")
    first = await report(bridge, payment("HMIS-X", "1400000001", "12000.00"))
    second = await report(bridge, payment("HMIS-Y", "1400000002", "5000.00"))
    usd = await report(bridge, payment("HMIS-Z", "1400000003", "10.00", currency="USD"))

    by_reference = await decide(bridge, first["id"], "match", bill_id="HMIS-1")
    over = await decide(bridge, second["id"], "match", bill_id="B-1")
    other_currency = await decide(bridge, usd["id"], "match", bill_id="B-1")

    assert by_reference.json()["status"] == "confirmed", by_reference.text
    assert by_reference.json()["bill_id"] == "B-1"
    assert over.json()["status"] == "mismatch", over.text
    assert over.json()["reasons"] == ["overpayment: 5000.00 exceeds the outstanding 3000.00"]
    assert other_currency.json()["reasons"] == ["currency USD differs from the bill's LKR"]
    bill = await get_bill(bridge, "B-1")
    assert (bill["paid_amount"], bill["outstanding_amount"]) == ("12000.00", "3000.00")
    mismatches = (await reconciliation(bridge))["mismatches"]
    assert sorted(p["payment_document"] for p in mismatches) == ["1400000002", "1400000003"]


async def test_a_mismatch_on_the_wrong_bill_can_be_matched_to_the_right_one(bridge):
    one = await push_bill(bridge, "B-1", "HMIS-1", net_total="5000.00", items=_one_item("5000.00"))
    await push_bill(bridge, "B-2", "HMIS-2")
    # the sender named B-1's reference with 15,000: an overpayment of B-1
    wrong = await report(
        bridge, payment("HMIS-1", "1400000001", "15000.00", one["sap_document_number"])
    )
    assert (wrong["status"], wrong["bill_id"]) == ("mismatch", "B-1")

    moved = await decide(bridge, wrong["id"], "match", bill_id="B-2")

    # B-2's SAP document is not the one the payment names: judged as a webhook would be
    assert moved.json()["status"] == "mismatch", moved.text
    assert moved.json()["bill_id"] == "B-2"
    assert "is not the document the bridge posted for bill B-2" in moved.json()["reasons"][0]
    accepted = await decide(bridge, wrong["id"], "accept")
    assert accepted.json()["status"] == "accepted", accepted.text
    assert (await get_bill(bridge, "B-1"))["paid_amount"] == "0.00"
    assert (await get_bill(bridge, "B-2"))["outstanding_amount"] == "0.00"
    trail = [
        (d["action"], d["from_status"], d["to_status"], d["bill_id"])
        for d in accepted.json()["decisions"]
    ]
    assert trail == [
        ("match", "mismatch", "mismatch", "B-2"),
        ("accept", "mismatch", "accepted", "B-2"),
    ]


async def test_a_match_keeps_what_the_reports_themselves_disagree_on(bridge):
    await push_bill(bridge, "B-1", "HMIS-1")
    first = await report(bridge, payment("HMIS-1", "1400000001", "5000.00"))
    again = await report(bridge, payment("HMIS-1", "1400000001", "5500.00"))
    assert again["status"] == "mismatch" and again["id"] == first["id"]

    response = await decide(bridge, first["id"], "match", bill_id="B-1")

    # choosing the bill does not answer which of the two amounts SAP booked
    assert response.json()["status"] == "mismatch", response.text
    assert response.json()["reasons"] == again["reasons"]


def _one_item(amount: str) -> list[dict[str, str]]:
    return [
        {"line_id": "1", "description": "Consultation", "net_value": amount, "department": "OPD"}
    ]


async def test_match_refusals_name_the_problem(bridge, sim):
    await push_bill(bridge, "B-1", "HMIS-1")
    await push_bill(bridge, "B-2", "HMIS-SHARED")
    await push_bill(bridge, "B-3", "HMIS-SHARED")
    await push_bill(bridge, "B-4", "HMIS-4")
    async with bridge.client() as client:
        assert (await client.post("/bills/B-4/cancel")).status_code == 200
    sim.put("/sim/faults", json={"down": True, "queue": []}).raise_for_status()
    try:
        async with bridge.client() as client:
            queued = await client.post("/bills/B-5/push", json=_bill("HMIS-5"))
        assert queued.status_code == 202, queued.text
        stored = await report(bridge, payment("HMIS-NONE", "1400000001", "100.00"))
        confirmed = await report(bridge, payment("HMIS-1", "1400000002", "100.00"))
        pid = stored["id"]
        answers = {
            "no payment": await decide(bridge, 999_999, "match", bill_id="B-1"),
            "no bill": await decide(bridge, pid, "match", bill_id="B-404"),
            "queued": await decide(bridge, pid, "match", bill_id="B-5"),
            "reversed": await decide(bridge, pid, "match", bill_id="B-4"),
            "shared": await decide(bridge, pid, "match", bill_id="HMIS-SHARED"),
            "confirmed": await decide(bridge, confirmed["id"], "match", bill_id="B-1"),
            "empty note": await decide(bridge, pid, "match", bill_id="B-1", note="   "),
            "long note": await decide(bridge, pid, "match", bill_id="B-1", note="x" * 501),
            "no note": await _post(bridge, pid, "match", {"bill_id": "B-1"}),
            "no bill named": await decide(bridge, pid, "match", bill_id=" "),
            "unknown field": await decide(bridge, pid, "match", bill_id="B-1", notes="x"),
            "bad status": await decide(bridge, pid, "match", bill_id="B-1", expected_status="x"),
        }
    finally:
        sim.put("/sim/faults", json={"down": False}).raise_for_status()
    assert {k: a.status_code for k, a in answers.items()} == {
        "no payment": 404,
        "no bill": 404,
        "queued": 409,
        "reversed": 409,
        "shared": 409,
        "confirmed": 409,
        "empty note": 422,
        "long note": 422,
        "no note": 422,
        "no bill named": 422,
        "unknown field": 422,
        "bad status": 422,
    }
    detail_of = {k: a.json()["detail"] for k, a in answers.items()}
    assert detail_of["no payment"] == "no payment 999999"
    assert detail_of["no bill"] == "no bill with id or reference B-404"
    assert detail_of["queued"].startswith("bill B-5 is queued, not posted")
    assert detail_of["reversed"].startswith("bill B-4 is reversed, not posted")
    assert detail_of["shared"] == (
        "reference HMIS-SHARED matches 2 posted bills (B-2, B-3); name the bill by its id"
    )
    assert detail_of["confirmed"] == (
        f"payment {confirmed['id']} is confirmed; only an unmatched payment or a mismatch can "
        "be matched to a bill"
    )
    assert answers["confirmed"].json()["payment_status"] == "confirmed"
    assert detail_of["empty note"] == "note: required: say why, in 1-500 characters"
    assert detail_of["long note"] == "note: at most 500 characters (got 501)"
    assert (await detail(bridge, pid))["decisions"] == []  # nothing was written


def _bill(reference: str) -> dict[str, Any]:
    from tests.support.bridge import bill

    return bill(reference)


async def _post(bridge: Bridge, payment_id: int, action: str, body: Any) -> httpx.Response:
    async with bridge.admin() as client:
        return await client.post(f"/payments/{payment_id}/{action}", json=body)


# --- accept and dismiss ---------------------------------------------------------------------


async def test_an_accepted_mismatch_counts_as_paid_everywhere(bridge):
    await push_bill(bridge, "B-1", "HMIS-1")
    # SAP document 0100009999 is not the bill's: flagged
    stored = await report(bridge, payment("HMIS-1", "1400000001", "15000.00", "0100009999"))
    assert stored["status"] == "mismatch"
    assert (await get_bill(bridge, "B-1"))["paid_amount"] == "0.00"
    before = await scrape(bridge)
    assert before.value(UNRESOLVED, status="mismatch") == 1
    assert [b["bill_id"] for b in (await reconciliation(bridge))["open_bills"]] == ["B-1"]

    response = await decide(bridge, stored["id"], "accept", expected_status="mismatch")

    assert response.status_code == 200, response.text
    accepted = response.json()
    assert accepted["status"] == "accepted" and accepted["reasons"] == stored["reasons"]
    bill = await get_bill(bridge, "B-1")
    assert (bill["paid_amount"], bill["outstanding_amount"]) == ("15000.00", "0.00")
    recon = await reconciliation(bridge)
    assert (recon["open_bills"], recon["mismatches"], recon["unmatched_payments"]) == ([], [], [])
    assert (await scrape(bridge)).value(UNRESOLVED, status="mismatch") == 0
    assert [p["id"] for p in (await listing(bridge, status="accepted"))["items"]] == [stored["id"]]
    # a cancel of the bill now owes a refund of the accepted payment too
    async with bridge.client() as client:
        assert (await client.post("/bills/B-1/cancel")).status_code == 200
    after_cancel = await detail(bridge, stored["id"])
    assert after_cancel["status"] == "mismatch"
    assert after_cancel["reasons"][-1] == "bill reversed after payment: refund due"


async def test_accepting_past_the_bills_total_says_so_in_its_reasons(bridge):
    """Two mismatches judged while the bill was unpaid: the second accepted one takes the bill
    past its total, which its reasons record (judged under the lock, not at arrival)."""
    await push_bill(bridge, "B-1", "HMIS-1")
    first = await report(bridge, payment("HMIS-1", "1400000001", "15000.00", "0100009999"))
    second = await report(bridge, payment("HMIS-1", "1400000002", "15000.00", "0100009999"))
    assert (first["status"], second["status"]) == ("mismatch", "mismatch")
    one = (await decide(bridge, first["id"], "accept")).json()
    two = (await decide(bridge, second["id"], "accept")).json()
    assert one["reasons"] == first["reasons"]
    assert two["reasons"][-1] == (
        "accepted above the bill's total: paid 30000.00 of 15000.00 (refund due)"
    )
    assert (await get_bill(bridge, "B-1"))["paid_amount"] == "30000.00"


async def test_accept_refusals_say_why(bridge):
    await push_bill(bridge, "B-1", "HMIS-1")
    await push_bill(bridge, "B-2", "HMIS-2")
    unmatched = await report(bridge, payment("HMIS-NONE", "1400000001", "100.00"))
    usd = await report(bridge, payment("HMIS-1", "1400000002", "100.00", currency="USD"))
    wrong_doc = await report(bridge, payment("HMIS-2", "1400000003", "100.00", "0100009999"))
    async with bridge.client() as client:
        assert (await client.post("/bills/B-2/cancel")).status_code == 200

    answers = [
        await decide(bridge, unmatched["id"], "accept"),
        await decide(bridge, usd["id"], "accept"),
        await decide(bridge, wrong_doc["id"], "accept"),
        await decide(bridge, usd["id"], "accept", expected_status="unmatched"),
    ]

    assert [a.status_code for a in answers] == [409, 409, 409, 409]
    assert answers[0].json() == {
        "detail": f"payment {unmatched['id']} is unmatched; only a mismatch can be accepted",
        "payment_status": "unmatched",
    }
    assert answers[1].json()["detail"] == (
        f"payment {usd['id']} is in USD, bill B-1 in LKR: only a payment in the bill's "
        "currency can count towards it"
    )
    assert answers[2].json()["detail"].startswith("bill B-2 is reversed, not posted")
    assert answers[3].json()["detail"] == (
        f"payment {usd['id']} changed meanwhile (now mismatch); look at it again"
    )
    assert (await get_bill(bridge, "B-1"))["paid_amount"] == "0.00"


async def test_a_dismissed_payment_does_not_count_and_is_not_matched_again(bridge, db_url):
    stored = await report(bridge, payment("HMIS-LATER", "1400000001", "15000.00"))
    assert (await scrape(bridge)).value(UNRESOLVED, status="unmatched") == 1

    response = await decide(bridge, stored["id"], "dismiss", note="bank's test transfer")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "dismissed"
    assert (await scrape(bridge)).value(UNRESOLVED, status="unmatched") == 0
    assert (await reconciliation(bridge))["unmatched_payments"] == []
    # the bill with that reference posts later: the dismissed payment stays out of it
    await push_bill(bridge, "B-1", "HMIS-LATER")
    assert (await get_bill(bridge, "B-1"))["paid_amount"] == "0.00"
    assert (await detail(bridge, stored["id"]))["status"] == "dismissed"
    again = await decide(bridge, stored["id"], "dismiss")
    assert again.status_code == 409
    assert again.json()["detail"] == (
        f"payment {stored['id']} is dismissed; only an unmatched payment or a mismatch can be "
        "dismissed"
    )
    assert await decision_rows(db_url) == 1


async def test_a_dismissed_mismatch_leaves_the_exceptions_and_keeps_its_bill(bridge):
    await push_bill(bridge, "B-1", "HMIS-1")
    stored = await report(bridge, payment("HMIS-1", "1400000001", "1.00", currency="USD"))

    response = await decide(bridge, stored["id"], "dismiss")

    assert (response.json()["status"], response.json()["bill_id"]) == ("dismissed", "B-1")
    assert (await reconciliation(bridge))["mismatches"] == []
    bill = await get_bill(bridge, "B-1")
    assert [p["status"] for p in bill["payments"]] == ["dismissed"]
    assert bill["paid_amount"] == "0.00"


# --- the list -------------------------------------------------------------------------------


async def test_the_list_pages_newest_first_filters_and_searches(bridge):
    await push_bill(bridge, "B-1", "HMIS-1")
    ids = []
    for n in range(7):
        reference = "HMIS-1" if n % 2 == 0 else f"HMIS-NONE-{n}"
        ids.append((await report(bridge, payment(reference, f"14000001{n:02d}", "1.00")))["id"])

    seen, cursor = [], None
    while True:
        page = await listing(bridge, limit=3, **({"cursor": cursor} if cursor else {}))
        seen += [p["id"] for p in page["items"]]
        cursor = page.get("next_cursor")
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    unmatched = await listing(bridge, status="unmatched")
    assert [p["id"] for p in unmatched["items"]] == [ids[5], ids[3], ids[1]]
    assert {p["status"] for p in (await listing(bridge, status="confirmed"))["items"]} == {
        "confirmed"
    }
    assert [p["id"] for p in (await listing(bridge, q="none-3"))["items"]] == [ids[3]]
    assert [p["id"] for p in (await listing(bridge, q="1400000104"))["items"]] == [ids[4]]
    assert len((await listing(bridge, q="b-1"))["items"]) == 4  # the bill id, any case
    assert (await listing(bridge, q="100%"))["items"] == []  # % is a character, not a pattern
    async with bridge.admin() as client:
        refused = [
            await client.get("/payments", params={"cursor": "bm90LWEtY3Vyc29y"}),
            await client.get("/payments", params={"status": "paid"}),
            await client.get("/payments", params={"limit": 0}),
            await client.get("/payments/0"),
            await client.get("/payments/123456"),
        ]
    async with bridge.client() as hmis:
        refused.append(await hmis.get("/payments"))
        refused.append(await hmis.post(f"/payments/{ids[1]}/dismiss", json={"note": NOTE}))
    assert [r.status_code for r in refused] == [422, 422, 422, 422, 404, 403, 403]
    assert refused[0].json()["detail"] == "cursor: not a cursor this service issued"


# --- at the same time -----------------------------------------------------------------------


async def test_two_decisions_at_once_on_one_payment_exactly_one_applies(bridge, db_url):
    await push_bill(bridge, "B-1", "HMIS-1")
    rounds = []
    for n in range(6):
        stored = await report(bridge, payment("HMIS-1", f"14000002{n:02d}", "10.00", "0100009999"))
        first, second = await asyncio.gather(
            decide(bridge, stored["id"], "accept"),
            decide(bridge, stored["id"], "dismiss" if n % 2 else "accept"),
        )
        rounds.append(sorted([first.status_code, second.status_code]))
        loser = first if first.status_code == 409 else second
        assert "changed meanwhile" in loser.json()["detail"] or "only" in loser.json()["detail"]
        assert len((await detail(bridge, stored["id"]))["decisions"]) == 1
    assert rounds == [[200, 409]] * 6
    assert await decision_rows(db_url) == 6


async def test_two_payments_matched_at_once_to_one_bill_do_not_both_pay_it(bridge):
    await push_bill(bridge, "B-1", "HMIS-1")
    a = await report(bridge, payment("HMIS-A", "1400000001", "15000.00"))
    b = await report(bridge, payment("HMIS-B", "1400000002", "15000.00"))

    answers = await asyncio.gather(
        decide(bridge, a["id"], "match", bill_id="B-1"),
        decide(bridge, b["id"], "match", bill_id="B-1"),
    )

    assert sorted(r.json()["status"] for r in answers) == ["confirmed", "mismatch"]
    bill = await get_bill(bridge, "B-1")
    assert (bill["paid_amount"], bill["outstanding_amount"]) == ("15000.00", "0.00")


# --- money ----------------------------------------------------------------------------------

_COUNTER = itertools.count()
AMOUNTS = st.sampled_from(["1000.00", "2500.50", "5000.00", "7500.25", "15000.00"])
REPORTS = st.lists(
    st.tuples(AMOUNTS, st.sampled_from(["LKR", "LKR", "USD"]), st.booleans(), st.booleans()),
    min_size=1,
    max_size=5,
)
DECISIONS = st.lists(
    st.tuples(st.sampled_from(["match", "accept", "dismiss"]), st.integers(0, 4)), max_size=6
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(reports=REPORTS, choices=DECISIONS)
def test_paid_is_always_the_sum_of_confirmed_and_accepted_payments(
    bridge: Bridge, reports: list[tuple[str, str, bool, bool]], choices: list[tuple[str, int]]
) -> None:
    asyncio.run(_decide_at_random(bridge, reports, choices))


async def _decide_at_random(
    bridge: Bridge, reports: list[tuple[str, str, bool, bool]], choices: list[tuple[str, int]]
) -> None:
    n = next(_COUNTER)
    bill_id, reference = f"P-{n}", f"HMIS-P-{n}"
    document = (await push_bill(bridge, bill_id, reference))["sap_document_number"]
    ids = []
    for index, (amount, code, to_bill, right_document) in enumerate(reports):
        body = payment(
            reference if to_bill else f"{reference}-X",
            f"15{n:04d}{index:02d}",
            amount,
            document if right_document else None,
            currency=code,
        )
        ids.append((await report(bridge, body))["id"])
    for action, index in choices:
        target = ids[index % len(ids)]
        extra = {"bill_id": bill_id} if action == "match" else {}
        response = await decide(bridge, target, action, **extra)
        assert response.status_code in (200, 409), response.text

    bill = await get_bill(bridge, bill_id)
    mine = [p for p in (await listing(bridge, q=reference))["items"] if p["bill_id"] == bill_id]
    counted = [p for p in mine if p["status"] in ("confirmed", "accepted")]
    paid = sum((Decimal(p["amount"]) for p in counted), Decimal(0))
    assert Decimal(bill["paid_amount"]) == paid
    assert Decimal(bill["outstanding_amount"]) == max(Decimal("15000.00") - paid, Decimal(0))
    assert all(p["currency"] == "LKR" for p in counted)  # no other currency counts on LKR
    # a confirmed payment never takes the bill past its total; only an accepted one can
    confirmed = sum((Decimal(p["amount"]) for p in mine if p["status"] == "confirmed"), Decimal(0))
    assert confirmed <= Decimal("15000.00")
    for payment_id in ids:  # the trail tells the story of the status
        shown = await detail(bridge, payment_id)
        trail = shown["decisions"]
        for earlier, later in itertools.pairwise(trail):
            assert earlier["to_status"] == later["from_status"]
        if trail:
            assert trail[-1]["to_status"] == shown["status"]


# --- migration 0010 -------------------------------------------------------------------------


async def test_a_downgrade_gives_decided_payments_back_their_earlier_status(tmp_path):
    from alembic import command
    from sqlalchemy import text

    from app.shell.migrate import alembic_config, upgrade

    url = f"sqlite+aiosqlite:///{tmp_path}/decided.db"
    await upgrade(url)
    engine = create_async_engine(url)
    at = "2024-03-20 10:00:00.000000"
    async with engine.begin() as conn:
        for n, status in enumerate(["accepted", "dismissed", "confirmed"], 1):
            await conn.execute(
                text(
                    "INSERT INTO payments (id, company_code, payment_document, "
                    "payment_fiscal_year, bill_reference, amount, currency, status, reasons, "
                    "source, created_at, updated_at) VALUES (:id, '1000', :doc, '2024', 'R', "
                    "1, 'LKR', :status, '[]', 'webhook', :at, :at)"
                ),
                {"id": n, "doc": f"140000000{n}", "status": status, "at": at},
            )
        trail = [
            (1, "mismatch", "accepted"),
            (2, "mismatch", "mismatch"),
            (2, "unmatched", "dismissed"),  # the latest decision says where it came from
        ]
        for payment_id, before, after in trail:
            await conn.execute(
                text(
                    "INSERT INTO payment_decisions (payment_id, action, note, actor, "
                    "from_status, to_status, created_at) VALUES (:p, 'x', 'n', 'cli', :f, :t, :at)"
                ),
                {"p": payment_id, "f": before, "t": after, "at": at},
            )

        def downgrade(sync_conn: Any) -> None:
            config = alembic_config(url)
            config.attributes["connection"] = sync_conn
            command.downgrade(config, "0009")

        await conn.run_sync(downgrade)
        statuses = (await conn.execute(text("SELECT status FROM payments ORDER BY id"))).all()
    await engine.dispose()
    assert [s for (s,) in statuses] == ["mismatch", "unmatched", "confirmed"]
    await upgrade(url)  # and up again
