"""Compaction: what small files cost a scan, and what fixing them costs.

1000 single-row appends make 1000 files. Figures (medians, same run):
* scan after compaction vs scan before (goal: much faster; reported);
* compaction vs writing the same rows fresh into a new table (goal: report; the ratio says how
  much compaction's bookkeeping costs over a plain rewrite).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time

import polars as pl

from bench import Figure, median_time

APPENDS = int(os.environ.get("BENCH_APPENDS", "1000"))


def compaction(fmt: str, appends: int = APPENDS) -> list[Figure]:
    from lakehouse.naming import TableRef
    from lakehouse.settings import get_settings
    from lakehouse.tables import Lake

    settings = get_settings(
        {**os.environ, "LAKEHOUSE_HOME": tempfile.mkdtemp(prefix="bench-ops-"), "LAKEHOUSE_TABLE_FORMAT": fmt}
    )
    store = Lake(settings).store(fmt)
    ref, fresh = TableRef("silver", "bench", "small_files"), TableRef("silver", "bench", "fresh")
    started = time.perf_counter()
    for i in range(appends):
        store.append(
            ref, pl.DataFrame({"day": [dt.date(2024, 1, 1 + i % 28)], "id": [i], "v": [float(i)]}), partition_by=["day"]
        )
    append_seconds = time.perf_counter() - started

    def scan() -> None:
        store.read(ref).select(pl.col("v").sum(), pl.len()).collect()

    before = median_time(scan, repeat=5)
    files_before = store.info(ref).files
    compact_started = time.perf_counter()
    store.compact(ref)
    compact_seconds = time.perf_counter() - compact_started
    after = median_time(scan, repeat=5)
    rows = store.read(ref).collect()

    def rewrite() -> None:
        store.overwrite(fresh, rows, partition_by=["day"])

    fresh_seconds = median_time(rewrite, repeat=3, setup=lambda: store.drop(fresh))
    return [
        Figure(
            name=f"scan after compacting {appends} appends ({fmt})",
            seconds=after,
            baseline_name=f"scan of {files_before} small files",
            baseline_seconds=before,
            goal="report (lower is better)",
            details={
                "files_before": files_before,
                "files_after": store.info(ref).files,
                "append_seconds": round(append_seconds, 1),
            },
        ),
        Figure(
            name=f"compaction of {appends} small files ({fmt})",
            seconds=compact_seconds,
            baseline_name="fresh rewrite of the same rows",
            baseline_seconds=fresh_seconds,
            goal="report",
        ),
    ]
