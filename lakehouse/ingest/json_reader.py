"""JSON and NDJSON readers: nested objects flattened to ``parent__child`` columns, arrays kept as
lists or exploded into rows, bad lines quarantined with their line number."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from lakehouse.exceptions import UnreadableFileError
from lakehouse.ingest.result import ReadResult, quarantine_frame
from lakehouse.ingest.text import decompress, detect_encoding, split_lines, to_utf8

__all__ = ["JsonOptions", "flatten", "read_json", "read_ndjson"]


@dataclass(frozen=True)
class JsonOptions:
    """``records_path``: dotted path to the array of records in a JSON document (``data.items``);
    ``explode``: list columns to turn into one row per element (after flattening)."""

    records_path: str | None = None
    explode: Sequence[str] = ()
    separator: str = "__"


def flatten(frame: pl.DataFrame, separator: str = "__") -> pl.DataFrame:
    """Unnest struct columns recursively: ``{"a": {"b": 1}}`` becomes column ``a__b``."""
    while True:
        structs = [n for n, t in frame.schema.items() if isinstance(t, pl.Struct)]
        if not structs:
            return frame
        for name in structs:
            fields = frame.schema[name].fields  # type: ignore[attr-defined]
            if not fields:
                frame = frame.drop(name)
                continue
            frame = frame.with_columns(
                pl.col(name).struct.rename_fields([f"{name}{separator}{f.name}" for f in fields])
            ).unnest(name)


def _explode(frame: pl.DataFrame, columns: Sequence[str], separator: str) -> pl.DataFrame:
    for name in columns:
        if name in frame.columns and isinstance(frame.schema[name], pl.List):
            frame = flatten(frame.explode(name), separator)
    return frame


def _stringify_conflicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Where one key holds values of different JSON types, keep them all as JSON text (lossless)."""
    kinds: dict[str, set[str]] = {}
    for row in rows:
        for k, v in row.items():
            if v is not None:
                kind = "number" if isinstance(v, (int, float)) and not isinstance(v, bool) else type(v).__name__
                kinds.setdefault(k, set()).add(kind)
    mixed = {k for k, ks in kinds.items() if len(ks) > 1}
    if not mixed:
        return rows
    return [
        {k: (json.dumps(v) if k in mixed and v is not None and not isinstance(v, str) else v) for k, v in r.items()}
        for r in rows
    ]


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    if not rows:
        return pl.DataFrame()
    rows = _stringify_conflicts(rows)
    try:
        return pl.from_dicts(rows, infer_schema_length=None)
    except (pl.exceptions.ComputeError, pl.exceptions.SchemaError, TypeError, OverflowError):
        # nested conflicts: keep every top-level value as JSON text
        return pl.from_dicts(
            [{k: json.dumps(v) if v is not None else None for k, v in r.items()} for r in rows],
            infer_schema_length=None,
        )


def _finish(
    frame: pl.DataFrame, source: str, numbers: Sequence[int] | np.ndarray, options: JsonOptions
) -> pl.DataFrame:
    frame = frame.with_columns(
        pl.lit(source, dtype=pl.String).alias("_source_file"),
        pl.Series("_source_line", numbers, dtype=pl.Int64),
    )
    frame = flatten(frame, options.separator)
    return _explode(frame, options.explode, options.separator)


def read_ndjson(data: bytes, *, source: str, options: JsonOptions | None = None) -> ReadResult:
    """One JSON object per line. Lines that are not a JSON object go to quarantine."""
    options = options or JsonOptions()
    data, compression = decompress(data)
    enc = detect_encoding(data)
    utf8 = to_utf8(data, enc)
    lines = split_lines(utf8)
    nonblank = lines.lengths > 0
    numbers = lines.numbers[nonblank]
    info = {"encoding": enc.encoding, "compression": compression}
    try:  # fast path: polars parses every line
        frame = pl.read_ndjson(utf8, infer_schema_length=None) if len(numbers) else pl.DataFrame()
        if frame.height == len(numbers):
            return ReadResult(
                rows=_finish(frame, source, numbers, options),
                quarantine=quarantine_frame([]),
                info={**info, "parser": "polars"},
            )
    except Exception:  # noqa: S110 - any failure means: take the exact path below
        pass
    text = pl.from_arrow(lines.text)
    assert isinstance(text, pl.Series)
    good: list[dict[str, Any]] = []
    good_numbers: list[int] = []
    bad: list[tuple[str, int | None, str, str]] = []
    for number, raw in zip(
        numbers.tolist(), text.filter(pl.Series(nonblank)).str.strip_chars_end("\r\n").to_list(), strict=True
    ):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            bad.append((source, number, raw, f"invalid JSON: {exc.msg} at column {exc.colno}"))
            continue
        if not isinstance(value, dict):
            bad.append((source, number, raw, f"expected a JSON object, found {type(value).__name__}"))
            continue
        good.append(value)
        good_numbers.append(number)
    frame = _frame(good)
    rows = _finish(frame, source, good_numbers, options) if good else pl.DataFrame()
    return ReadResult(rows=rows, quarantine=quarantine_frame(bad), info={**info, "parser": "python-json"})


def read_json(data: bytes, *, source: str, options: JsonOptions | None = None) -> ReadResult:
    """A JSON document: an array of objects, one object, or an object holding the array at
    ``records_path``. ``_source_line`` is the record's position (1-based) in the array."""
    options = options or JsonOptions()
    data, compression = decompress(data)
    enc = detect_encoding(data)
    try:
        document = json.loads(to_utf8(data, enc))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UnreadableFileError(f"{source}: not a JSON document ({exc})") from None
    for part in (options.records_path or "").split("."):
        if part:
            if not isinstance(document, dict) or part not in document:
                raise UnreadableFileError(
                    f"{source}: records_path {options.records_path!r} not found (missing {part!r})"
                )
            document = document[part]
    records = document if isinstance(document, list) else [document]
    good, numbers, bad = [], [], []
    for i, record in enumerate(records, start=1):
        if isinstance(record, dict):
            good.append(record)
            numbers.append(i)
        else:
            bad.append((source, i, json.dumps(record), f"expected a JSON object, found {type(record).__name__}"))
    rows = _finish(_frame(good), source, numbers, options) if good else pl.DataFrame()
    return ReadResult(
        rows=rows,
        quarantine=quarantine_frame(bad),
        info={"encoding": enc.encoding, "compression": compression, "parser": "json"},
    )
