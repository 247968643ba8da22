"""Every landing format and encoding, with real bytes written here; known answers for a real Apache log (tests/data)."""

import datetime as dt
import gzip
import io
import json
from decimal import Decimal

import polars as pl
import pytest
from conftest import TEST_DATA

from lakehouse.exceptions import UnreadableFileError
from lakehouse.ingest.bronze import prepare_bronze
from lakehouse.ingest.csv_reader import CsvOptions, read_csv
from lakehouse.ingest.infer import infer_types
from lakehouse.ingest.readers import count_records, detect_format, read_file

APACHE_LOG = TEST_DATA / "apache_logs" / "apache_logs.gz"
NOW = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
TEXT = "id,name,city\n1,José,München\n2,Zoë,Kraków\n"


@pytest.mark.parametrize(
    "data, encoding",
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (b"\xef\xbb\xbf" + TEXT.encode("utf-8"), "utf-8-sig"),
        (TEXT.encode("utf-16"), "utf-16-le"),  # Python writes a little-endian BOM
        (b"\xfe\xff" + TEXT.encode("utf-16-be"), "utf-16-be"),
        (TEXT.encode("latin-1"), "latin-1"),
    ],
)
def test_encodings_are_detected_and_recorded(data, encoding):
    result = read_csv(data, source="f.csv")
    assert result.info["encoding"] == encoding
    assert result.rows.get_column("name").to_list() == ["José", "Zoë"]
    assert result.rows.get_column("city").to_list() == ["München", "Kraków"]
    assert result.rows.columns[0] == "id"  # the BOM is not part of the first column name


def test_cp1252_is_told_apart_from_latin1():
    data = "id,note\n1,“quoted” costs 5 €\n".encode("cp1252")
    result = read_csv(data, source="f.csv")
    assert result.info["encoding"] == "cp1252"
    assert result.rows.get_column("note").item() == "“quoted” costs 5 €"


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed(delimiter):
    data = (
        delimiter.join(["a", "b", "c"]) + "\n" + delimiter.join(["1", "x,y" if delimiter != "," else "xy", "3"]) + "\n"
    )
    result = read_csv(data.encode(), source="f")
    assert result.info["delimiter"] == delimiter
    assert result.rows.columns[:3] == ["a", "b", "c"]


def test_header_is_sniffed_and_names_are_generated_without_one():
    with_header = read_csv(b"name,amount\nx,1\n", source="f")
    assert with_header.info["header"] is True and with_header.rows.height == 1
    without = read_csv(b"1,2024-01-01,3.5\n2,2024-01-02,4.5\n", source="f")
    assert without.info["header"] is False
    assert without.rows.columns[:3] == ["column_1", "column_2", "column_3"] and without.rows.height == 2
    forced = read_csv(b"x,y\n1,2\n", source="f", options=CsvOptions(header=False))
    assert forced.rows.height == 2


def test_null_tokens_default_and_custom():
    # lossless by default: only the empty unquoted field is null (more in test_csv_nulls.py)
    data = b'a,b,c,d,e,f,g,h,i\n,NA,N/A,NULL,null,None,.,"",ok\n'
    row = read_csv(data, source="f").rows.row(0, named=True)
    assert [row[c] for c in "abcdefghi"] == [None, "NA", "N/A", "NULL", "null", "None", ".", "", "ok"]
    custom = read_csv(b"a,b,c\n-,NA,\n", source="f", options=CsvOptions(null_values=["-"])).rows.row(0, named=True)
    assert custom == {"a": None, "b": "NA", "c": None, "_source_file": "f", "_source_line": 2}


