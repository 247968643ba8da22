"""Parquet and Avro readers: already typed; ``_source_line`` is the row's position (1-based)."""

from __future__ import annotations

import io

import polars as pl

from lakehouse.exceptions import UnreadableFileError
from lakehouse.ingest.json_reader import flatten
from lakehouse.ingest.result import ReadResult, quarantine_frame
from lakehouse.ingest.text import decompress

__all__ = ["read_avro", "read_parquet"]


def _finish(frame: pl.DataFrame, source: str, fmt: str) -> ReadResult:
    frame = flatten(frame).with_columns(
        pl.lit(source, dtype=pl.String).alias("_source_file"),
        pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias("_source_line"),
    )
    return ReadResult(rows=frame, quarantine=quarantine_frame([]), info={"parser": fmt})


def read_parquet(data: bytes, *, source: str) -> ReadResult:
    try:
        return _finish(pl.read_parquet(io.BytesIO(decompress(data)[0])), source, "parquet")
    except Exception as exc:
        raise UnreadableFileError(f"{source}: not a readable Parquet file ({str(exc)[:200]})") from None


def read_avro(data: bytes, *, source: str) -> ReadResult:
    try:
        return _finish(pl.read_avro(io.BytesIO(decompress(data)[0])), source, "avro")
    except Exception as exc:
        raise UnreadableFileError(f"{source}: not a readable Avro file ({str(exc)[:200]})") from None
