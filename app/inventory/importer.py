"""`bridge import-items FILE.csv`: the HMIS item master from a CSV file.

Columns (header row, any order, case-insensitive): `item_id`, `code`, `name`, `unit` required;
`barcode`, `active` optional (`active` defaults to true). A file without a required column is
refused whole; a bad row is reported with its line number and left out; the good rows are
upserted in one transaction, so a failure part-way writes nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from app.db import SessionFactory, transaction
from app.errors import describe_validation
from app.inventory import service
from app.inventory.schemas import MAX_ITEMS_PER_CALL, ItemIn

REQUIRED = ("item_id", "code", "name", "unit")
OPTIONAL = ("barcode", "active")
_TRUE = {"", "true", "1", "yes", "y", "t", "active"}
_FALSE = {"false", "0", "no", "n", "f", "inactive"}


class MissingColumnsError(ValueError):
    """The CSV lacks required columns; nothing was imported."""


@dataclass(frozen=True)
class RejectedRow:
    line: int
    reason: str


@dataclass
class ImportReport:
    """What an import did: rows read, inserted, updated, and the rows refused with why."""

    rows: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)


def read_items(path: Path) -> tuple[list[ItemIn], list[RejectedRow], int]:
    """Parse and validate the file: (valid items, rejected rows, data rows read)."""
    items: list[ItemIn] = []
    rejected: list[RejectedRow] = []
    first_line: dict[str, int] = {}
    rows = 0
    for line, record in _records(path):
        rows += 1
        try:
            item = _item(record)
        except ValueError as exc:
            rejected.append(RejectedRow(line, str(exc)))
            continue
        if item.item_id in first_line:
            rejected.append(
                RejectedRow(
                    line, f"item_id {item.item_id!r} already on line {first_line[item.item_id]}"
                )
            )
            continue
        first_line[item.item_id] = line
        items.append(item)
    return items, rejected, rows


def _records(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = {(name or "").strip().lower() for name in reader.fieldnames or []}
        missing = [name for name in REQUIRED if name not in columns]
        if missing:
            raise MissingColumnsError(
                f"{path.name}: missing column(s) {', '.join(missing)}; the header row must name "
                f"{', '.join(REQUIRED)} (and optionally {', '.join(OPTIONAL)})"
            )
        for record in reader:
            clean = {
                (k or "").strip().lower(): (v or "")
                for k, v in record.items()
                if isinstance(v, str)
            }
            if any(clean.values()):
                yield reader.line_num, clean


def _item(record: dict[str, str]) -> ItemIn:
    active_text = record.get("active", "").strip().lower()
    if active_text not in _TRUE | _FALSE:
        raise ValueError(f"active must be true or false, got {active_text!r}")
    try:
        return ItemIn(
            item_id=record["item_id"],
            code=record["code"],
            barcode=record.get("barcode") or None,
            name=record["name"],
            unit=record["unit"],
            active=active_text in _TRUE,
        )
    except ValidationError as exc:
        raise ValueError(describe_validation(exc.errors())) from None


async def import_items(
    sessions: SessionFactory, path: Path, progress: Callable[[int], None] | None = None
) -> ImportReport:
    """Upsert the file's valid rows in batches of 10,000, all in one transaction."""
    items, rejected, rows = read_items(path)
    report = ImportReport(rows=rows, rejected=rejected)
    async with transaction(sessions) as session:
        for start in range(0, len(items), MAX_ITEMS_PER_CALL):
            batch = items[start : start + MAX_ITEMS_PER_CALL]
            result = await service.upsert_items(session, batch)
            report.inserted += result.inserted
            report.updated += result.updated
            if progress is not None:
                progress(len(batch))
    return report
