"""`bridge import-items FILE.csv` on both databases."""

from __future__ import annotations

import codecs
import csv
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner

from app.inventory import importer
from app.inventory.models import InventoryItem
from app.inventory.schemas import ItemIn
from app.platform.db import make_engine, make_session_factory
from app.shell.cli import app
from tests.support.bridge import make_settings


async def run_import(url: str, path: Path) -> importer.ImportReport:
    engine = make_engine(url)
    try:
        return await importer.import_items(make_session_factory(engine), path)
    finally:
        await engine.dispose()


async def stored_names(url: str) -> dict[str, str]:
    engine = make_engine(url)
    try:
        async with make_session_factory(engine)() as session:
            rows = await session.execute(select(InventoryItem.item_id, InventoryItem.name))
            return {item_id: name for item_id, name in rows}
    finally:
        await engine.dispose()


def write(tmp_path: Path, data: bytes, name: str = "items.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read(tmp_path: Path, data: bytes) -> tuple[list[ItemIn], importer.ImportReport]:
    return importer.read_items(write(tmp_path, data))


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
    assert result.exit_code == 2 and "nothing was imported" in " ".join(result.output.split())


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


# --- files as people save them ----------------------------------------------------------------

UTF16_LE_BOM = codecs.BOM_UTF16_LE


@pytest.mark.parametrize(
    ("data", "encoding", "delimiter", "name"),
    [
        pytest.param(
            b"item_id;code;name;unit\n1;A;caf\xe9;EA\n", "cp1252", ";", "café", id="latin-1 ;"
        ),
        pytest.param(
            b"item_id,code,name,unit\r\n1,A,Syrup \x805,EA\r\n", "cp1252", ",", "Syrup €5", id="€"
        ),
        pytest.param(  # 0x81 is undefined in cp1252: Latin-1 reads any byte
            b"item_id,code,name,unit\n1,A,caf\xe9\x81,EA\n",
            "latin-1",
            ",",
            "café\x81",
            id="latin-1 fallback",
        ),
        pytest.param(
            codecs.BOM_UTF8 + "item_id,code,name,unit\n1,A,Crème ½,EA\n".encode(),
            "utf-8-sig",
            ",",
            "Crème ½",
            id="utf-8 BOM",
        ),
        pytest.param(  # Excel's "Unicode text": UTF-16 LE with a mark, tabs, CRLF
            UTF16_LE_BOM + "item_id\tcode\tname\tunit\r\n1\tA\t药 💊\tEA\r\n".encode("utf-16-le"),
            "utf-16-le",
            "\t",
            "药 💊",
            id="utf-16 LE BOM tab",
        ),
        pytest.param(
            codecs.BOM_UTF16_BE + "item_id|code|name|unit\n1|A|é|EA\n".encode("utf-16-be"),
            "utf-16-be",
            "|",
            "é",
            id="utf-16 BE BOM |",
        ),
        pytest.param(
            "item_id,code,name,unit\n1,A,é,EA\n".encode("utf-16-le"),
            "utf-16-le",
            ",",
            "é",
            id="utf-16 LE without BOM",
        ),
        pytest.param(
            "item_id,code,name,unit\n1,A,é,EA\n".encode("utf-32"),
            "utf-32-le",
            ",",
            "é",
            id="utf-32 BOM",
        ),
        pytest.param(
            b"item_id\tcode\tname\tunit\n1\tA\tPara, 500 mg\tEA\n",
            "utf-8",
            "\t",
            "Para, 500 mg",
            id="utf-8 tab",
        ),
        pytest.param(  # old Mac line ends; U+2028 inside a name is not a line end
            "item_id,code,name,unit\r1,A,a\u2028b,EA\r".encode(),
            "utf-8",
            ",",
            "a\u2028b",
            id="CR line ends",
        ),
    ],
)
def test_encoding_and_delimiter_are_detected(
    tmp_path: Path, data: bytes, encoding: str, delimiter: str, name: str
) -> None:
    items, report = read(tmp_path, data)
    assert (report.encoding, report.delimiter, report.rows, report.rejected) == (
        encoding,
        delimiter,
        1,
        [],
    )
    assert [(item.item_id, item.code, item.name, item.unit) for item in items] == [
        ("1", "A", name, "EA")
    ]


async def test_files_in_other_encodings_store_the_right_text(db_url: str, tmp_path: Path) -> None:
    files = (
        b"item_id;code;name;unit\n1;A;caf\xe9 \x80;EA\n",
        UTF16_LE_BOM + "item_id\tcode\tname\tunit\r\n2\tB\t药 💊\tEA\r\n".encode("utf-16-le"),
        codecs.BOM_UTF8 + "item_id,code,name,unit\n3,C,Crème,EA\n".encode(),
    )
    for index, data in enumerate(files):
        report = await run_import(db_url, write(tmp_path, data, f"{index}.csv"))
        assert (report.inserted, report.rejected) == (1, [])
    assert await stored_names(db_url) == {"1": "café €", "2": "药 💊", "3": "Crème"}


BAD_ROWS = (
    "item_id,code,name,unit,active\n"  # 1
    "1,A,Aspirin,TAB,true\n"  # 2
    "2,B\n"  # 3 short
    "3,C,Cream,TUB,true,extra\n"  # 4 long
    "4,D,Ni\0trate,TAB,true\n"  # 5 NUL
    '5,"E,e","Gauze, sterile\n'  # 6 quoted: the delimiter and a newline
    '10 x 10 cm",BOX,true\n'  # 7
    "\n"  # 8 blank
    '6,F,"Big" bandage,BOX,true\n'  # 9 text after a closing quote
    "7,,No code,TAB,true\n"  # 10
    "8,H,Lotion,BOT,maybe\n"  # 11
    "1,A2,Again,TAB,true\n"  # 12 duplicate
    "9,I,Saline,BOT,false\n"  # 13
    ",,,,\n"  # 14 blank
    '10,J,"Tape,ROLL,true\n'  # 15 a quote never closed
    "11,K,Zinc,TUB,\n"  # 16
)


async def test_every_bad_row_is_reported_and_the_good_rows_imported(
    db_url: str, tmp_path: Path
) -> None:
    report = await run_import(db_url, write(tmp_path, BAD_ROWS.encode()))
    assert [(r.line, r.reason) for r in report.rejected] == [
        (3, "has 2 fields, the header has 5"),
        (4, "has 6 fields, the header has 5; a value containing ',' must be in double quotes"),
        (5, "contains a NUL byte"),
        (9, 'has text after a closing quote; write a quote inside a field as two quotes ("")'),
        (10, "code: String should have at least 1 character"),
        (11, "active must be true or false, got 'maybe'"),
        (12, "item_id '1' already on line 2"),
        (15, 'has a quote (") that is never closed'),
    ]
    assert (report.rows, report.inserted, report.updated) == (12, 4, 0)
    assert await stored_names(db_url) == {
        "1": "Aspirin",
        "5": "Gauze, sterile\n10 x 10 cm",
        "9": "Saline",
        "11": "Zinc",
    }


def test_nul_bytes_reject_their_row_even_inside_a_quoted_field(tmp_path: Path) -> None:
    data = b'item_id,code,name,unit\n1,A,"two\nli\0nes",EA\n2,B,ok,EA\n\0\n3,C,ok,EA\n'
    items, report = read(tmp_path, data)
    assert [item.item_id for item in items] == ["2", "3"]
    assert [(r.line, r.reason) for r in report.rejected] == [
        (2, "contains a NUL byte"),
        (5, "contains a NUL byte"),
    ]


def test_bytes_invalid_in_the_declared_encoding_reject_their_row(tmp_path: Path) -> None:
    good = "item_id,code,name,unit\n1,A,x,EA\n2,B,y,EA\n".encode("utf-16-le")
    items, report = read(tmp_path, UTF16_LE_BOM + good + b"3")  # an odd byte: cut off
    assert [item.item_id for item in items] == ["1", "2"]
    assert report.rejected == [importer.RejectedRow(4, "has bytes that are not valid utf-16-le")]
    items, report = read(tmp_path, codecs.BOM_UTF8 + b"item_id,code,name,unit\n1,A,\xe9,EA\n")
    assert items == []
    assert report.rejected == [importer.RejectedRow(2, "has bytes that are not valid utf-8-sig")]


@pytest.mark.parametrize(
    ("data", "error", "fragment"),
    [
        (b"", importer.UnreadableFileError, "empty"),
        (b"\r\n\n  \n", importer.UnreadableFileError, "empty"),
        (b"PK\x03\x04\x14\x00\x06\x00", importer.UnreadableFileError, "Excel workbook"),
        (b"item_id,code,Name,name ,unit\n", importer.UnreadableFileError, "name appear more"),
        (
            b"item_id code name unit\n1 A x EA\n",
            importer.MissingColumnsError,
            "missing column(s) item_id, code, name, unit in the header on line 1 (read as "
            "utf-8, split at ','; also tried ';' tab '|')",
        ),
        (b"\n\nitem_id;code;name\n", importer.MissingColumnsError, "unit in the header on line 3"),
    ],
)
def test_unreadable_files_are_refused_with_one_line(
    tmp_path: Path, data: bytes, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as caught:
        read(tmp_path, data)
    message = str(caught.value)
    assert fragment in message and "\n" not in message
    assert isinstance(caught.value, importer.MissingColumnsError)  # what the CLI catches


def test_a_path_that_cannot_be_read_is_refused(tmp_path: Path) -> None:
    with pytest.raises(importer.UnreadableFileError, match="cannot be read"):
        importer.read_items(tmp_path)


def test_cli_reports_bad_rows_of_any_file_without_a_traceback(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(sqlite_url)
    for name, value in (
        ("DATABASE_URL", sqlite_url),
        ("BRIDGE_API_KEY", settings.api_key.get_secret_value()),
        ("BRIDGE_ADMIN_API_KEY", settings.admin_api_key.get_secret_value()),
        ("BRIDGE_ENCRYPTION_KEY", settings.encryption_key.get_secret_value()),
    ):
        monkeypatch.setenv(name, value)
    files = {
        "latin.csv": (b"item_id;code;name;unit\nL1;A;caf\xe9;EA\nL2;B\n", 1),
        "nul.csv": (b"item_id,code,name,unit\nN1,A,a\0b,EA\n", 1),
        "empty.csv": (b"", 2),
        "book.xlsx": (b"PK\x03\x04rest", 2),
    }
    for name, (data, code) in files.items():
        result = CliRunner().invoke(app, ["import-items", str(write(tmp_path, data, name))])
        assert isinstance(result.exception, SystemExit), (name, result.exception)
        assert result.exit_code == code, (name, result.output)


# --- property: any encoding, delimiter and line end -------------------------------------------

ENCODERS = {
    "utf-8": lambda text: text.encode("utf-8"),
    "utf-8-sig": lambda text: text.encode("utf-8-sig"),
    "utf-16-le": lambda text: UTF16_LE_BOM + text.encode("utf-16-le"),
    "utf-16-be": lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
    "utf-32-le": lambda text: codecs.BOM_UTF32_LE + text.encode("utf-32-le"),
    "cp1252": lambda text: text.encode("cp1252"),
}
# cp1252 files get accented letters at or above 0xC0 only: a byte 0x80-0xBF after one could make
# the file valid UTF-8 by chance, and it would rightly be read as UTF-8.
WESTERN = "abcXYZ019 -.'\",;|\t\néüßÖç"
WIDE = WESTERN + "€½药💊\u2028"
ACTIVE = {"": True, "true": True, "yes": True, "0": False, "FALSE": False}
KINDS = ("good", "short", "long", "nul", "no code", "bad active", "duplicate", "quote", "blank")


@dataclass
class Row:
    kind: str
    name: str
    active: str
    barcode: str


@st.composite
def item_files(draw: st.DrawFn) -> tuple[str, str, str, list[str], int, list[Row]]:
    encoding = draw(st.sampled_from(sorted(ENCODERS)))
    alphabet = WESTERN if encoding == "cp1252" else WIDE
    rows = st.builds(
        Row,
        kind=st.sampled_from(KINDS),
        name=st.text(alphabet, max_size=10).map(lambda text: "N" + text),
        active=st.sampled_from(sorted(ACTIVE)),
        barcode=st.sampled_from(["", "4790001"]),
    )
    return (
        encoding,
        draw(st.sampled_from(importer.DELIMITERS)),
        draw(st.sampled_from(["\n", "\r\n"])),
        draw(st.permutations([*importer.REQUIRED, *importer.OPTIONAL])),
        draw(st.integers(0, 2)),  # blank lines before the header
        draw(st.lists(rows, max_size=25)),
    )


def csv_line(values: list[str], delimiter: str, newline: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=newline).writerow(values)
    return buffer.getvalue()


@settings(max_examples=300, deadline=None)
@given(item_files())
def test_property_good_rows_imported_bad_rows_reported_on_their_line(
    case: tuple[str, str, str, list[str], int, list[Row]],
) -> None:
    encoding, delimiter, newline, columns, blank_lines, rows = case
    header = [name.upper() if i % 2 else name for i, name in enumerate(columns)]
    text = newline * blank_lines + csv_line(header, delimiter, newline)
    line = text.count("\n") + 1
    good: list[ItemIn] = []
    first_line: dict[str, int] = {}
    rejected: list[tuple[int, str]] = []
    for index, row in enumerate(rows):
        item_id = str(index)
        if row.kind == "duplicate" and first_line:
            item_id = next(iter(first_line))
        values = {
            "item_id": item_id,
            "code": "" if row.kind == "no code" else f"C{index}",
            "name": row.name,
            "unit": "EA",
            "barcode": row.barcode,
            "active": "maybe" if row.kind == "bad active" else row.active,
        }
        fields = [values[name] for name in columns]
        if row.kind == "short":
            fields = fields[:-1]
        if row.kind == "long":
            fields.append("extra")
        written = csv_line(fields, delimiter, newline)
        if row.kind == "nul":
            written = "\0" + written
        if row.kind == "quote":  # the name written raw, the other values need no quotes
            values["name"] = '"Q" x'
            written = delimiter.join(values[name] for name in columns) + newline
        if row.kind == "blank":
            written = delimiter * (len(columns) - 1) + newline
        expected = {
            "short": f"has {len(columns) - 1} fields, the header has {len(columns)}",
            "long": f"has {len(columns) + 1} fields, the header has {len(columns)}",
            "nul": "contains a NUL byte",
            "no code": "code:",
            "bad active": "active must be true or false, got 'maybe'",
            "quote": "has text after a closing quote",
        }.get(row.kind)
        if row.kind == "duplicate" and item_id in first_line:
            expected = f"item_id {item_id!r} already on line {first_line[item_id]}"
        if expected is not None:
            rejected.append((line, expected))
        elif row.kind != "blank":
            first_line[item_id] = line
            good.append(
                ItemIn(
                    item_id=item_id,
                    code=values["code"],
                    barcode=row.barcode or None,
                    name=row.name,
                    unit="EA",
                    active=ACTIVE[row.active],
                )
            )
        text += written
        line += written.count("\n")

    with tempfile.TemporaryDirectory() as directory:
        items, report = read(Path(directory), ENCODERS[encoding](text))

    assert items == good
    got = [(r.line, r.reason) for r in report.rejected]
    assert len(got) == len(rejected), (got, rejected)
    assert all(
        line == want_line and reason.startswith(want)
        for (line, reason), (want_line, want) in zip(got, rejected, strict=True)
    ), (got, rejected)
    assert report.rows == sum(row.kind != "blank" for row in rows)
    assert report.delimiter == delimiter
    ascii_only = encoding == "cp1252" and text.isascii()
    assert report.encoding == ("utf-8" if ascii_only else encoding)
