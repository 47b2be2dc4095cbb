"""`bridge payments unmatched|match|accept|dismiss` against a real database: the same decisions
as the API, recorded as `cli`, with one-line refusals and their exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner, Result

from app.shell.cli import payments as cli
from tests.payments.conftest import payment, signed, webhook_bridge
from tests.support.bridge import ADMIN_KEY, API_KEY, Bridge, bill


@pytest.fixture
def bridge(db_url: str, sim: httpx.Client) -> Iterator[Bridge]:
    with webhook_bridge(db_url, sim) as running:
        yield running


@pytest.fixture
def bridge_env(bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> Bridge:
    """The CLI's settings: the bridge's database and keys, as an operator's shell has them."""
    settings = bridge.settings
    for name, value in (
        ("DATABASE_URL", settings.database_url),
        ("BRIDGE_API_KEY", settings.api_key.get_secret_value()),
        ("BRIDGE_ADMIN_API_KEY", settings.admin_api_key.get_secret_value()),
        ("BRIDGE_ENCRYPTION_KEY", settings.encryption_key.get_secret_value()),
    ):
        monkeypatch.setenv(name, value)
    return bridge


def run(*args: str) -> Result:
    app = typer.Typer()
    cli.register(app)
    return CliRunner().invoke(app, ["payments", *args], env={"COLUMNS": "160"})


def _http(bridge: Bridge, key: str | None = API_KEY) -> httpx.Client:
    return httpx.Client(base_url=bridge.url, headers={"X-API-Key": key} if key else {}, timeout=30)


def push(bridge: Bridge, bill_id: str, reference: str) -> dict[str, Any]:
    with _http(bridge) as client:
        response = client.post(f"/bills/{bill_id}/push", json=bill(reference))
    assert response.status_code == 201, response.text
    return response.json()


def report(bridge: Bridge, body: dict[str, Any]) -> int:
    raw, headers = signed(body)
    with _http(bridge, None) as client:
        assert client.post("/webhooks/sap/payment", content=raw, headers=headers).status_code in (
            200,
            202,
        )
    with _http(bridge, ADMIN_KEY) as client:
        found = client.get("/payments", params={"q": body["paymentDocument"]}).json()
    return int(found["items"][0]["id"])


def shown(bridge: Bridge, payment_id: int) -> dict[str, Any]:
    with _http(bridge, ADMIN_KEY) as client:
        response = client.get(f"/payments/{payment_id}")
    assert response.status_code == 200, response.text
    return response.json()


def one_line(result: Result) -> str:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_list_match_accept_and_dismiss_from_the_command_line(bridge_env: Bridge) -> None:
    bridge = bridge_env
    push(bridge, "B-1", "HMIS-1")
    lost = report(bridge, payment("HMIS-TYPO", "1400000001", "15000.00"))
    usd = report(bridge, payment("HMIS-1", "1400000002", "10.00", currency="USD"))
    junk = report(bridge, payment("HMIS-[red]X", "1400000003", "1.00"))

    listed = run("unmatched")
    assert listed.exit_code == 0, listed.output
    assert "HMIS-TYPO" in listed.output and "HMIS-[red]X" in listed.output  # shown, not markup
    assert "1400000002" not in listed.output  # a mismatch, not unmatched
    mismatches = run("unmatched", "--status", "mismatch")
    assert "1400000002" in mismatches.output and "currency USD differs" in mismatches.output

    matched = run("match", str(lost), "HMIS-1", "--note", "bank dropped a digit")
    assert matched.exit_code == 0, matched.output
    assert one_line(matched) == f"payment {lost}: unmatched -> confirmed (bill B-1)"
    decision = shown(bridge, lost)["decisions"][0]
    assert (decision["actor"], decision["note"], decision["request_id"]) == (
        "cli",
        "bank dropped a digit",
        None,
    )
    with _http(bridge) as client:
        paid = client.get("/bills/B-1").json()
    assert (paid["paid_amount"], paid["outstanding_amount"]) == ("15000.00", "0.00")

    dismissed = run("dismiss", str(usd), "--note", "sent in error; refunded by the bank")
    assert dismissed.exit_code == 0, dismissed.output
    assert dismissed.stdout.startswith(f"payment {usd}: mismatch -> dismissed (bill B-1)")
    assert shown(bridge, usd)["status"] == "dismissed"
    assert "no unmatched payments" not in run("unmatched").output  # junk is still there
    assert run("dismiss", str(junk), "--note", "test").exit_code == 0
    assert one_line(run("unmatched")) == "no unmatched payments"


def test_refusals_are_one_line_with_their_exit_code(bridge_env: Bridge) -> None:
    bridge = bridge_env
    push(bridge, "B-1", "HMIS-1")
    confirmed = report(bridge, payment("HMIS-1", "1400000001", "100.00"))
    lost = report(bridge, payment("HMIS-NONE", "1400000002", "100.00"))

    wrong_state = run("accept", str(confirmed), "--note", "looks fine")
    assert wrong_state.exit_code == 3
    assert one_line(wrong_state) == (
        f"error: payment {confirmed} is confirmed; only a mismatch can be accepted"
    )
    no_payment = run("dismiss", "999999", "--note", "x")
    assert (no_payment.exit_code, one_line(no_payment)) == (4, "error: no payment 999999")
    no_bill = run("match", str(lost), "B-404", "--note", "x")
    assert (no_bill.exit_code, one_line(no_bill)) == (
        4,
        "error: no bill with id or reference B-404",
    )
    empty_note = run("dismiss", str(lost), "--note", "   ")
    assert (empty_note.exit_code, one_line(empty_note)) == (
        2,
        "error: note: required: say why, in 1-500 characters",
    )
    bad_status = run("unmatched", "--status", "paid")
    assert bad_status.exit_code == 2
    assert one_line(bad_status).startswith("error: status: one of unmatched, mismatch")
    assert run("dismiss", str(lost)).exit_code == 2  # --note is required
    assert run("dismiss", "0", "--note", "x").exit_code == 2
    assert run("dismiss", "seven", "--note", "x").exit_code == 2
    assert shown(bridge, lost)["decisions"] == []  # nothing was written
    assert shown(bridge, lost)["status"] == "unmatched"


def test_an_unreachable_database_is_one_line_and_exit_1(
    bridge_env: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://bridge:s3cret-pw@127.0.0.1:1/bridge")
    result = run("dismiss", "1", "--note", "x")
    assert result.exit_code == 1, result.output
    line = one_line(result)
    assert line.startswith("error: the database is unavailable") and "s3cret" not in line
    assert json.dumps(result.output).count("s3cret") == 0