def test_type_inference_is_lossless():
    data = (
        b"zip,card,comma,n,amount,ratio,flag,day,ts,text\n"
        b'00123,4111111111111111111,"1,7",1,10.5,1e-3,true,2024-01-02,2024-01-02T10:00:00+02:00,a\n'
        b'00456,4222222222222222222,"2,0",-20,3.25,2.5E2,FALSE,2024-01-03,2024-01-03 11:00:00Z,b\n'
    )
    rows = read_csv(data, source="f").rows
    types = infer_types(rows.select([c for c in rows.columns if not c.startswith("_")]))
    assert types["zip"] == pl.String  # leading zeros are identifiers
    assert types["card"] == pl.String  # too long for int64: stays text
    assert types["comma"] == pl.String  # 1,7 is never 17 nor 1.7
    assert types["n"] == pl.Int64
    assert types["amount"] == pl.Decimal(18, 2)
    assert types["ratio"] == pl.Float64
    assert types["flag"] == pl.Boolean
    assert types["day"] == pl.Date
    assert types["ts"] == pl.Datetime("us", "UTC")
    batch = prepare_bronze([read_csv(data, source="f")], table_schema=None, ingested_at=NOW)
    first = batch.rows.row(0, named=True)
    assert first["zip"] == "00123" and first["comma"] == "1,7" and first["amount"] == Decimal("10.50")
    assert first["ts"] == dt.datetime(2024, 1, 2, 8, 0, tzinfo=dt.UTC)
    assert batch.rows_quarantined == 0


def test_schema_hints_override_inference_and_misfits_are_quarantined():
    data = b"code,amount\n007,1.50\n008,abc\n"
    batch = prepare_bronze(
        [read_csv(data, source="f.csv")],
        table_schema=None,
        hints={"code": "int64", "amount": "decimal(10,2)"},
        ingested_at=NOW,
    )
    assert batch.rows.select("code", "amount").to_dicts() == [{"code": 7, "amount": Decimal("1.50")}]
    assert batch.quarantine.select("_source_line", "_reason").to_dicts() == [
        {"_source_line": 3, "_reason": "column amount: abc does not fit decimal(10,2)"}
    ]
    assert batch.rows_read == 2


def test_quoted_newlines_keep_exact_line_numbers():
    data = b'id,note\n1,"two\nlines"\n2,plain\n3\n4,"x"\n'
    result = read_csv(data, source="f")
    assert result.info["parser"].startswith("python-csv")
    assert result.rows.select("id", "note", "_source_line").to_dicts() == [
        {"id": "1", "note": "two\nlines", "_source_line": 2},
        {"id": "2", "note": "plain", "_source_line": 4},
        {"id": "4", "note": "x", "_source_line": 6},
    ]
    assert result.quarantine.select("_source_line", "_raw").to_dicts() == [{"_source_line": 5, "_raw": "3"}]


def test_quoted_newline_without_bad_rows_still_numbers_lines_exactly():
    result = read_csv(b'id,note\n1,"two\nlines"\n2,plain\n""," "\n', source="f")
    assert result.rows.select("id", "_source_line").to_dicts() == [
        {"id": "1", "_source_line": 2},
        {"id": "2", "_source_line": 4},
        {"id": "", "_source_line": 5},  # a quoted empty string is a value, not a null
    ]
    assert result.quarantine.height == 0


def test_fast_path_line_numbers_with_blank_lines_crlf_and_duplicated_bad_lines():
    data = b"a,b\r\n1,2\r\n\r\nbad\r\n3,4\r\nbad\r\n\r\n5,6"
    result = read_csv(data, source="f")
    assert result.info["parser"] == "pyarrow"
    assert result.rows.select("a", "_source_line").to_dicts() == [
        {"a": "1", "_source_line": 2},
        {"a": "3", "_source_line": 5},
        {"a": "5", "_source_line": 8},
    ]
    assert result.quarantine.get_column("_source_line").to_list() == [4, 6]


def test_gzipped_csv():
    result = read_file(gzip.compress(TEXT.encode()), source="f.csv.gz")
    assert result.info["compression"] == "gzip" and result.rows.height == 2


