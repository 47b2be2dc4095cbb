"""`bridge import-items FILE.csv`: the HMIS item master from a CSV file.

Columns (header row, any order, case-insensitive): `item_id`, `code`, `name`, `unit` required;
`barcode`, `active` optional (`active` defaults to true). A file without a required column is
refused whole; a bad row is reported with its line number and left out; the good rows are
upserted in one transaction, so a failure part-way writes nothing.

The file is whatever a spreadsheet or another system saved, so the reader works out how:

- Encoding. A byte-order mark decides (UTF-8, UTF-16 or UTF-32, as Excel's "CSV UTF-8" and
  "Unicode text" write them). Without one, a NUL as the first or second byte means UTF-16 saved
  without its mark (a header starts with a letter). Otherwise the bytes are UTF-8 if they are
  valid UTF-8, else Windows-1252 (Excel's "CSV" on Western Windows; a superset of Latin-1's
  printable characters, with € at 0x80), else Latin-1, which decodes any byte — cp1252 leaves
  0x81, 0x8D, 0x8F, 0x90 and 0x9D undefined. The whole file gets one encoding: a UTF-8 file with
  one Windows-1252 row pasted in reads as Windows-1252, so its other accents come out garbled; the
  report names the encoding so a person can tell. Bytes that are invalid in the encoding a mark
  declared reject their rows.
- Delimiter. Of `,` `;` tab `|`, the one that splits the header line into the most fields that
  include every required column (`;` is what European Excel writes). csv.Sniffer guesses from
  the data and guesses wrong on short files; this rule is checked against the columns we need.
- Rows. Line numbers are the physical line a record starts on, so quoted fields spanning lines
  keep the numbers after them right. A row is rejected with its line number when it has more or
  fewer fields than the header, contains a NUL byte (PostgreSQL text cannot hold one), is not
  valid CSV (stray or unclosed quote; reading resumes on the next line), fails validation, or
  repeats an earlier row's item_id. Blank rows are skipped.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from app.inventory import service
from app.inventory.schemas import MAX_ITEMS_PER_CALL, ItemIn
from app.platform.db import SessionFactory, transaction
from app.platform.errors import describe_validation

REQUIRED = ("item_id", "code", "name", "unit")
OPTIONAL = ("barcode", "active")
DELIMITERS = (",", ";", "\t", "|")
_TRUE = {"", "true", "1", "yes", "y", "t", "active"}
_FALSE = {"false", "0", "no", "n", "f", "inactive"}
_BOMS = (  # UTF-32 LE before UTF-16 LE: its mark starts with UTF-16 LE's
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_WORKBOOKS = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")  # .xlsx (a ZIP archive), .xls


class MissingColumnsError(ValueError):
    """The header lacks required columns; nothing was imported."""


# A subclass so that callers catching MissingColumnsError refuse these files the same way.
class UnreadableFileError(MissingColumnsError):
    """The file cannot be read as an item master at all; nothing was imported."""


@dataclass(frozen=True)
class RejectedRow:
    line: int
    reason: str


@dataclass
class ImportReport:
    """What an import did: rows read, inserted, updated, the rows refused with why, and how the
    file was read (`encoding` a Python codec name, `delimiter` the separator character)."""

    rows: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    encoding: str = "utf-8"
    delimiter: str = ","


def read_items(path: Path) -> tuple[list[ItemIn], ImportReport]:
    """Parse and validate the file: the valid items, and a report of the rows read and rejected."""
    text, encoding, damaged = _decode(path)
    lines = _split_lines(text)
    flaws = _remove_flaws(lines, f"has bytes that are not valid {encoding}" if damaged else None)
    header = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header is None:
        raise UnreadableFileError(f"{path.name}: the file is empty (no header row)")
    delimiter, columns = _header(path.name, lines[header], header + 1, encoding)
    report = ImportReport(encoding=encoding, delimiter=delimiter)
    items: list[ItemIn] = []
    first_line: dict[str, int] = {}
    for line, fields, problem in _records(lines, header + 1, delimiter, flaws):
        if problem is None and not any(value.strip() for value in fields):
            continue
        report.rows += 1
        try:
            if problem is not None:
                raise ValueError(problem)
            item = _item(_record(fields, columns, delimiter))
            if item.item_id in first_line:
                raise ValueError(
                    f"item_id {item.item_id!r} already on line {first_line[item.item_id]}"
                )
        except ValueError as exc:
            report.rejected.append(RejectedRow(line, str(exc)))
            continue
        first_line[item.item_id] = line
        items.append(item)
    return items, report


def _decode(path: Path) -> tuple[str, str, bool]:
    """(text, encoding, whether bytes invalid in a declared encoding were replaced by U+FFFD)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableFileError(f"{path.name}: cannot be read ({exc.strerror})") from None
    if data.startswith(_WORKBOOKS):
        raise UnreadableFileError(
            f"{path.name}: is an Excel workbook, not a CSV file; save it as CSV and import that"
        )
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _decode_declared(data[len(bom) :], encoding)
    if len(data) >= 2 and (data[0] == 0) != (data[1] == 0):
        return _decode_declared(data, "utf-16-be" if data[0] == 0 else "utf-16-le")
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding), encoding, False
        except UnicodeDecodeError:
            pass
    return data.decode("latin-1"), "latin-1", False


