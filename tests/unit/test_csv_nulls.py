"""Bronze is lossless: only an empty unquoted field is null unless a source declares its null tokens.

Every case runs through both parsers (pyarrow and the stdlib fallback): they must agree.
"""

import datetime as dt

import polars as pl
import pytest

from lakehouse.ingest.bronze import prepare_bronze
from lakehouse.ingest.csv_reader import CsvOptions, read_csv
from lakehouse.ingest.json_reader import read_json, read_ndjson
from lakehouse.ingest.readers import read_file

NOW = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
PARSERS = ["auto", "python"]
OLD_TOKENS = ["NA", "N/A", "NULL", "null", "None", "."]


def rows(data: bytes, parser: str, **options) -> list[dict]:
    result = read_csv(data, source="f.csv", options=CsvOptions(**options), parser=parser)
    assert result.quarantine.height == 0
    assert result.info["parser"].startswith("pyarrow" if parser == "auto" else "python-csv"), result.info
    return result.rows.drop("_source_file", "_source_line").to_dicts()


@pytest.mark.parametrize("parser", PARSERS)
def test_namibia_and_the_old_tokens_stay_text(parser):
    data = ("id,country," + ",".join(f"t{i}" for i in range(len(OLD_TOKENS))) + "\n").encode()
    data += ("1,NA," + ",".join(OLD_TOKENS) + "\n").encode()
    (row,) = rows(data, parser)
    assert row["country"] == "NA"
    assert [row[f"t{i}"] for i in range(len(OLD_TOKENS))] == OLD_TOKENS


@pytest.mark.parametrize("parser", PARSERS)
def test_only_an_empty_unquoted_field_is_null(parser):
    data = b'id,a,b,c\n1,,"",x\n2,"NA","",\n'
    assert rows(data, parser) == [
        {"id": "1", "a": None, "b": "", "c": "x"},
        {"id": "2", "a": "NA", "b": "", "c": None},
    ]


@pytest.mark.parametrize("parser", PARSERS)
def test_declared_tokens_are_null_quoted_or_not(parser):
    data = b'id,a,b\n1,NULL,"N/A"\n2,"NULL",NA\n3,,""\n'
    assert rows(data, parser, null_values=("NULL", "N/A")) == [
        {"id": "1", "a": None, "b": None},
        {"id": "2", "a": None, "b": "NA"},
        {"id": "3", "a": None, "b": ""},
    ]


@pytest.mark.parametrize("parser", PARSERS)
def test_declaring_the_empty_string_makes_quoted_empties_null(parser):
    data = b'"id","a","b"\n"1","","x"\n"2","",""\n'
    assert rows(data, parser, null_values=("",)) == [
        {"id": "1", "a": None, "b": "x"},
        {"id": "2", "a": None, "b": None},
    ]


@pytest.mark.parametrize("parser", PARSERS)
def test_a_column_list_replaces_the_source_list_for_that_column(parser):
    data = b"id,Country Code,amount,note\n1,NA,NA,-\n2,DE,-,NA\n"
    got = rows(
        data,
        parser,
        null_values=("NA",),
        # the key may be the header's name or its bronze (snake_case) name
        column_null_values={"country_code": (), "amount": ("NA", "-")},
    )
    assert got == [
        {"id": "1", "Country Code": "NA", "amount": None, "note": "-"},
        {"id": "2", "Country Code": "DE", "amount": None, "note": None},
    ]


def test_the_stdlib_path_tells_quoted_from_unquoted_empties_across_lines():
    # a quoted newline sends the whole file to the stdlib parser
    data = b'id,a,b,note\n1,,"","two\nlines"\n2,"",,"say ""hi"""\n3,"a,b",NA,""\n'
    result = read_csv(data, source="f.csv")
    assert result.info["parser"] == "python-csv (quoted newlines)"
    assert result.rows.drop("_source_file").to_dicts() == [
        {"id": "1", "a": None, "b": "", "note": "two\nlines", "_source_line": 2},
        {"id": "2", "a": "", "b": None, "note": 'say "hi"', "_source_line": 4},
        {"id": "3", "a": "a,b", "b": "NA", "note": "", "_source_line": 5},
    ]


