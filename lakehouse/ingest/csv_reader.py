"""CSV/TSV reader: encoding detection, delimiter and header sniffing, null tokens, exact line
numbers for every row, ragged rows quarantined (never dropped).

Lossless by default: only an *empty unquoted* field is null. A quoted empty string (``""``)
stays the empty string, and text such as ``NA`` (Namibia's country code), ``NULL``, ``None``
or ``.`` stays text, because a reader cannot know what such a value means in a given export.
A source that does use tokens for missing values declares them (``null_values`` for every
column, ``column_null_values`` per column, see :mod:`lakehouse.ingest.sources`); a declared
token is null whether it was quoted or not, so ``""`` can be declared for exports that quote
every field.

Values are returned as text (nulls for null tokens); typing is a separate, lossless step
(:mod:`lakehouse.ingest.infer`) so a bronze table can type a column from the table's schema
and quarantine the rows that do not fit.

Fast path: pyarrow's multi-threaded parser, with an ``invalid_row_handler`` that collects ragged
rows; line numbers come from the physical lines (a zero-copy Arrow view of the file), which is
exact because, without a quoted field spanning lines, a line's validity depends only on its
text. A file with a quoted newline takes the stdlib ``csv`` path instead.
"""

from __future__ import annotations

import csv
import functools
import io
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from lakehouse.ingest.result import ReadResult, quarantine_frame
from lakehouse.ingest.text import EncodingInfo, decompress, detect_encoding, split_lines, to_utf8

__all__ = [
    "DEFAULT_NULLS",
    "SNIFF_BYTES",
    "CsvOptions",
    "first_record",
    "looks_like_header",
    "null_tokens",
    "read_csv",
    "sniff_delimiter",
]

# No token is null unless a source declares it: only an empty unquoted field is (see above).
DEFAULT_NULLS: tuple[str, ...] = ()
_CANDIDATES = (",", "\t", ";", "|")
SNIFF_BYTES = 64 * 1024


@dataclass(frozen=True)
class CsvOptions:
    """How to read a delimited file; ``None`` means detect.

    ``null_values``: values (quoted or not) that are null in every column, besides the empty
    unquoted field. ``column_null_values``: per column (by header name or its bronze
    snake_case name), a list that *replaces* ``null_values`` for that column.
    """

    delimiter: str | None = None
    header: bool | None = None
    encoding: str | None = None
    quote_char: str = '"'
    null_values: Sequence[str] = DEFAULT_NULLS
    column_names: Sequence[str] | None = None
    extra: dict[str, object] = field(default_factory=dict)
    column_null_values: Mapping[str, Sequence[str]] = field(default_factory=dict)


def null_tokens(value: Any, where: str) -> tuple[str, ...]:
    """``value`` as a list of null tokens, or ValueError saying what is wrong at ``where``.

    YAML reads bare ``NULL``, ``null`` and ``~`` as null, ``yes``/``no`` as booleans and ``1``
    as a number: a token must be written as a quoted string so it means the text it shows.
    """
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{where}: expected a list of strings, e.g. ['NULL', 'N/A'], got {value!r}")
    for i, token in enumerate(value):
        if not isinstance(token, str):
            raise ValueError(
                f"{where}[{i}]: expected a string, got {token!r}; quote every token in YAML "
                "('NULL', 'null', '~', 'yes' and numbers are not text unquoted)"
            )
    return tuple(value)


def _column_tokens(names: Sequence[str], options: CsvOptions) -> dict[str, frozenset[str]]:
    """The null tokens of each column that has any (a column's own list beats the source's)."""
    from lakehouse.ingest.bronze import column_names  # the names bronze will give the columns

    bronze = column_names(names)
    default = frozenset(options.null_values)
    per_column = options.column_null_values
    out: dict[str, frozenset[str]] = {}
    for name in names:
        own = per_column.get(name, per_column.get(bronze[name]))
        tokens = default if own is None else frozenset(own)
        if tokens:
            out[name] = tokens
    return out


def _apply_tokens(frame: pl.DataFrame, tokens: Mapping[str, frozenset[str]]) -> pl.DataFrame:
    """Declared tokens become null (both parsers end here, so they agree on tokens by construction)."""
    if not tokens or frame.height == 0:
        return frame
    return frame.with_columns(
        pl.when(pl.col(name).is_in(sorted(values))).then(None).otherwise(pl.col(name)).alias(name)
        for name, values in tokens.items()
    )