def test_ndjson_is_flattened_and_bad_lines_quarantined():
    lines = [
        {
            "id": 1,
            "ctx": {"page": "/a", "device": {"os": "ios"}},
            "items": [{"sku": "x", "qty": 1}, {"sku": "y", "qty": 2}],
        },
        {"id": 2, "ctx": {"page": "/b", "device": {"os": "linux"}}, "items": []},
    ]
    data = (json.dumps(lines[0]) + "\n{broken\n\n[1, 2]\n" + json.dumps(lines[1]) + "\n").encode()
    result = read_file(data, source="e.ndjson", fmt="ndjson")
    assert result.rows.columns[:4] == ["id", "ctx__page", "ctx__device__os", "items"]
    assert result.rows.get_column("_source_line").to_list() == [1, 5]
    assert result.rows.get_column("items").to_list()[0] == [{"sku": "x", "qty": 1}, {"sku": "y", "qty": 2}]
    reasons = result.quarantine.select("_source_line", "_reason").to_dicts()
    assert [r["_source_line"] for r in reasons] == [2, 4]
    assert (
        reasons[0]["_reason"].startswith("invalid JSON")
        and reasons[1]["_reason"] == "expected a JSON object, found list"
    )
    exploded = read_file(data, source="e.ndjson", fmt="ndjson", explode=("items",))
    assert exploded.rows.select("id", "items__sku", "items__qty").to_dicts()[:2] == [
        {"id": 1, "items__sku": "x", "items__qty": 1},
        {"id": 1, "items__sku": "y", "items__qty": 2},
    ]


def test_ndjson_with_conflicting_types_keeps_every_value_as_text():
    data = b'{"id": 1, "v": 5}\n{"id": 2, "v": "five"}\n{"id": 3, "v": {"n": 5}}\n'
    result = read_file(data, source="e.ndjson", fmt="ndjson")
    assert result.rows.get_column("v").to_list() == ["5", "five", '{"n": 5}']
    assert result.quarantine.height == 0


def test_json_document_with_records_path():
    doc = {"meta": {"page": 1}, "data": {"items": [{"id": 1, "a": {"b": "x"}}, "oops", {"id": 2, "a": {"b": "y"}}]}}
    result = read_file(json.dumps(doc).encode(), source="d.json", fmt="json", options={"records_path": "data.items"})
    assert result.rows.select("id", "a__b", "_source_line").to_dicts() == [
        {"id": 1, "a__b": "x", "_source_line": 1},
        {"id": 2, "a__b": "y", "_source_line": 3},
    ]
    assert result.quarantine.get_column("_reason").to_list() == ["expected a JSON object, found str"]
    with pytest.raises(UnreadableFileError, match=r"d\.json: records_path 'data.nope' not found"):
        read_file(json.dumps(doc).encode(), source="d.json", fmt="json", options={"records_path": "data.nope"})
    with pytest.raises(UnreadableFileError, match=r"bad\.json: not a JSON document"):
        read_file(b"{nope", source="bad.json", fmt="json")


def test_parquet_and_avro_round_trip():
    frame = pl.DataFrame({"id": [1, 2], "s": [{"x": 1}, {"x": 2}], "d": [dt.date(2024, 1, 1), None]})
    for fmt in ("parquet", "avro"):
        buffer = io.BytesIO()
        (frame.write_parquet if fmt == "parquet" else frame.write_avro)(buffer)
        data = buffer.getvalue()
        assert detect_format("whatever.bin", data) == fmt
        result = read_file(data, source=f"f.{fmt}")
        assert result.rows.select("id", "s__x", "d", "_source_line").to_dicts() == [
            {"id": 1, "s__x": 1, "d": dt.date(2024, 1, 1), "_source_line": 1},
            {"id": 2, "s__x": 2, "d": None, "_source_line": 2},
        ]
        assert count_records(data, fmt=fmt) == 2
    with pytest.raises(UnreadableFileError, match=r"junk\.parquet: not a readable Parquet file"):
        read_file(b"PAR1 junk", source="junk.parquet", fmt="parquet")


