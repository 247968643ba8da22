"""Property-based: whatever bytes land, the readers never raise and read = written + quarantined."""

import csv
import datetime as dt
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse.ingest.bronze import prepare_bronze
from lakehouse.ingest.csv_reader import CsvOptions, read_csv
from lakehouse.ingest.logs import read_access_log
from lakehouse.ingest.readers import count_records

NOW = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# bytes that look like CSV often enough to reach the interesting paths
_cells = st.lists(st.sampled_from([*list('ab1,;"\t \r\n.é'), "NA", "00", "-"]), max_size=6).map("".join)
_csvish = st.lists(st.lists(_cells, min_size=1, max_size=5), min_size=0, max_size=12).map(
    lambda rows: "\n".join(",".join(r) for r in rows).encode("utf-8")
)
_logish = st.lists(
    st.sampled_from(
        [
            '1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 5',
            '::1 - u [10/Oct/2023:13:55:36 -0700] "GET /x HTTP/1.1" 404 - "-" "ua"',
            'h:80 1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "r" "trunc',
            "",
            "garbage",
            "\x00\xff",
        ]
    ),
    max_size=15,
).map(lambda lines: "\n".join(lines).encode("utf-8", errors="surrogateescape"))


@FAST
@given(data=st.one_of(st.binary(max_size=400), _csvish))
def test_csv_reader_never_raises_and_reconciles(data):
    result = read_csv(data, source="fuzz.csv")
    assert result.rows.height + result.quarantine.height == count_records(data, fmt="csv")
    # typing moves rows to quarantine but never loses one
    batch = prepare_bronze([result], table_schema=None, ingested_at=NOW)
    assert batch.rows_written + batch.rows_quarantined == batch.rows_read == result.rows_read


@FAST
@given(data=st.one_of(st.binary(max_size=400), _logish))
def test_log_reader_never_raises_and_reconciles(data):
    result = read_access_log(data, source="fuzz.log")
    assert result.rows.height + result.quarantine.height == count_records(data, fmt="log")
    assert result.quarantine.get_column("_reason").null_count() == 0


def _python_says_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@given(data=st.one_of(st.binary(max_size=200), st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass"))))
@settings(max_examples=400, deadline=None)
def test_the_fast_utf8_check_agrees_with_python(data):
    from lakehouse.ingest.text import is_utf8

    assert is_utf8(data) == _python_says_utf8(data)


def test_the_fast_utf8_check_on_the_classic_traps():
    from lakehouse.ingest.text import is_utf8

    for trap in (b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xe2\x82", "München".encode("latin-1")):
        assert not is_utf8(trap), trap
    assert is_utf8(b"") and is_utf8(b"\x00a") and is_utf8("Kraków, Århus".encode())


# -- the fast (pyarrow) and the exact (stdlib) parser agree, null tokens and quoted empties included

_TOKENS = ["", "NA", "NULL", "None", ".", "N/A"]
# (no bare CR: Python 3.11's csv.writer leaves it unquoted, so the file it writes is ambiguous)
_values = st.one_of(
    st.sampled_from([*_TOKENS, "x", "a b", "1", '"', 'say "hi"', "a,b", "é", "two\nlines"]),
    _cells.filter(lambda v: "\r" not in v),
)


@st.composite
def _written(draw):
    """(bytes, cells, options, empties quoted?): a file csv.writer wrote, and the declared tokens."""
    width = draw(st.integers(1, 4))
    names = [f"c{i}" for i in range(width)]
    rows = draw(st.lists(st.lists(_values, min_size=width, max_size=width), max_size=8))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]))
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, quoting=quoting, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(names)
    writer.writerows(rows)
    options = CsvOptions(
        delimiter=",",
        header=True,
        null_values=tuple(draw(st.lists(st.sampled_from(_TOKENS), max_size=3))),
        column_null_values=draw(
            st.dictionaries(st.sampled_from(names), st.lists(st.sampled_from(_TOKENS), max_size=2), max_size=2)
        ),
    )
    # csv.writer quotes an empty field only when it is alone on its row (or it quotes everything)
    empties_quoted = quoting != csv.QUOTE_MINIMAL or width == 1
    return buffer.getvalue().encode("utf-8"), rows, options, empties_quoted


def _values_of(result):
    return result.rows.drop("_source_file", strict=False).to_dicts(), result.quarantine.to_dicts()


@FAST
@given(case=_written())
def test_fast_and_stdlib_parsers_agree_on_tokens_and_quoted_empties(case):
    data, rows, options, empties_quoted = case
    fast = read_csv(data, source="w.csv", options=options)
    exact = read_csv(data, source="w.csv", options=options, parser="python")
    assert _values_of(fast) == _values_of(exact), fast.info["parser"]
    # and both say what was written: a declared token (quoted or not) and an unquoted empty are null
    names = [f"c{i}" for i in range(len(rows[0]))] if rows else []

    def expected(name, value):
        tokens = options.column_null_values.get(name, options.null_values)
        return None if value in tokens or (value == "" and not empties_quoted) else value

    want = [{n: expected(n, v) for n, v in zip(names, row, strict=True)} for row in rows]
    assert fast.rows.select(names).to_dicts() == want


@FAST
@given(data=_csvish, tokens=st.lists(st.sampled_from(_TOKENS), max_size=3))
def test_fast_and_stdlib_parsers_agree_on_csvish_bytes(data, tokens):
    options = CsvOptions(null_values=tuple(tokens))
    fast = read_csv(data, source="f.csv", options=options)
    exact = read_csv(data, source="f.csv", options=options, parser="python")
    assert _values_of(fast) == _values_of(exact), fast.info["parser"]
