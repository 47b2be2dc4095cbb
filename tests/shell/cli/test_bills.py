"""`bridge bills list|show|retry|resolve|cancel` against the bridge's database and the simulator,
next to the routes they mirror (the commands are added to a Typer app by `register`)."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner, Result

from app.shell.cli.bills import register
from tests.billing.test_preview_cli import use
from tests.support.bridge import ADMIN_KEY, API_KEY, Bridge, bill, make_settings


def _app() -> typer.Typer:
    root = typer.Typer()
    bills = typer.Typer()
    root.add_typer(bills, name="bills")
    register(bills)
    return root


APP = _app()


def bills(*args: str, answer: str | None = None) -> Result:
    return CliRunner().invoke(APP, ["bills", *args], input=answer, env={"COLUMNS": "100"})


def succeeded(result: Result, *words: str) -> str:
    assert result.exit_code == 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    for word in words:
        assert word in result.stdout, result.stdout
    return result.stdout


def one_line_failure(result: Result, code: int, *words: str) -> None:
    """Exit `code` and one line on stdout starting `error:` (the bridge's own log events, if
    any, go to stderr)."""
    assert result.exit_code == code, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 or (lines[-1].startswith("error:") and "?" in lines[0]), lines
    assert lines[-1].startswith("error: "), lines
    for word in words:
        assert word in lines[-1], lines[-1]


def client(bridge: Bridge, key: str = API_KEY) -> httpx.Client:
    return httpx.Client(base_url=bridge.url, headers={"X-API-Key": key}, timeout=30)


def ledger(sim: httpx.Client) -> list[dict]:
    return sim.get("/sim/ledger").json()["documents"]


def wait_for(bridge: Bridge, bill_id: str, status: str) -> dict:
    with client(bridge) as c:
        for _ in range(400):
            body = c.get(f"/bills/{bill_id}").json()
            if body.get("status") == status:
                return body
            time.sleep(0.05)
    raise AssertionError(f"bill {bill_id} never became {status}: {body}")


def test_the_commands_are_registered() -> None:
    result = CliRunner().invoke(APP, ["bills", "--help"], env={"COLUMNS": "120"})
    for command in ("list", "show", "retry", "resolve", "cancel"):
        assert command in result.output


def test_list_shows_the_rows_and_pages_like_the_route(
    bridge: Bridge, sim: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    with client(bridge) as c:
        pushed = [c.post(f"/bills/B-{n}/push", json=bill(f"REF-{n}")).json() for n in range(3)]
        route = c.get("/bills", params={"limit": 2}).json()
    use(bridge.settings, monkeypatch)
    table = succeeded(bills("list"), "B-0", "B-1", "B-2", "REF-1", "posted", "15000.00 LKR")
    for p in pushed:
        assert f"1000/{p['fiscal_year']}/{p['sap_document_number']}" in table
    assert table.index("B-2") < table.index("B-1") < table.index("B-0")  # newest first
    first = succeeded(bills("list", "--limit", "2"), "B-2", "B-1", "--cursor")
    assert "B-0" not in first.replace("--cursor", "")
    more = first.strip().splitlines()[-1]
    assert more.startswith("more: bridge bills list --limit 2 --cursor ")
    cursor = more.rsplit(" ", 1)[-1]
    assert cursor == route["next_cursor"]
    rest = succeeded(bills("list", "--limit", "2", "--cursor", cursor), "B-0")
    assert "B-1" not in rest and "more:" not in rest
    printed = json.loads(succeeded(bills("list", "--limit", "2", "--json")))
    assert printed == route
    succeeded(bills("list", "--status", "rejected"), "no bills match")
    found = succeeded(bills("list", "--search", pushed[1]["sap_document_number"]), "B-1")
    assert "B-0" not in found and "B-2" not in found
    succeeded(bills("list", "--from", "2024-03-16"), "no bills match")
    succeeded(bills("list", "--from", "2024-03-15", "--to", "2024-03-15"), "B-0", "B-2")


def test_list_refuses_bad_options_in_one_line(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(bridge.settings, monkeypatch)
    one_line_failure(bills("list", "--status", "lost"), 2, "--status: 'lost' is none of")
    one_line_failure(bills("list", "--from", "2024-3-1"), 2, "--from: must be a date")
    one_line_failure(bills("list", "--to", "2024-02-30"), 2, "--to: must be a date")
    one_line_failure(
        bills("list", "--from", "2024-03-20", "--to", "2024-03-01"), 2, "--from: 2024-03-20"
    )
    one_line_failure(bills("list", "--limit", "500"), 2, "--limit: 1-200")
    one_line_failure(bills("list", "--cursor", "%%%"), 2, "--cursor: not a cursor")
    one_line_failure(bills("list", "--search", "x" * 65), 2, "--search: at most 64")


def test_show_prints_the_record_and_its_json_is_the_route_s(
    bridge: Bridge, sim: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    with client(bridge) as c:
        pushed = c.post("/bills/B-1/push", json=bill()).json()
        route = c.get("/bills/B-1").json()
    use(bridge.settings, monkeypatch)
    shown = succeeded(
        bills("show", "B-1"),
        "posted",
        pushed["document_reference_id"],
        pushed["sap_document_number"],
        "HMIS-2024-001234",
        "12100000",
        "41000100",
        "41000200",
        "PC100",
        "10000.00",
        "5000.00",
        "payments: none recorded",
    )
    assert "fiscal year 2024" in shown
    assert json.loads(succeeded(bills("show", "B-1", "--json"))) == route
    one_line_failure(bills("show", "NOPE"), 4, "bill NOPE has never been pushed")
    one_line_failure(bills("show", "a/b"), 2, "BILL_ID")


def test_retry_reports_sap_s_answer_and_posts_once(
    bridge: Bridge, sim: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    with client(bridge, ADMIN_KEY) as admin, client(bridge) as c:
        admin.put("/config/SAP Integration - AR Account", json={"value": "12000000"})
        assert c.post("/bills/B-1/push", json=bill()).status_code == 502
    use(bridge.settings, monkeypatch)
    one_line_failure(bills("retry", "B-1"), 1, "B-1: SAP rejected the journal entry")
    with client(bridge, ADMIN_KEY) as admin:
        admin.put("/config/SAP Integration - AR Account", json={"value": "12100000"})
    posted = succeeded(bills("retry", "B-1"), "B-1: posted as SAP document")
    [doc] = ledger(sim)
    assert doc["number"] in posted and "fiscal year" in posted
    assert {line["gl_account"] for line in doc["lines"]} >= {"12100000"}
    one_line_failure(bills("retry", "B-1"), 3, "only rejected bills")
    one_line_failure(bills("retry", "NOPE"), 4, "never been pushed")
    assert len(ledger(sim)) == 1


def test_cancel_asks_first_then_reverses_once(
    bridge: Bridge, sim: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    with client(bridge) as c:
        pushed = c.post("/bills/B-1/push", json=bill()).json()
    use(bridge.settings, monkeypatch)
    declined = bills("cancel", "B-1", answer="n\n")
    one_line_failure(declined, 1, "not cancelled", "--yes")
    assert "post a reversing entry in SAP" in declined.stdout
    assert pushed["sap_document_number"] in declined.stdout
    one_line_failure(bills("cancel", "B-1"), 1, "not cancelled")  # no answer at all
    assert len(ledger(sim)) == 1
    done = succeeded(bills("cancel", "B-1", answer="y\n"), "B-1: reversed by SAP document")
    original, reversal = ledger(sim)
    assert reversal["number"] in done

    def signed(doc: dict) -> dict[tuple[str, str], Decimal]:
        return {
            (ln["gl_account"], ln["profit_center"]): Decimal(ln["amount"]) for ln in doc["lines"]
        }

    assert len(signed(original)) == 3
    assert signed(reversal) == {k: -v for k, v in signed(original).items()}
    succeeded(bills("cancel", "B-1"), "B-1: reversed")  # already: nothing to confirm
    assert len(ledger(sim)) == 2
    one_line_failure(bills("cancel", "NOPE", "--yes"), 4, "never been pushed")


def test_cancel_with_yes_withdraws_a_rejected_bill(
    bridge: Bridge, sim: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    with client(bridge, ADMIN_KEY) as admin, client(bridge) as c:
        admin.put("/config/SAP Integration - AR Account", json={"value": "12000000"})
        assert c.post("/bills/B-1/push", json=bill()).status_code == 502
    use(bridge.settings, monkeypatch)
    succeeded(bills("cancel", "B-1", "--yes"), "B-1: withdrawn")
    assert wait_for(bridge, "B-1", "withdrawn")["record_status"] == "withdrawn"
    succeeded(bills("cancel", "B-1"), "B-1: withdrawn; SAP never had it")  # nothing to confirm
    assert ledger(sim) == []


def test_resolve_records_the_document_only_when_sap_confirms_it(
    bridge: Bridge, sim: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = [{"kind": "commit_then_drop"}, {"kind": "status", "status": 403, "target": "odata"}]
    sim.put("/sim/faults", json={"queue": faults}).raise_for_status()
    with client(bridge) as c:
        c.post("/bills/B-1/push", json=bill())
    wait_for(bridge, "B-1", "needs_review")
    [doc] = ledger(sim)
    use(bridge.settings, monkeypatch)
    naming = ["--company-code", "1000", "--fiscal-year", doc["fiscal_year"], "--note", "seen"]
    one_line_failure(
        bills("resolve", "B-1", *naming, "--document", "0100000999"), 3, "SAP holds no document"
    )
    one_line_failure(
        bills(
            "resolve", "B-1", *naming[:2], "--fiscal-year", "24", "--note", "x", "--document", "1"
        ),
        2,
        "--fiscal-year:",
    )
    resolved = bills("resolve", "B-1", *naming, "--document", doc["number"].lstrip("0"))
    succeeded(resolved, f"B-1: posted as SAP document {doc['number']}")
    record = wait_for(bridge, "B-1", "posted")
    assert record["sap_document_number"] == doc["number"]
    assert record["resolution_note"] == "seen"
    one_line_failure(
        bills("resolve", "B-1", *naming, "--document", doc["number"]), 3, "only bills that need"
    )
    assert len(ledger(sim)) == 1


@pytest.mark.parametrize(
    "url",
    ["postgresql+asyncpg://postgres@127.0.0.1:1/bridge", "sqlite+aiosqlite:///{tmp}/no/dir/b.db"],
)
def test_an_unreachable_database_is_one_line(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(make_settings(url.format(tmp=tmp_path)), monkeypatch)
    one_line_failure(bills("list"), 1, "cannot reach the database")
    one_line_failure(bills("retry", "B-1"), 1, "cannot reach the database")


def test_a_cancel_of_a_bill_needing_review_waits_for_its_resolve(
    bridge: Bridge, sim: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = [{"kind": "commit_then_drop"}, {"kind": "status", "status": 403, "target": "odata"}]
    sim.put("/sim/faults", json={"queue": faults}).raise_for_status()
    with client(bridge) as c:
        c.post("/bills/B-1/push", json=bill())
    wait_for(bridge, "B-1", "needs_review")
    [doc] = ledger(sim)
    use(bridge.settings, monkeypatch)
    succeeded(bills("cancel", "B-1", "--yes"), "B-1: needs review; the cancel is carried out")
    assert len(ledger(sim)) == 1
    naming = ["--company-code", "1000", "--fiscal-year", doc["fiscal_year"], "--note", "mine"]
    resolved = bills("resolve", "B-1", *naming, "--document", doc["number"])
    succeeded(resolved, "B-1: reversing", "the service delivers the reversal in the background")
    record = wait_for(bridge, "B-1", "reversed")  # by the service's outbox, not the command
    original, reversal = ledger(sim)
    assert original["number"] == record["sap_document_number"] == doc["number"]
    assert reversal["number"] == record["reversal_document_number"]