def _decode_declared(data: bytes, encoding: str) -> tuple[str, str, bool]:
    try:
        return data.decode(encoding), encoding, False
    except UnicodeDecodeError:
        return data.decode(encoding, errors="replace"), encoding, True


def _split_lines(text: str) -> list[str]:
    """The physical lines, each ending in "\\n" (CRLF and old-Mac CR too; str.splitlines would
    also split at characters such as U+2028 that may sit inside a name)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line + "\n" for line in lines]


def _remove_flaws(lines: list[str], damage: str | None) -> dict[int, str]:
    """{line index: why its record is refused}; NULs are removed because csv cannot parse them."""
    flaws: dict[int, str] = {}
    for index, line in enumerate(lines):
        if damage is not None and "\ufffd" in line:
            flaws[index] = damage
        if "\0" in line:
            lines[index] = line.replace("\0", "")
            flaws[index] = "contains a NUL byte"
    return flaws


def _header(file: str, line: str, number: int, encoding: str) -> tuple[str, list[str]]:
    """The delimiter giving the most fields that include every required column, and the
    column names it gives."""
    splits = {delimiter: _column_names(line, delimiter) for delimiter in DELIMITERS}

    def fit(delimiter: str) -> tuple[int, int]:
        names = splits[delimiter]
        return sum(name in names for name in REQUIRED), len(names)

    delimiter = max(DELIMITERS, key=fit)
    columns = splits[delimiter]
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise MissingColumnsError(
            f"{file}: missing column(s) {', '.join(missing)} in the header on line {number} "
            f"(read as {encoding}, split at {_shown(delimiter)}; also tried "
            f"{' '.join(_shown(d) for d in DELIMITERS if d != delimiter)}); it must name "
            f"{', '.join(REQUIRED)} (optional: {', '.join(OPTIONAL)})"
        )
    twice = [name for name in (*REQUIRED, *OPTIONAL) if columns.count(name) > 1]
    if twice:
        raise UnreadableFileError(
            f"{file}: column(s) {', '.join(twice)} appear more than once in the header on line "
            f"{number}; keep one of each"
        )
    return delimiter, columns


def _column_names(line: str, delimiter: str) -> list[str]:
    try:
        return [name.strip().lower() for name in next(csv.reader([line], delimiter=delimiter))]
    except csv.Error:  # e.g. a header longer than csv's field size limit
        return []


def _shown(delimiter: str) -> str:
    return "tab" if delimiter == "\t" else repr(delimiter)


class _Lines:
    """The lines for csv.reader, one at a time, remembering how far it has read: the line a
    record starts on, and where to resume after a record that is not valid CSV."""

    def __init__(self, lines: list[str], position: int) -> None:
        self.lines = lines
        self.position = position

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.position >= len(self.lines):
            raise StopIteration
        self.position += 1
        return self.lines[self.position - 1]


def _records(
    lines: list[str], start: int, delimiter: str, flaws: dict[int, str]
) -> Iterator[tuple[int, list[str], str | None]]:
    """(line number, fields, why the record is refused or None) for each record after the header."""
    source = _Lines(lines, start)
    reader = csv.reader(source, delimiter=delimiter, strict=True)
    while True:
        first = source.position
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield first + 1, [], _csv_problem(exc)
            # An unclosed quote swallows the lines after it: resume right after its line so that
            # they are read (and reported) as rows of their own.
            source.position = first + 1
            reader = csv.reader(source, delimiter=delimiter, strict=True)
            continue
        flaw = next((flaws[i] for i in range(first, source.position) if i in flaws), None)
        yield first + 1, fields, flaw


def _csv_problem(exc: csv.Error) -> str:
    message = str(exc)
    if "unexpected end of data" in message:
        return 'has a quote (") that is never closed'
    if "expected after" in message:
        return 'has text after a closing quote; write a quote inside a field as two quotes ("")'
    return f"is not valid CSV ({message})"


def _record(fields: list[str], columns: list[str], delimiter: str) -> dict[str, str]:
    if len(fields) < len(columns):
        raise ValueError(f"has {len(fields)} fields, the header has {len(columns)}")
    if len(fields) > len(columns):
        raise ValueError(
            f"has {len(fields)} fields, the header has {len(columns)}; a value containing "
            f"{_shown(delimiter)} must be in double quotes"
        )
    return dict(zip(columns, fields, strict=True))


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
    items, report = read_items(path)
    async with transaction(sessions) as session:
        for start in range(0, len(items), MAX_ITEMS_PER_CALL):
            batch = items[start : start + MAX_ITEMS_PER_CALL]
            result = await service.upsert_items(session, batch)
            report.inserted += result.inserted
            report.updated += result.updated
            if progress is not None:
                progress(len(batch))
    return report
