"""`bridge bills preview FILE.json` against a configured database, next to the route."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from defusedxml.ElementTree import fromstring
from typer.testing import CliRunner, Result

from app.platform.settings import Settings
from app.shell.cli import app
from tests.support.bridge import ADMIN_KEY, API_KEY, Bridge, bill, make_settings


def use(settings: Settings, monkeypatch: pytest.MonkeyPatch, **overrides: str) -> None:
    """The environment `bridge` reads, pointing at the bridge's database."""
    for name, value in {
        "DATABASE_URL": settings.database_url,
        "BRIDGE_API_KEY": settings.api_key.get_secret_value(),
        "BRIDGE_ADMIN_API_KEY": settings.admin_api_key.get_secret_value(),
        "BRIDGE_ENCRYPTION_KEY": settings.encryption_key.get_secret_value(),
        "BRIDGE_ALLOW_INSECURE_SAP_URLS": "true",
        **overrides,
    }.items():
        monkeypatch.setenv(name, value)


def preview(*args: str) -> Result:
    return CliRunner().invoke(app, ["bills", "preview", *args], env={"COLUMNS": "100"})


def written(tmp_path: Path, body: Any, name: str = "bill.json") -> str:
    path = tmp_path / name
    path.write_text(body if isinstance(body, str) else json.dumps(body), encoding="utf-8")
    return str(path)


def one_line_failure(result: Result, code: int, *words: str) -> None:
    assert result.exit_code == code, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert result.output.startswith("error: "), result.output
    for word in words:
        assert word in result.output, result.output


def without_identity(body: dict[str, Any]) -> dict[str, Any]:
    """The preview with its freshly drawn identity blanked wherever it appears, and the SOAP
    body (which carries it, a message UUID and the time) left out."""
    identity = body["entry"]["document_reference_id"]
    blanked = json.loads(json.dumps(body).replace(identity, "IDENTITY"))
    return blanked | {"soap_body": "-"}


def test_the_table_shows_accounts_and_amounts(
    bridge: Bridge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(bridge.settings, monkeypatch)
    result = preview(written(tmp_path, bill()))
    assert result.exit_code == 0, result.output
    for shown in ("12100000", "41000100", "41000200", "PC100", "PC200", "15000.00", "10000.00"):
        assert shown in result.output
    assert "5000.00" in result.output and "PREVIEW" in result.output
    assert "not reserved" in result.output


def test_json_is_the_route_s_answer(
    bridge: Bridge, sim: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(bridge.settings, monkeypatch)
    body = bill(payer={"name": "Ceylinco", "customer": "INS-0001"})
    result = preview(written(tmp_path, body), "--json", "--bill-id", "B-CLI")
    assert result.exit_code == 0, result.output
    with httpx.Client(base_url=bridge.url, headers={"X-API-Key": API_KEY}) as client:
        route = client.post("/bills/B-CLI/preview", json=body).json()
    printed = json.loads(result.output)
    assert without_identity(printed) == without_identity(route)
    assert printed["entry"]["lines"][-1]["kind"] == "customer"
    assert sim.get("/sim/stats").json()["soap_posts"] == 0


def test_soap_prints_the_request_alone(
    bridge: Bridge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(bridge.settings, monkeypatch)
    result = preview(written(tmp_path, bill()), "--soap")
    assert result.exit_code == 0, result.output
    root = fromstring(result.output.strip().encode())
    amounts = [e.text for e in root.iter() if e.tag == "AmountInTransactionCurrency"]
    assert amounts == ["15000.00", "-10000.00", "-5000.00"]


def test_each_bad_file_is_one_line_and_a_non_zero_exit(
    bridge: Bridge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(bridge.settings, monkeypatch)
    one_line_failure(preview(str(tmp_path / "absent.json")), 2, "cannot read", "absent.json")
    one_line_failure(preview(str(tmp_path)), 2, "cannot read", "directory")
    one_line_failure(preview(written(tmp_path, "{not json")), 2, "not valid JSON")
    one_line_failure(preview(written(tmp_path, [1, 2])), 2, "valid dictionary")
    one_line_failure(
        preview(written(tmp_path, bill("HMIS-\x01-7"))), 2, "reference: contains a control"
    )
    one_line_failure(
        preview(written(tmp_path, bill(net_total="16000.00"))),
        2,
        "items: net_value adds up to 15000.00 but net_total is 16000.00",
    )
    missing_item = bill()
    del missing_item["items"][1]["net_value"]
    one_line_failure(preview(written(tmp_path, missing_item)), 2, "items.1.net_value")
    one_line_failure(preview(written(tmp_path, bill()), "--bill-id", "a/b"), 2, "--bill-id")
    one_line_failure(preview(written(tmp_path, bill()), "--json", "--soap"), 2, "one of")


def test_incomplete_settings_exit_3_naming_them(
    bridge: Bridge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with httpx.Client(base_url=bridge.url, headers={"X-API-Key": ADMIN_KEY}) as admin:
        reset = admin.put("/config/SAP Integration - Revenue Account", json={"value": None})
    assert reset.status_code == 200, reset.text
    use(bridge.settings, monkeypatch)
    one_line_failure(
        preview(written(tmp_path, bill())), 3, "incomplete", "SAP Integration - Revenue Account"
    )


@pytest.mark.parametrize(
    ("url", "code", "words"),
    [
        ("postgresql+asyncpg://postgres@127.0.0.1:1/bridge", 1, "cannot reach the database"),
        ("sqlite+aiosqlite:///{tmp}/no/dir/b.db", 2, "cannot open the SQLite file"),
    ],
)
def test_an_unreachable_database_is_one_line(
    url: str, code: int, words: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(make_settings(url.format(tmp=tmp_path)), monkeypatch)
    one_line_failure(preview(written(tmp_path, bill())), code, words)
