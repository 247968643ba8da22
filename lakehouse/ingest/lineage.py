"""Lineage columns of the bronze contract: ``_source_file``, ``_source_line``, ``_ingested_at``, ``_row_hash``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import duckdb
import polars as pl

from lakehouse.sql import quote_ident

__all__ = ["LINEAGE_COLUMNS", "row_hash", "with_lineage"]

LINEAGE_COLUMNS = ("_source_file", "_source_line", "_ingested_at", "_row_hash")


def row_hash(frame: pl.DataFrame, columns: Sequence[str]) -> pl.Series:
    """MD5 (hex) of the record's values joined by US (0x1f), nulls as RS (0x1e).

    Stable across runs, versions and machines (unlike polars' ``hash``), so the same record
    read twice, from any file, has the same hash.
    """
    if frame.height == 0 or not columns:
        return pl.Series("_row_hash", [None] * frame.height, dtype=pl.String)
    # positional names: source column names never reach SQL text
    positional = {c: f"c{i}" for i, c in enumerate(columns)}
    parts = ", ".join(f"coalesce(CAST({quote_ident(positional[c])} AS VARCHAR), chr(30))" for c in columns)
    con = duckdb.connect()
    try:
        con.register("frame_in", frame.select(list(columns)).rename(positional).to_arrow())
        out = con.execute(f"SELECT md5(concat_ws(chr(31), {parts})) AS h FROM frame_in").pl()
    finally:
        con.close()
    return out.get_column("h").alias("_row_hash")


def with_lineage(
    frame: pl.DataFrame,
    *,
    data_columns: Sequence[str],
    ingested_at: dt.datetime,
) -> pl.DataFrame:
    """Add ``_ingested_at`` and ``_row_hash`` (``_source_file``/``_source_line`` come from the reader)."""
    return frame.with_columns(
        pl.lit(ingested_at, dtype=pl.Datetime("us", "UTC")).alias("_ingested_at"),
        row_hash(frame, data_columns),
    )
