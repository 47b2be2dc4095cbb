"""OData V2 helpers: /Date()/ values, filter literals, paging, Gateway errors, decimals."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from app.sap import odata
from app.sap.errors import SapError

ROOT = Path(__file__).resolve().parents[2]


def spec(name: str) -> bytes:
    """Bytes of a file from SAP's specs: $SAP_SPECS_DIR, sapsim/specs or the shared folder."""
    dirs = [os.environ.get("SAP_SPECS_DIR", ""), ROOT / "sapsim" / "specs"]
    dirs += [ROOT.parent / "shared" / "sap" / "specs", "/work/shared/sap/specs"]
    for folder in dirs:
        if folder and (Path(folder) / name).is_file():
            return (Path(folder) / name).read_bytes()
    pytest.fail(f"SAP spec {name} not found; set SAP_SPECS_DIR")


# ------------------------------------------------------------------------------ dates


@pytest.mark.parametrize(
    "value", ["/Date(1492041600000)/", "/Date(1492041600000+0000)/", " /Date(1492041600000)/ "]
)
def test_parse_datetime_utc(value: str) -> None:
    parsed = odata.parse_datetime(value)
    assert parsed == datetime(2017, 4, 13, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(0)


def test_parse_datetime_milliseconds_negative_and_offset() -> None:
    assert odata.parse_datetime("/Date(1711276245123)/") == datetime(
        2024, 3, 24, 10, 30, 45, 123000, tzinfo=UTC
    )
    assert odata.parse_datetime("/Date(-86400000)/") == datetime(1969, 12, 31, tzinfo=UTC)
    # the ticks are UTC; the offset only names the zone the value was recorded in
    assert odata.parse_datetime("/Date(1492041600000+0330)/") == datetime(2017, 4, 13, tzinfo=UTC)


@pytest.mark.parametrize("value", ["2017-04-13", "/Date(abc)/", "Date(1)", "", "/Date()/"])
def test_parse_datetime_rejects_other_forms(value: str) -> None:
    with pytest.raises(ValueError):
        odata.parse_datetime(value)


def test_parse_date() -> None:
    assert odata.parse_date("/Date(1710460800000)/") == date(2024, 3, 15)
    assert odata.parse_date("/Date(1710460800000+0000)/") == date(2024, 3, 15)
    assert odata.parse_date("2024-03-15") == date(2024, 3, 15)
    with pytest.raises(ValueError):
        odata.parse_date("15.03.2024")


# ------------------------------------------------------------------------------ literals


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1000", "'1000'"),
        ("O'Brien's", "'O''Brien''s'"),
        ("", "''"),
        (date(2024, 3, 15), "datetime'2024-03-15T00:00:00'"),
        (datetime(2024, 3, 15, 23, 59, 59), "datetime'2024-03-15T23:59:59'"),
        (
            datetime(2024, 3, 16, 5, 29, 59, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            "datetime'2024-03-15T23:59:59'",
        ),
        (True, "true"),
        (False, "false"),
        (Decimal("15000.00"), "15000.00"),
        (Decimal("1E+3"), "1000"),
        (42, "42"),
        (None, "null"),
    ],
)
def test_literal(value: object, expected: str) -> None:
    assert odata.literal(value) == expected  # type: ignore[arg-type]


def test_literal_refuses_float_and_nan() -> None:
    with pytest.raises(TypeError):
        odata.literal(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        odata.literal(Decimal("NaN"))


# ------------------------------------------------------------------------------ query


def test_query_keeps_odata_readable_and_spaces_as_percent_20() -> None:
    flt = "CompanyCode eq '1000' and PostingDate ge datetime'2024-03-15T00:00:00'"
    params = {"$filter": flt, "$select": "A,B", "$top": 50, "$skip": None}
    text = odata.query(params)  # type: ignore[arg-type]
    assert text == (
        "$filter=CompanyCode%20eq%20'1000'%20and%20PostingDate%20ge%20"
        "datetime'2024-03-15T00:00:00'&$select=A,B&$top=50"
    )
    assert "+" not in text


def test_query_encodes_separators_inside_values() -> None:
    text = odata.query({"$filter": "Name eq 'A&B=C+D#1'"})
    assert "&B" not in text and "=C" not in text and "+" not in text and "#" not in text
    assert dict(parse_qsl(text)) == {"$filter": "Name eq 'A&B=C+D#1'"}


# ------------------------------------------------------------------------------ pages


def test_parse_page_with_count_and_next() -> None:
    payload = {
        "d": {
            "results": [{"AccountingDocument": "0100000008"}, {"AccountingDocument": "1"}],
            "__count": "123",
            "__next": "https://host/sap/opu/odata/sap/X/Y?$skiptoken=2",
        }
    }
    page = odata.parse_page(payload)
    assert page.results == payload["d"]["results"]
    assert page.count == 123 and isinstance(page.count, int)
    assert page.next_url == "https://host/sap/opu/odata/sap/X/Y?$skiptoken=2"


def test_parse_page_last_page_and_array_form() -> None:
    last = odata.parse_page({"d": {"results": []}})
    assert (last.results, last.count, last.next_url) == ([], None, None)
    array = odata.parse_page({"d": [{"a": "1"}]})
    assert (array.results, array.count, array.next_url) == ([{"a": "1"}], None, None)


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"d": {"AccountingDocument": "1"}},
        {"d": {"results": [1]}},
        {"d": {"results": [], "__count": "x"}},
    ],
)
def test_parse_page_rejects_non_collections(payload: dict) -> None:
    with pytest.raises(SapError, match="unreadable"):
        odata.parse_page(payload)


