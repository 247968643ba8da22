"""CSV ingestion throughput against the physical floor, on the same file in the same run.

Measured: the project's reader (``read_csv``: encoding/delimiter/header detection, exact line
numbers, quarantine) plus lossless typing, written to Parquet. Baseline: ``pyarrow.csv.read_csv``
(with its own type inference) written to Parquet. Also reported: the full bronze preparation
(typing + lineage columns including the row hash). Goal: ratio of throughputs >= 0.5.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from bench import Figure, median_time

DEFAULT_MB = int(os.environ.get("BENCH_CSV_MB", "1024"))


def make_csv(path: Path, megabytes: int) -> int:
    """A realistic order-lines CSV of about ``megabytes`` MB; returns the row count."""
    rows_per_chunk = 500_000
    rows = 0
    with path.open("wb") as out:
        header = True
        while out.tell() < megabytes * 1024 * 1024:
            n = rows_per_chunk
            ids = pl.int_range(rows, rows + n, eager=True)
            chunk = pl.DataFrame({"i": ids}).select(
                (pl.col("i") // 3).alias("order_id"),
                (pl.col("i") % 3 + 1).alias("line_number"),
                pl.format("SKU-{}", (pl.col("i") * 7919 % 100_000).cast(pl.String).str.zfill(6)).alias("sku"),
                (pl.col("i") % 5 + 1).alias("quantity"),
                ((pl.col("i") * 31 % 50_000) / 100).round(2).alias("unit_price"),
                (pl.datetime(2024, 1, 1) + pl.duration(seconds=pl.col("i") * 13 % 31_536_000)).alias("order_ts"),
                pl.lit(pl.Series(["Berlin", "München", "Paris", "Kraków", "Århus"]))
                .gather(pl.col("i") % 5)
                .alias("city"),
                pl.lit(pl.Series(["", "gift", "express", "NA", "call before delivery"]))
                .gather(pl.col("i") * 3 % 5)
                .alias("note"),
            )
            buffer = chunk.write_csv(include_header=header, datetime_format="%Y-%m-%dT%H:%M:%SZ", float_precision=2)
            out.write(buffer.encode())
            header = False
            rows += n
    return rows


def ours(data: bytes, out: Path) -> int:
    from lakehouse.ingest.bronze import apply_types
    from lakehouse.ingest.csv_reader import read_csv
    from lakehouse.ingest.infer import infer_types

    result = read_csv(data, source="bench.csv")
    data_columns = [c for c in result.rows.columns if not c.startswith("_")]
    typed, rejected = apply_types(result.rows, infer_types(result.rows.select(data_columns)))
    typed.write_parquet(out)
    return typed.height + rejected.height + result.quarantine.height


def bronze(data: bytes) -> int:
    from lakehouse.ingest.bronze import prepare_bronze
    from lakehouse.ingest.csv_reader import read_csv

    batch = prepare_bronze([read_csv(data, source="bench.csv")], table_schema=None, ingested_at=dt.datetime.now(dt.UTC))
    return batch.rows_read


def floor(data: bytes, out: Path) -> int:
    table = pacsv.read_csv(pa.BufferReader(data))
    pq.write_table(table, out)
    return table.num_rows


def csv_ingest(megabytes: int = DEFAULT_MB, repeat: int = 3) -> list[Figure]:
    folder = Path(tempfile.mkdtemp(prefix="bench-csv-"))
    path = folder / "lines.csv"
    rows = make_csv(path, megabytes)
    data = path.read_bytes()
    size_mb = len(data) / 1024 / 1024
    assert ours(data, folder / "ours.parquet") == rows == floor(data, folder / "floor.parquet")
    measured = median_time(lambda: ours(data, folder / "ours.parquet"), repeat=repeat)
    baseline = median_time(lambda: floor(data, folder / "floor.parquet"), repeat=repeat)
    full = median_time(lambda: bronze(data), repeat=repeat)
    details = {
        "rows": rows,
        "megabytes": round(size_mb, 1),
        "ours_rows_per_s": round(rows / measured),
        "ours_mb_per_s": round(size_mb / measured, 1),
        "floor_rows_per_s": round(rows / baseline),
        "floor_mb_per_s": round(size_mb / baseline, 1),
        "throughput_ratio": round(baseline / measured, 3),
    }
    reader = Figure(
        name=f"CSV reader + typing -> parquet ({size_mb:.0f} MB, {rows:,} rows)",
        seconds=measured,
        baseline_name="pyarrow.csv.read_csv -> parquet",
        baseline_seconds=baseline,
        goal="throughput >= 0.5x floor (time ratio <= 2.0)",
        details=details,
    )
    prepared = Figure(
        name="full bronze preparation (typing + lineage + row hash)",
        seconds=full,
        baseline_name="pyarrow.csv.read_csv -> parquet",
        baseline_seconds=baseline,
        goal="report",
        details={"rows_per_s": round(rows / full), "mb_per_s": round(size_mb / full, 1)},
    )
    return [reader, prepared]