def sniff_delimiter(sample: str) -> str:
    """The candidate delimiter that splits the sample's lines into the most consistent field count."""
    lines = [line for line in sample.splitlines()[:50] if line.strip()]
    if len(lines) > 1:
        lines = lines[:-1]  # the sample may cut the last line
    best, best_score = ",", (-1.0, 0)
    for candidate in _CANDIDATES:
        counts = [len(row) for row in csv.reader(lines, delimiter=candidate)]
        if not counts:
            continue
        mode = max(set(counts), key=counts.count)
        if mode < 2:
            continue
        score = (counts.count(mode) / len(counts), mode)
        if score > best_score:
            best, best_score = candidate, score
    return best


_NUMERIC_OR_DATE = re.compile(r"^[+-]?[0-9.,:/ TZ-]*$")


def looks_like_header(first: list[str]) -> bool:
    """A header row has unique, non-empty names, none of which is a number or a date.

    (A header-less file whose first row is all text is taken as having a header: say
    ``header: false`` in its spec.)
    """
    names = [v.strip() for v in first]
    if not names or any(n == "" for n in names) or len(set(names)) != len(names):
        return False
    return not any(_NUMERIC_OR_DATE.match(n) for n in names)


def first_record(text: str, delimiter: str, quote_char: str = '"') -> list[str] | None:
    """The first non-empty record of ``text`` as the csv module parses it (quoted newlines included)."""
    for record in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quote_char):
        if record:
            return record
    return None


def _clean_names(names: list[str]) -> list[str]:
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(names):
        name = raw.strip() or f"column_{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 1
        out.append(name)
    return out


def read_csv(
    data: bytes,
    *,
    source: str,
    options: CsvOptions | None = None,
    parser: Literal["auto", "python"] = "auto",
) -> ReadResult:
    """Read delimited text into string columns plus ``_source_file`` and ``_source_line``.

    ``info`` reports the detected encoding, delimiter, whether a header was found, compression,
    and the parser used. ``parser="python"`` forces the exact stdlib path (to cross-check the
    fast path: both must return the same rows).
    """
    options = options or CsvOptions()
    data, compression = decompress(data)
    enc = EncodingInfo(options.encoding, 0) if options.encoding else detect_encoding(data)
    if options.encoding and options.encoding.lower().replace("_", "-") in (
        "utf-8-sig",
        "utf-16",
        "utf-16-le",
        "utf-16-be",
    ):
        enc = detect_encoding(data)
    utf8 = to_utf8(data, enc)
    sample = utf8[:SNIFF_BYTES].decode("utf-8", errors="replace")
    delimiter = options.delimiter or sniff_delimiter(sample)
    info: dict[str, object] = {"encoding": enc.encoding, "delimiter": delimiter, "compression": compression}
    first = first_record(sample, delimiter, options.quote_char)
    if first is None:
        info["header"] = False
        return ReadResult(rows=pl.DataFrame(), quarantine=quarantine_frame([]), info={**info, "parser": "empty"})
    header = options.header if options.header is not None else looks_like_header(first)
    info["header"] = header
    if options.column_names:
        names = list(options.column_names)
    elif header:
        names = _clean_names(first)
    else:
        names = [f"column_{i + 1}" for i in range(len(first))]
    # bare CRs end records for the parsers but not for our line numbering, and the line count
    # below assumes a one-line header: otherwise take the exact path
    bare_cr = b"\r" in utf8 and utf8.count(b"\r") != utf8.count(b"\r\n")
    if parser == "python" or bare_cr or any("\n" in field or "\r" in field for field in first):
        result = _read_stdlib(utf8.decode("utf-8", errors="replace"), source, delimiter, header, names, options)
        why = "asked for" if parser == "python" else "bare CR line ends or a multi-line first record"
        result.info.update(info, parser=f"python-csv ({why})")
        return result
    return _read_fast(utf8, source, delimiter, header, names, options, info)