def test_the_real_apache_log_gives_the_known_answers():
    result = read_file(APACHE_LOG.read_bytes(), source="apache_logs.gz")
    assert result.info["format"] == "log" and result.info["compression"] == "gzip"
    rows = result.rows
    assert rows.height == 9_999
    assert result.quarantine.select("_source_line").to_series().to_list() == [8899]
    statuses = dict(rows.group_by("status").len().iter_rows())
    assert statuses == {200: 9125, 206: 45, 301: 164, 304: 445, 403: 2, 404: 213, 416: 2, 500: 3}
    assert rows.get_column("bytes").sum() == 2_747_282_505
    assert rows.get_column("bytes").null_count() == 669
    assert rows.get_column("client_ip").n_unique() == 1_753
    # 2015-05-17 10:05 to 2015-05-20 21:05 UTC (the data's README)
    assert rows.get_column("request_ts").min() >= dt.datetime(2015, 5, 17, 10, 5, tzinfo=dt.UTC)
    assert rows.get_column("request_ts").max() < dt.datetime(2015, 5, 20, 21, 6, tzinfo=dt.UTC)
    assert count_records(APACHE_LOG.read_bytes(), fmt="log") == 10_000


def test_log_variants_vhost_ipv6_missing_bytes_extra_fields_and_truncation():
    lines = [
        'shop.example.com:443 2001:db8::7 - alice [10/Oct/2023:13:55:36 +0200] "GET /p?q=1 HTTP/2.0" 200 512 "https://r/" "UA 1"',
        '10.0.0.1 - - [10/Oct/2023:13:55:37 +0000] "POST /cart HTTP/1.1" 304 -',
        '10.0.0.2 - - [10/Oct/2023:13:55:38 +0000] "GET / HTTP/1.1" 200 10 "-" "curl/8" 0.004 upstream=1',
        '10.0.0.3 - - [10/Oct/2023:13:55:39 +0000] "GET / HTTP/1.1" 200 10 "-" "Mozilla/5.0 (Windows',
        '10.0.0.4 - - [99/Xyz/2023:13:55:39 +0000] "GET / HTTP/1.1" 200 10',
    ]
    result = read_file(("\n".join(lines) + "\n").encode(), source="access.log")
    got = result.rows.select(
        "vhost", "client_ip", "auth_user", "request_ts", "method", "path", "status", "bytes", "user_agent"
    ).to_dicts()
    assert got[0] == {
        "vhost": "shop.example.com:443",
        "client_ip": "2001:db8::7",
        "auth_user": "alice",
        "request_ts": dt.datetime(2023, 10, 10, 11, 55, 36, tzinfo=dt.UTC),
        "method": "GET",
        "path": "/p?q=1",
        "status": 200,
        "bytes": 512,
        "user_agent": "UA 1",
    }
    assert got[1]["bytes"] is None and got[1]["user_agent"] is None and got[1]["method"] == "POST"
    assert got[2]["user_agent"] == "curl/8"
    assert result.quarantine.select("_source_line", "_reason").to_dicts() == [
        {"_source_line": 4, "_reason": "not a common/combined access log line (truncated or malformed)"},
        {"_source_line": 5, "_reason": "unreadable timestamp [99/Xyz/2023:13:55:39 +0000]"},
    ]


def test_format_detection():
    assert (
        detect_format(
            "access.log.2.gz",
            gzip.compress(
                APACHE_LOG.read_bytes()[:0] + b'1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 1\n'
            ),
        )
        == "log"
    )
    assert detect_format("x.txt", b'{"a": 1}\n{"a": 2}\n') == "ndjson"
    assert detect_format("x.txt", b'[{"a": 1}]') == "json"
    assert detect_format("export.tsv", b"a\tb\n1\t2\n") == "tsv"
    assert detect_format("export.dat", b"a,b\n1,2\n") == "csv"
