"""CSV/TSV reader: encoding detection, delimiter and header sniffing, null tokens, exact line
numbers for every row, ragged rows quarantined (never dropped).

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
import io
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

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
    "read_csv",
    "sniff_delimiter",
]

DEFAULT_NULLS: tuple[str, ...] = ("", "NA", "N/A", "NULL", "null", "None", ".")
_CANDIDATES = (",", "\t", ";", "|")
SNIFF_BYTES = 64 * 1024


@dataclass(frozen=True)
class CsvOptions:
    """How to read a delimited file; ``None`` means detect."""

    delimiter: str | None = None
    header: bool | None = None
    encoding: str | None = None
    quote_char: str = '"'
    null_values: Sequence[str] = DEFAULT_NULLS
    column_names: Sequence[str] | None = None
    extra: dict[str, object] = field(default_factory=dict)


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


def read_csv(data: bytes, *, source: str, options: CsvOptions | None = None) -> ReadResult:
    """Read delimited text into string columns plus ``_source_file`` and ``_source_line``.

    ``info`` reports the detected encoding, delimiter, whether a header was found, compression,
    and the parser used.
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
    if bare_cr or any("\n" in field or "\r" in field for field in first):
        result = _read_stdlib(utf8.decode("utf-8", errors="replace"), source, delimiter, header, names, options)
        result.info.update(info, parser="python-csv (bare CR line ends or a multi-line first record)")
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
    try:
        table = pacsv.read_csv(
            pa.BufferReader(utf8),
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
                null_values=list(options.null_values),
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,  # as in the stdlib path, which cannot tell
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
        return _frame(table, source, numbers, quarantine_frame([]), info)
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
    return _frame(table, source, good_numbers, quarantine, info)


def _frame(
    table: pa.Table, source: str, numbers: np.ndarray, quarantine: pl.DataFrame, info: dict[str, object]
) -> ReadResult:
    frame = pl.from_arrow(table, rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(
        pl.lit(source, dtype=pl.String).alias("_source_file"),
        pl.Series("_source_line", numbers, dtype=pl.Int64),
    )
    return ReadResult(rows=frame, quarantine=quarantine, info={**info, "parser": "pyarrow"})


def _read_stdlib(
    text: str, source: str, delimiter: str, header: bool, names: list[str], options: CsvOptions
) -> ReadResult:
    """Exact, slower path: the stdlib csv module (handles quoted newlines)."""
    nulls = set(options.null_values)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=options.quote_char)
    columns: list[list[str | None]] = [[] for _ in names]
    numbers: list[int] = []
    bad: list[tuple[str, int | None, str, str]] = []
    raw_lines = text.splitlines()
    skipped_header = not header
    last = 0
    for record in reader:
        start, last = last + 1, reader.line_num
        if not record:
            continue
        if not skipped_header:
            skipped_header = True
            continue
        if len(record) != len(names):
            raw = "\n".join(raw_lines[start - 1 : last])
            bad.append((source, start, raw, f"expected {len(names)} fields, found {len(record)}"))
            continue
        for i, value in enumerate(record):
            columns[i].append(None if value in nulls else value)
        numbers.append(start)
    frame = pl.DataFrame({n: c for n, c in zip(names, columns, strict=True)}, schema={n: pl.String for n in names})
    frame = frame.with_columns(
        pl.lit(source, dtype=pl.String).alias("_source_file"), pl.Series("_source_line", numbers, dtype=pl.Int64)
    )
    return ReadResult(rows=frame, quarantine=quarantine_frame(bad), info={"parser": "python-csv"})
