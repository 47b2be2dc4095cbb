"""`bridge bills preview FILE.json`: the entry a push of a bill would send, without sending it."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from app.billing.preview import preview
from app.billing.schemas import PATH_BILL_ID, BillIn, BillPreview, PreviewLine
from app.config.loading import SettingsUnreadable, load_config
from app.config.service import BridgeConfig
from app.platform.errors import AppError, describe_validation
from app.platform.json_body import UnreadableJson, parse
from app.platform.settings import Settings

BAD_INPUT, DATABASE_UNAVAILABLE, SETTINGS_INCOMPLETE = 2, 1, 3


class PreviewFailed(Exception):
    """One line saying what is wrong, and the exit code."""

    def __init__(self, message: str, code: int = BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


def run(settings: Settings, file: Path, bill_id: str) -> BillPreview:
    """The route's answer for the bill in `file`, or PreviewFailed."""
    if not (re.fullmatch(PATH_BILL_ID, bill_id) and len(bill_id) <= 64):
        raise PreviewFailed("--bill-id: 1-64 letters, digits or . _ : - as in the push's path")
    bill = _read_bill(file)
    config = _load_config(settings)
    try:
        return preview(config, bill_id, bill)
    except AppError as exc:
        code = SETTINGS_INCOMPLETE if exc.status_code == 409 else BAD_INPUT
        raise PreviewFailed(exc.detail, code) from None


def _read_bill(file: Path) -> BillIn:
    try:
        data = parse(file.read_bytes())
    except OSError as exc:
        raise PreviewFailed(f"cannot read {file}: {exc.strerror or exc}") from None
    except UnreadableJson as exc:
        raise PreviewFailed(f"{file}: {str(exc).removeprefix('body: ')}") from None
    try:
        return BillIn.model_validate(data)
    except ValidationError as exc:
        raise PreviewFailed(f"{file}: {describe_validation(exc.errors())}") from None


def _load_config(settings: Settings) -> BridgeConfig:
    try:
        return load_config(settings, bad_secret_code=BAD_INPUT)
    except SettingsUnreadable as exc:
        raise PreviewFailed(str(exc), exc.code) from None


def as_json(result: BillPreview) -> str:
    return json.dumps(result.model_dump(mode="json"), indent=2, ensure_ascii=False)


def print_table(result: BillPreview, console: Console) -> None:
    entry = result.entry
    header = Table(title=f"journal entry a push of bill {result.bill_id} would send")
    header.add_column("field")
    header.add_column("value")
    for label, value in (
        ("company code", entry.company_code),
        ("document type", entry.document_type),
        ("document / posting date", f"{entry.document_date} / {entry.posting_date}"),
        ("currency", entry.currency),
        ("DocumentReferenceID", f"{entry.document_reference_id} (illustrative, not reserved)"),
        ("reference 1", entry.reference1 or "-"),
        ("header text", entry.header_text),
        ("created by", entry.created_by),
        ("integration enabled", "yes" if result.integration_enabled else "no"),
    ):
        header.add_row(label, value)
    console.print(header)
    console.print(lines_table(entry.lines))


def lines_table(lines: Sequence[PreviewLine], title: str = "lines") -> Table:
    """The entry's lines as the SOAP body orders them (also `bridge bills show`)."""
    table = Table(title=title)
    for column in ("#", "kind", "account", "D/C", "amount"):
        table.add_column(column, no_wrap=True, justify="right" if column == "amount" else "left")
    for column in ("profit centre", "cost centre", "assignment", "text"):
        table.add_column(column)
    for number, line in enumerate(lines, 1):
        table.add_row(
            str(number),
            line.kind,
            Text(line.account),
            line.debit_credit,
            line.amount,
            Text(line.profit_center or "-"),
            Text(line.cost_center or "-"),
            Text(line.assignment or "-"),
            Text(line.text or "-"),
        )
    return table
