"""MERGE of 100k rows (half updates, half inserts) into a 10M-row table over 30 partitions, against
delete+append of the same rows, each variant in its own process so peak RSS is its own.
Goal: MERGE <= 2x delete+append, peak RSS <= 1 GB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from bench import Figure

ROWS = int(os.environ.get("BENCH_MERGE_ROWS", "10000000"))
CHANGES = int(os.environ.get("BENCH_MERGE_CHANGES", "100000"))

# A first child builds the 10M-row table (variant "build"); a second, fresh one opens it and times
# one MERGE or one delete+append, so its peak RSS is the write's own (plus the imports).
_CHILD = r"""
import datetime as dt, json, os, resource, sys, time
import polars as pl
from lakehouse.naming import TableRef
from lakehouse.settings import get_settings
from lakehouse.tables import Lake, col

fmt, variant, home, rows, changes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
settings = get_settings({**os.environ, "LAKEHOUSE_HOME": home, "LAKEHOUSE_TABLE_FORMAT": fmt})
store = Lake(settings).store(fmt)
ref = TableRef("silver", "bench", "big")
start = dt.date(2024, 1, 1)

def frame(ids, value):
    return pl.DataFrame({"id": ids}).with_columns(
        (pl.lit(start) + pl.duration(days=pl.col("id") % 30)).alias("day"),
        pl.lit(value).alias("v"),
        (pl.col("id") * 7 % 1000).alias("k"),
    )

if not store.exists(ref):
    base = frame(pl.int_range(0, rows, eager=True), 0.0)
    store.overwrite_partitions(ref, base, partition_by="day", values=base.get_column("day").unique().to_list())
    del base
if variant == "build":
    print(json.dumps({"seconds": 0.0, "peak_rss_mb": 0.0}))
    sys.exit(0)
half = changes // 2
ids = pl.concat([pl.int_range(0, rows, step=rows // half, eager=True).head(half), pl.int_range(rows, rows + half, eager=True)])
source = frame(ids, 1.0)
started = time.perf_counter()
if variant == "merge":
    store.merge(ref, source, keys=["id"])
else:
    store.delete(ref, col("id").is_in(source.get_column("id").to_list()))
    store.append(ref, source)
seconds = time.perf_counter() - started
assert store.count(ref) == rows + half
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _run(fmt: str, variant: str, home: str) -> dict[str, float]:
    if variant != "build":
        _run(fmt, "build", home)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, fmt, variant, home, str(ROWS), str(CHANGES)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def merge(fmt: str) -> Figure:
    merge_home, plain_home = tempfile.mkdtemp(prefix="bench-merge-a-"), tempfile.mkdtemp(prefix="bench-merge-b-")
    merged = _run(fmt, "merge", merge_home)
    plain = _run(fmt, "delete_append", plain_home)
    return Figure(
        name=f"MERGE {CHANGES:,} rows into {ROWS:,} over 30 partitions ({fmt})",
        seconds=merged["seconds"],
        baseline_name="delete + append of the same rows",
        baseline_seconds=plain["seconds"],
        goal="<= 2.0, peak RSS <= 1024 MB",
        details={
            "merge_peak_rss_mb": round(merged["peak_rss_mb"]),
            "delete_append_peak_rss_mb": round(plain["peak_rss_mb"]),
        },
    )