# ------------------------------------------------------------------------------ errors


def test_parse_error_json_sample() -> None:
    body = spec("sample-odata-v2-error-resource-not-found.json")
    assert odata.parse_error(404, body) == "Resource not found for the segment 'Address2'."


def test_parse_error_json_with_redundant_errordetails() -> None:
    body = spec("sample-odata-v2-error-with-errordetails.json")
    message = odata.parse_error(400, body)
    assert message.startswith("Personnel Number ******** : Incorrect data in ***")
    assert message.count("Incorrect data") == 1, "a detail repeating the message is dropped"


def test_parse_error_json_errordetails_that_add_information() -> None:
    body = (
        b'{"error":{"code":"F5/702","message":{"lang":"en","value":"Posting failed"},'
        b'"innererror":{"errordetails":[{"code":"F5/702","message":"Posting failed"},'
        b'{"code":"F5/201","message":"Posting period 003 2024 is not open"}]}}}'
    )
    assert odata.parse_error(400, body) == (
        "Posting failed; Posting period 003 2024 is not open (F5/702)"
    )


def test_parse_error_xml_sample() -> None:
    message = odata.parse_error(403, spec("sample-error-IWFND-MED-170-no-service.xml"))
    assert message == (
        "No service found for namespace '', name 'API_JOURNALENTRYITEMBASIC_SRV', "
        "version '0001' (/IWFND/MED/170)"
    )


def test_parse_error_xml_with_errordetails() -> None:
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><error xmlns="http://schemas.microsoft.com/'
        b'ado/2007/08/dataservices/metadata"><code>/IWBEP/CM_MGW_RT/022</code><message '
        b'xml:lang="en">Invalid filter</message><innererror><errordetails><errordetail>'
        b"<code>/IWBEP/CM_MGW_RT/022</code><message>Invalid filter</message></errordetail>"
        b"<errordetail><code>X/1</code><message>Property 'Foo' not found in type 'Bar'</message>"
        b"</errordetail></errordetails></innererror></error>"
    )
    assert odata.parse_error(400, body) == (
        "Invalid filter; Property 'Foo' not found in type 'Bar' (/IWBEP/CM_MGW_RT/022)"
    )


@pytest.mark.parametrize(
    "body", [b"", b"<html>Bad Gateway</html>", b"{}", b'{"error": "x"}', b"\xff\xfe", b"[1]"]
)
def test_parse_error_falls_back_to_status(body: bytes) -> None:
    assert odata.parse_error(502, body) == (
        "SAP answered HTTP 502 without a readable error message"
    )


# ------------------------------------------------------------------------------ decimals


def test_decimal() -> None:
    assert odata.decimal("15000.00") == Decimal("15000.00")
    assert str(odata.decimal("0.1")) == "0.1"
    assert odata.decimal("-10000") == Decimal(-10000)
    assert odata.decimal("") == Decimal(0) and isinstance(odata.decimal(None), Decimal)
    with pytest.raises(ValueError):
        odata.decimal("abc")
    with pytest.raises(ValueError):
        odata.decimal("NaN")
    with pytest.raises(TypeError):
        odata.decimal(0.1)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ __next


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        (
            "https://sap.example.com/sap/opu/odata/sap/API_X_SRV/A_Set?$skiptoken=2",
            "/sap/opu/odata/sap/API_X_SRV/A_Set?$skiptoken=2",
        ),
        (  # another host, plain http: only the path is kept
            "http://evil.example.net:8080/sap/opu/odata/sap/API_X_SRV/A_Set?$skiptoken=2",
            "/sap/opu/odata/sap/API_X_SRV/A_Set?$skiptoken=2",
        ),
        ("//evil.example.net/x/A_Set?a=1", "/x/A_Set?a=1"),
        (
            "/sap/opu/odata/sap/API_X_SRV/A_Set?$skip=5",
            "/sap/opu/odata/sap/API_X_SRV/A_Set?$skip=5",
        ),
        ("A_Set?$skiptoken=3", "/sap/opu/odata/sap/API_X_SRV/A_Set?$skiptoken=3"),
        ("A_Set", "/sap/opu/odata/sap/API_X_SRV/A_Set"),
    ],
)
def test_rebase_next_keeps_only_path_and_query(next_url: str, expected: str) -> None:
    assert odata.rebase_next(next_url, "/sap/opu/odata/sap/API_X_SRV/A_Set") == expected


def test_rebase_next_resolves_relative_links_against_a_service_root() -> None:
    root = "/sap/opu/odata/sap/API_MATERIAL_DOCUMENT_SRV/"
    assert odata.rebase_next("A_MaterialDocumentHeader?$skiptoken=1", root) == (
        root + "A_MaterialDocumentHeader?$skiptoken=1"
    )
