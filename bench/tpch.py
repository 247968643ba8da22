"""TPC-H over the lake against native DuckDB tables generated from the same data, same run.
Goal: over Delta <= 1.3x native. Every answer must also be correct (the run fails otherwise)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench import Figure

SF = float(os.environ.get("BENCH_TPCH_SF", "1"))


def tpch(fmt: str) -> Figure:
    from lakehouse.tpch import run_tpch

    report = run_tpch(SF, fmt, home=Path(tempfile.mkdtemp(prefix=f"bench-tpch-{fmt}-")), repeat=3)  # type: ignore[arg-type]
    if not report.passed:
        raise SystemExit(f"TPC-H SF {SF} over {fmt}: {report.correct}/22 correct, failed checks {report.checks_failed}")
    return Figure(
        name=f"TPC-H SF {SF:g}: 22 queries over {fmt} (median of 3 each, summed)",
        seconds=sum(q.lake_seconds for q in report.queries),
        baseline_name="the same queries on native DuckDB tables",
        baseline_seconds=sum(q.native_seconds for q in report.queries),
        goal="<= 1.3 (Delta)",
        details={
            "correct": report.correct,
            "load_seconds": round(report.load_seconds, 1),
            "slowest": sorted(((round(q.ratio, 1), f"Q{q.query}") for q in report.queries), reverse=True)[:3],
        },
    )
