"""One entry point over every reader: format detection, reading, and an independent record count."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from typing import Any

import polars as pl

from lakehouse.exceptions import UnreadableFileError
from lakehouse.ingest.columnar import read_avro, read_parquet
from lakehouse.ingest.csv_reader import (
    DEFAULT_NULLS,
    SNIFF_BYTES,
    CsvOptions,
    looks_like_header,
    null_tokens,
    read_csv,
    sniff_delimiter,
)
from lakehouse.ingest.json_reader import JsonOptions, read_json, read_ndjson
from lakehouse.ingest.logs import LOG_PATTERN, read_access_log
from lakehouse.ingest.result import ReadResult
from lakehouse.ingest.text import decompress, detect_encoding, split_lines, to_utf8

__all__ = ["count_records", "csv_options", "detect_format", "json_options", "read_file"]

_ROTATION = re.compile(r"(\.gz|\.[0-9]+)+$")
_BY_SUFFIX = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".avro": "avro",
    ".log": "log",
}


def detect_format(name: str, data: bytes) -> str:
    """The format of a file from its content first (magic bytes, shape), then its name."""
    head = data[:4]
    if head == b"PAR1":
        return "parquet"
    if head == b"Obj\x01":
        return "avro"
    body = decompress(data[: 1 << 20])[0] if head[:2] == b"\x1f\x8b" else data[: 1 << 20]
    text = to_utf8(body, detect_encoding(body)).decode("utf-8", errors="replace")
    first_lines = [line for line in text.splitlines()[:5] if line.strip()]
    stem = _ROTATION.sub("", name.lower())
    by_name = next((fmt for suffix, fmt in _BY_SUFFIX.items() if stem.endswith(suffix)), None)
    if first_lines and re.match(LOG_PATTERN, first_lines[0]):
        return "log"
    stripped = text.lstrip()
    if stripped.startswith("["):
        return "json"
    if stripped.startswith("{"):
        if len(first_lines) > 1 and all(line.lstrip().startswith("{") for line in first_lines):
            return "ndjson"
        return by_name if by_name in ("json", "ndjson") else "json"
    if by_name in ("tsv",) or (first_lines and "\t" in first_lines[0] and by_name != "csv"):
        return "tsv"
    if by_name:
        return by_name
    if "access" in stem and "log" in stem:
        return "log"
    return "csv"


def csv_options(options: Mapping[str, Any], fmt: str = "csv") -> CsvOptions:
    """A source's ``options`` as reader options (``null_values`` / ``column_null_values``: the
    source's declared null tokens; without them only an empty unquoted field is null)."""

    def auto(value: Any) -> Any:
        return None if value in (None, "auto") else value

    per_column = options.get("column_null_values") or {}
    return CsvOptions(
        delimiter="\t" if fmt == "tsv" else auto(options.get("delimiter")),
        header=auto(options.get("header")),
        encoding=auto(options.get("encoding")),
        quote_char=options.get("quote_char", '"'),
        null_values=null_tokens(options.get("null_values", DEFAULT_NULLS), "null_values"),
        column_null_values={
            str(name): null_tokens(tokens, f"column_null_values.{name}") for name, tokens in per_column.items()
        },
        column_names=options.get("column_names"),
    )


def json_options(options: Mapping[str, Any], explode: tuple[str, ...] = ()) -> JsonOptions:
    return JsonOptions(records_path=options.get("records_path"), explode=tuple(options.get("explode", explode)))


def read_file(
    data: bytes,
    *,
    source: str,
    fmt: str = "auto",
    options: Mapping[str, Any] | None = None,
    explode: tuple[str, ...] = (),
) -> ReadResult:
    """Read one file. Raises :class:`UnreadableFileError` when it cannot be read at all."""
    options = options or {}
    if fmt == "auto":
        fmt = detect_format(source, data)
    if fmt in ("csv", "tsv"):
        result = read_csv(data, source=source, options=csv_options(options, fmt))
    elif fmt == "ndjson":
        result = read_ndjson(data, source=source, options=json_options(options, explode))
    elif fmt == "json":
        result = read_json(data, source=source, options=json_options(options, explode))
    elif fmt == "parquet":
        result = read_parquet(data, source=source)
    elif fmt == "avro":
        result = read_avro(data, source=source)
    elif fmt == "log":
        result = read_access_log(data, source=source)
    else:
        raise UnreadableFileError(f"{source}: unknown format {fmt!r}")
    result.info["format"] = fmt
    return result


def count_records(data: bytes, *, fmt: str, options: Mapping[str, Any] | None = None) -> int:
    """Records in a file, counted by a different route than the reader (for reconciliation):
    the stdlib csv module, line counts, the JSON document's length, the file's own row count."""
    options = options or {}
    data = decompress(data)[0]
    if fmt in ("parquet", "avro"):
        reader = pl.read_parquet if fmt == "parquet" else pl.read_avro
        return reader(io.BytesIO(data)).height
    text_bytes = to_utf8(data, detect_encoding(data))
    if fmt in ("ndjson", "log"):
        lines = split_lines(text_bytes)
        return int((lines.lengths > 0).sum())
    text = text_bytes.decode("utf-8", errors="replace")
    if fmt == "json":
        document = json.loads(text)
        for part in (options.get("records_path") or "").split("."):
            if part:
                document = document[part]
        return len(document) if isinstance(document, list) else 1
    opts = csv_options(options, fmt)
    delimiter = opts.delimiter or sniff_delimiter(text_bytes[:SNIFF_BYTES].decode("utf-8", errors="replace"))
    records = [
        r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=opts.quote_char) if r
    ]
    if not records:
        return 0
    header = opts.header if opts.header is not None else looks_like_header(records[0])
    return len(records) - (1 if header else 0)
