"""`python -m bench [name ...]`: run the benchmarks, print each figure, write bench/results/."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import traceback
from pathlib import Path

from bench import Figure, backfill, features, ingest_csv, maintenance, merge, s3, table_ops, tpch
from bench import platform as platform_bench

BENCHMARKS = {
    "ingest_csv": ingest_csv.csv_ingest,
    "definitions_load": platform_bench.definitions_load,
    "demo": platform_bench.demo,
    "merge_delta": lambda: merge.merge("delta"),
    "merge_iceberg": lambda: merge.merge("iceberg"),
    "tpch_delta": lambda: tpch.tpch("delta"),
    "tpch_iceberg": lambda: tpch.tpch("iceberg"),
    "tpch_spark": tpch.tpch_spark,
    "tpch_trino_delta": lambda: tpch.tpch_trino("delta"),
    "tpch_trino_iceberg": lambda: tpch.tpch_trino("iceberg"),
    "compaction_delta": lambda: maintenance.compaction("delta"),
    "compaction_iceberg": lambda: maintenance.compaction("iceberg"),
    "partition_overwrite_delta": lambda: table_ops.partition_overwrite("delta"),
    "partition_overwrite_iceberg": lambda: table_ops.partition_overwrite("iceberg"),
    "s3_slice_delta": lambda: s3.slice_on_s3("delta"),
    "s3_slice_iceberg": lambda: s3.slice_on_s3("iceberg"),
    "s3_commit_delta": lambda: s3.commit_latency("delta"),
    "s3_commit_iceberg": lambda: s3.commit_latency("iceberg"),
    "spark_start": platform_bench.spark_start,
    "backfill_year": backfill.backfill_year,
    "features_online": features.online,
    "features_pit_delta": lambda: features.pit("delta"),
    "features_pit_iceberg": lambda: features.pit("iceberg"),
}


def main(names: list[str]) -> None:
    selected = names or list(BENCHMARKS)
    unknown = [n for n in selected if n not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")
    failed: list[str] = []
    for name in selected:  # the report is written after every figure: a later failure loses nothing
        try:
            produced = BENCHMARKS[name]()
        except BaseException as exc:  # one that dies (even by SystemExit) is reported; the rest still run
            if isinstance(exc, KeyboardInterrupt):
                raise
            traceback.print_exc()
            failed.append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
            continue
        figures = produced if isinstance(produced, list) else [produced]
        for figure in figures:
            print(figure.line(), flush=True)
            if figure.details:
                print(f"    {figure.details}", flush=True)
        write_report(figures)
    if failed:
        sys.exit("benchmarks that failed:\n  " + "\n  ".join(failed))


def write_report(figures: list[Figure]) -> Path:
    """Add ``figures`` to today's ``bench/results/<date>.json`` and ``.md`` (same name: replaced)."""
    machine = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    rows = [{**f.__dict__, "ratio": f.ratio} for f in figures]
    earlier = out / f"{stamp}.json"
    if earlier.exists():
        fresh = {r["name"] for r in rows}
        rows = [r for r in json.loads(earlier.read_text())["figures"] if r["name"] not in fresh] + rows
    earlier.write_text(json.dumps({"machine": machine, "figures": rows}, indent=2, default=str))
    lines = [
        f"# Benchmarks {stamp}",
        "",
        f"machine: {machine}",
        "",
        "| figure | ms | baseline | ms | ratio | goal |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['name']} | {r['seconds'] * 1000:.1f} | {r['baseline_name']} | {r['baseline_seconds'] * 1000:.1f} "
        f"| {r['ratio']:.2f} | {r['goal']} |"
        for r in rows
    ]
    lines += ["", "## details", ""] + [
        f"- {r['name']}: {json.dumps(r['details'], default=str)}" for r in rows if r["details"]
    ]
    (out / f"{stamp}.md").write_text("\n".join(lines) + "\n")
    print(f"    (written to {out / stamp}.md and .json)", flush=True)
    return out / f"{stamp}.md"


if __name__ == "__main__":
    main(sys.argv[1:])