def test_tsv_keeps_the_tokens_too():
    data = b'id\tcountry\tnote\n1\tNA\t""\n2\t\tNULL\n'
    result = read_file(data, source="f.tsv", fmt="tsv")
    assert result.rows.select("country", "note").to_dicts() == [
        {"country": "NA", "note": ""},
        {"country": None, "note": "NULL"},
    ]
    declared = read_file(data, source="f.tsv", fmt="tsv", options={"null_values": ["NULL"]})
    assert declared.rows.get_column("note").to_list() == ["", None]


def test_spec_options_reach_the_reader():
    options = {"null_values": ["NA", "-"], "column_null_values": {"country": []}}
    result = read_file(b"id,country,amount\n1,NA,-\n2,-,NA\n", source="f.csv", fmt="csv", options=options)
    assert result.rows.select("country", "amount").to_dicts() == [
        {"country": "NA", "amount": None},
        {"country": "-", "amount": None},
    ]


def test_json_readers_keep_token_strings_and_real_nulls():
    document = b'[{"country": "NA", "a": "NULL", "b": "", "c": null, "d": "."}]'
    row = read_json(document, source="f.json").rows.row(0, named=True)
    assert (row["country"], row["a"], row["b"], row["c"], row["d"]) == ("NA", "NULL", "", None, ".")
    lines = b'{"country": "NA", "b": ""}\n{"country": null, "b": "None"}\n'
    got = read_ndjson(lines, source="f.ndjson").rows.select("country", "b").to_dicts()
    assert got == [{"country": "NA", "b": ""}, {"country": None, "b": "None"}]


def test_typing_keeps_tokens_as_text_and_never_turns_them_into_nulls():
    data = b"id,amount,flag,day\n1,NA,true,2024-01-02\n2,3,None,.\n3,,,\n"
    batch = prepare_bronze([read_csv(data, source="f.csv")], table_schema=None, ingested_at=NOW)
    # inference types a column only when every non-null value fits: a token keeps it text
    assert batch.types["amount"] == "string" and batch.types["flag"] == "string" and batch.types["day"] == "string"
    assert batch.rows.sort("id").get_column("amount").to_list() == ["NA", "3", None]


def test_a_declared_type_quarantines_an_undeclared_token_and_nulls_a_declared_one():
    data = b'id,amount\n1,NA\n2,3\n3,""\n'
    plain = read_csv(data, source="f.csv")
    typed = prepare_bronze([plain], table_schema=None, ingested_at=NOW, hints={"amount": "int64"})
    assert typed.rows_written == 1 and typed.rows_quarantined == 2  # kept, with a reason, not nulled
    assert sorted(typed.quarantine.get_column("_source_line").to_list()) == [2, 4]
    declared = read_csv(data, source="f.csv", options=CsvOptions(null_values=("NA", "")))
    typed = prepare_bronze([declared], table_schema=None, ingested_at=NOW, hints={"amount": "int64"})
    assert typed.rows_quarantined == 0
    assert typed.rows.sort("id").get_column("amount").to_list() == [None, 3, None]
    assert typed.rows.schema["amount"] == pl.Int64


@pytest.mark.parametrize("parser", PARSERS)
def test_an_empty_last_field_after_a_quoted_one_without_a_final_line_break_is_null(parser):
    # pyarrow alone reads `"b",` at the very end as ["b", ""]
    assert rows(b'id,a,b\n"1","a",\n"2","b",', parser) == [
        {"id": "1", "a": "a", "b": None},
        {"id": "2", "a": "b", "b": None},
    ]
    assert rows(b'id,a,b\n1,""x,', parser) == [{"id": "1", "a": "x", "b": None}]
