"""`bridge import-items FILE.csv` on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.db import make_engine, make_session_factory
from app.inventory import importer
from tests.support.bridge import make_settings


async def run_import(url: str, path: Path) -> importer.ImportReport:
    engine = make_engine(url)
    try:
        return await importer.import_items(make_session_factory(engine), path)
    finally:
        await engine.dispose()


async def test_import_reports_rejected_rows_with_line_numbers(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text(
        "Item_ID,code,barcode,name,unit,active\n"
        "1,MED-1,4790001,Paracetamol,TAB,true\n"
        "2,,4790002,No code,TAB,true\n"
        "3,MED-3,,Amoxicillin,CAP,maybe\n"
        "1,MED-1B,,Duplicate,TAB,true\n"
        "4,MED-4,,Saline,BOT,false\n",
        encoding="utf-8",
    )
    report = await run_import(db_url, path)
    assert (report.rows, report.inserted, report.updated) == (5, 2, 0)
    assert [(r.line, r.reason.split(":")[0]) for r in report.rejected] == [
        (3, "code"),
        (4, "active must be true or false, got 'maybe'"),
        (5, "item_id '1' already on line 2"),
    ]
    again = await run_import(db_url, path)
    assert (again.inserted, again.updated) == (0, 2)


async def test_missing_columns_refuse_the_file(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("item_id,name\n1,Paracetamol\n", encoding="utf-8")
    with pytest.raises(importer.MissingColumnsError, match="code, unit"):
        await run_import(db_url, path)


def test_cli_import_items(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(sqlite_url)
    for name, value in (
        ("DATABASE_URL", sqlite_url),
        ("BRIDGE_API_KEY", settings.api_key.get_secret_value()),
        ("BRIDGE_ADMIN_API_KEY", settings.admin_api_key.get_secret_value()),
        ("BRIDGE_ENCRYPTION_KEY", settings.encryption_key.get_secret_value()),
    ):
        monkeypatch.setenv(name, value)
    path = tmp_path / "items.csv"
    path.write_text("item_id,code,name,unit\nC1,MED-C1,Cetirizine,TAB\nC2,,x,TAB\n")
    result = CliRunner().invoke(app, ["import-items", str(path)])
    assert result.exit_code == 1, result.output
    assert "inserted" in result.output and "rejected rows" in result.output
    missing = tmp_path / "bad.csv"
    missing.write_text("item_id\nX\n")
    result = CliRunner().invoke(app, ["import-items", str(missing)])
    assert result.exit_code == 2 and "nothing was imported" in result.output


def test_cli_sync_inventory(bridge, sim, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from tests.inventory.conftest import generate

    generate(sim, seed=8, items=120, days=5)
    settings = bridge.settings
    for name, value in (
        ("DATABASE_URL", settings.database_url),
        ("BRIDGE_API_KEY", settings.api_key.get_secret_value()),
        ("BRIDGE_ADMIN_API_KEY", settings.admin_api_key.get_secret_value()),
        ("BRIDGE_ENCRYPTION_KEY", settings.encryption_key.get_secret_value()),
        ("BRIDGE_ALLOW_INSECURE_SAP_URLS", "true"),
    ):
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(
        app, ["sync-inventory", "--from", "2024-03-01", "--to", "2024-03-05"]
    )
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output and "materials HMIS cannot match" in result.output
    bad = CliRunner().invoke(app, ["sync-inventory", "--from", "01-03-2024"])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