def _read_fast(
    utf8: bytes,
    source: str,
    delimiter: str,
    header: bool,
    names: list[str],
    options: CsvOptions,
    info: dict[str, object],
) -> ReadResult:
    bad: list[tuple[str, int]] = []
    lock = threading.Lock()

    def on_invalid(row: pacsv.InvalidRow) -> str:
        with lock:
            bad.append((row.text, row.actual_columns))
        return "skip"

    # leading blank lines shift the header; blank lines elsewhere shift line numbers
    leading_blank = utf8[: len(utf8) - len(utf8.lstrip(b"\r\n"))].count(b"\n")
    header_line = leading_blank if header else -1  # 0-based index of the header line
    # pyarrow (21) flags an empty last field as quoted when a quoted field precedes it on a last
    # line without a line break (`"a",` and `""a,` read as [.., ""]): give the parser that line
    # break, unless the line ends inside an open quote (where it would become part of the value)
    parsed = utf8
    if not utf8.endswith(b"\n") and utf8.endswith(delimiter.encode()):
        tail = utf8[utf8.rfind(b"\n") + 1 :].decode("utf-8", errors="replace")
        if not _walk(tail, delimiter, options.quote_char)[1]:
            parsed = utf8 + b"\n"
    try:
        table = pacsv.read_csv(
            pa.BufferReader(parsed),
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=header_line + 1 if header else 0, block_size=16 << 20
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter,
                quote_char=options.quote_char,
                newlines_in_values=False,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                # only the empty unquoted field; declared tokens are applied after the parse
                # (per column, quoted or not) by the code both parsers share
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:  # e.g. an unterminated quote at the very end
        result = _read_stdlib(utf8.decode("utf-8", errors="replace"), source, delimiter, header, names, options)
        result.info.update(info, parser=f"python-csv (pyarrow refused: {str(exc)[:80]})")
        return result
    # Without bare CRs every record is exactly one line, unless a quoted field spans lines or a
    # blank line is skipped; both leave fewer records than lines. So as many records as lines
    # means neither happened, and the line numbers follow (the common case: no full-file search
    # for blank lines, which costs more than the parse).
    lines_total = utf8.count(b"\n") + (0 if utf8.endswith(b"\n") else 1)
    if not bad and table.num_rows == lines_total - leading_blank - (1 if header else 0):
        first = leading_blank + (2 if header else 1)  # 1-based line of the first record
        numbers = np.arange(first, first + table.num_rows, dtype=np.int64)
        return _frame(table, source, numbers, quarantine_frame([]), info, options)
    blank_inside = b"\n\n" in utf8 or b"\n\r\n" in utf8
    if not bad and not blank_inside:  # fewer records than lines and no blank line: quoted newlines
        result = _read_stdlib(utf8.decode("utf-8", errors="replace"), source, delimiter, header, names, options)
        result.info.update(info, parser="python-csv (quoted newlines)")
        return result
    lines = split_lines(utf8)
    text = pl.from_arrow(lines.text)
    assert isinstance(text, pl.Series)
    nonblank = lines.lengths > 0
    # physical line numbers of the records: non-blank lines after the header
    record = nonblank.copy()
    if header_line >= 0:
        record[: header_line + 1] = False
    bad_numbers = np.zeros(0, dtype=np.int64)
    quarantine = quarantine_frame([])
    if bad:
        bad_texts = {t for t, _ in bad}
        stripped = text.str.strip_chars_end("\r\n")
        is_bad = stripped.is_in(list(bad_texts)).to_numpy() & record
        bad_numbers = lines.numbers[is_bad]
        bad_lines = stripped.filter(pl.Series(is_bad))
        fields = {t: n for t, n in bad}
        quarantine = quarantine_frame(
            (source, int(num), line, f"expected {len(names)} fields, found {fields.get(line, 0)}")
            for num, line in zip(bad_numbers.tolist(), bad_lines.to_list(), strict=True)
        )
        record &= ~is_bad
    good_numbers = lines.numbers[record]
    if len(good_numbers) != table.num_rows or quarantine.height != len(bad):
        # never guess: if the line bookkeeping disagrees with the parser, use the exact slow path
        result = _read_stdlib(utf8.decode("utf-8", errors="replace"), source, delimiter, header, names, options)
        result.info.update(info, parser="python-csv (line bookkeeping fallback)")
        return result
    return _frame(table, source, good_numbers, quarantine, info, options)


def _frame(
    table: pa.Table,
    source: str,
    numbers: np.ndarray,
    quarantine: pl.DataFrame,
    info: dict[str, object],
    options: CsvOptions,
) -> ReadResult:
    frame = pl.from_arrow(table, rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    frame = _apply_tokens(frame, _column_tokens(frame.columns, options))
    frame = frame.with_columns(
        pl.lit(source, dtype=pl.String).alias("_source_file"),
        pl.Series("_source_line", numbers, dtype=pl.Int64),
    )
    return ReadResult(rows=frame, quarantine=quarantine, info={**info, "parser": "pyarrow"})


@functools.cache
def _unquoted_field(delimiter: str) -> re.Pattern[str]:
    return re.compile(f"[^{re.escape(delimiter)}\r\n]*")


def _walk(raw: str, delimiter: str, quote: str) -> tuple[list[bool], bool]:
    """Whether each field of one raw record starts with the quote character, and whether the
    record ends inside an open quote, walking it as the stdlib csv module does (default dialect:
    doubled quotes, text after a closing quote kept, quotes inside an unquoted field literal).

    Python 3.11's csv module returns ``""`` and an empty unquoted field alike; this tells them apart.
    """
    unquoted = _unquoted_field(delimiter)
    flags: list[bool] = []
    i, n = 0, len(raw)
    while True:
        quoted = i < n and raw[i] == quote
        flags.append(quoted)
        if quoted:
            i += 1
            while True:
                j = raw.find(quote, i)
                if j < 0:  # unterminated: the field runs to the end
                    return flags, True
                if raw.startswith(quote, j + 1):  # a doubled quote is one quote character
                    i = j + 2
                    continue
                i = j + 1
                break
        # an unquoted field, or what follows a closing quote (kept as text), ends at the delimiter
        match = unquoted.match(raw, i)
        i = match.end() if match else i
        if i >= n or raw[i] != delimiter:
            return flags, False
        i += 1


def _quoted_fields(raw: str, record: list[str], delimiter: str, quote: str) -> list[bool] | None:
    """Which fields of ``record`` (parsed from ``raw``) were quoted; None if that cannot be told."""
    doubled = quote * 2
    # the common case, an export that quotes every field, is recognised without a walk
    if raw.rstrip("\r\n") == delimiter.join([quote + v.replace(quote, doubled) + quote for v in record]):
        return [True] * len(record)
    flags = _walk(raw, delimiter, quote)[0]
    return flags if len(flags) == len(record) else None  # never guess: keep the plain reading


def _read_stdlib(
    text: str, source: str, delimiter: str, header: bool, names: list[str], options: CsvOptions
) -> ReadResult:
    """Exact, slower path: the stdlib csv module (handles quoted newlines).

    The lines of each record are captured as the reader consumes them, so a record's raw text
    is exact (for quarantine, and to tell a quoted ``""`` from an empty unquoted field).
    """
    consumed: list[str] = []

    def lines() -> Iterator[str]:
        for line in io.StringIO(text, newline=""):
            consumed.append(line)
            yield line

    quote = options.quote_char
    doubled = quote * 2
    reader = csv.reader(lines(), delimiter=delimiter, quotechar=quote)
    columns: list[list[str | None]] = [[] for _ in names]
    numbers: list[int] = []
    bad: list[tuple[str, int | None, str, str]] = []
    skipped_header = not header
    last = 0
    for record in reader:
        start, last = last + 1, reader.line_num
        record_lines = consumed[:]
        consumed.clear()
        if not record:
            continue
        if not skipped_header:
            skipped_header = True
            continue
        if len(record) != len(names):
            shown = "\n".join(line.rstrip("\r\n") for line in record_lines)
            bad.append((source, start, shown, f"expected {len(names)} fields, found {len(record)}"))
            continue
        quoted: list[bool] | None = None
        # a quoted empty field is `""`, or a lone quote ending the file: otherwise no walk is needed
        if "" in record and (doubled in (raw := "".join(record_lines)) or raw.endswith(quote)):
            quoted = _quoted_fields(raw, record, delimiter, quote)
        for i, value in enumerate(record):
            columns[i].append(value if value or (quoted is not None and quoted[i]) else None)
        numbers.append(start)
    frame = pl.DataFrame({n: c for n, c in zip(names, columns, strict=True)}, schema={n: pl.String for n in names})
    frame = _apply_tokens(frame, _column_tokens(names, options))
    frame = frame.with_columns(
        pl.lit(source, dtype=pl.String).alias("_source_file"), pl.Series("_source_line", numbers, dtype=pl.Int64)
    )
    return ReadResult(rows=frame, quarantine=quarantine_frame(bad), info={"parser": "python-csv"})
